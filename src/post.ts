import * as core from '@actions/core';
import { LocalRunner, Runner } from './exec';
import { readInputs } from './inputs';
import { releaseLock } from './lock';
import { Remote, sshOptions } from './remote';
import { disposing } from './retry-helper';
import { state } from './state';

/**
 * The post step (runs even when the job failed or was cancelled): releases any deploy lock the
 * main step still held, removes the run's Docker config folder on the host (its registry login),
 * and logs the runner out of the registry.
 */
export async function post(local: Runner = new LocalRunner()): Promise<void> {
  const { token, dirs } = state.locks();
  const hostConfig = state.hostConfig();
  if (dirs.length || hostConfig) {
    try {
      const inputs = readInputs();
      await disposing(await Remote.connect(sshOptions(inputs, 15000)), async (remote) => {
        for (const d of dirs) {
          const released = await releaseLock(remote, d, token);
          core.info(
            released
              ? `Released the deploy lock ${d} left by the main step.`
              : `Lock ${d} is no longer ours; left alone.`,
          );
        }
        // The main step was stopped before it removed it: no credentials stay on the host.
        if (hostConfig) {
          await remote.run(['rm', '-rf', hostConfig], { retry: true });
          core.info(`Removed the run's Docker config folder on the host (its registry login).`);
        }
      });
    } catch (e) {
      core.warning(
        `Post step: could not clean up on the host (locks ${dirs.join(', ') || 'none'}): ${(e as Error).message}`,
      );
    }
  }
  const registry = state.login();
  if (registry) {
    // `-` is Docker Hub: `docker logout` without a server (matters on self-hosted runners).
    await local
      .run(['docker', 'logout', ...(registry === '-' ? [] : [registry])], { silent: true })
      .catch(() => undefined);
    core.info(`Logged out of ${registry === '-' ? 'Docker Hub' : registry}.`);
  }
}
