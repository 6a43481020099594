import * as core from '@actions/core';
import { STATE_HOST_LOGIN, STATE_LOGIN } from './commands';
import { LocalRunner } from './exec';
import { readInputs } from './inputs';
import { STATE_LOCKS, releaseLock } from './lock';
import { Remote } from './remote';

/**
 * The post step (runs even when the job failed or was cancelled): releases any deploy lock the
 * main step still held, and logs the runner out of the registry.
 */
export async function post(): Promise<void> {
  const locks = core.getState(STATE_LOCKS);
  const { token, dirs } = locks ? (JSON.parse(locks) as { token: string; dirs: string[] }) : { token: '', dirs: [] as string[] };
  const hostRegistry = core.getState(STATE_HOST_LOGIN);
  if (dirs.length || hostRegistry) {
    try {
      const inputs = readInputs();
      const remote = await Remote.connect({ host: inputs.host, port: inputs.port, user: inputs.user, privateKey: inputs.sshKey, passphrase: inputs.sshPassphrase, knownHosts: inputs.knownHosts, connectTimeout: 15000 });
      try {
        for (const d of dirs) {
          const released = await releaseLock(remote, d, token);
          core.info(released ? `Released the deploy lock ${d} left by the main step.` : `Lock ${d} is no longer ours; left alone.`);
        }
        // The main step was stopped before it logged the host out: no credentials stay on the host.
        if (hostRegistry) {
          await remote.run(['docker', 'logout', hostRegistry]);
          core.info(`Logged the host out of ${hostRegistry}.`);
        }
      } finally {
        remote.dispose();
      }
    } catch (e) {
      core.warning(`Post step: could not clean up on the host (locks ${dirs.join(', ') || 'none'}): ${(e as Error).message}`);
    }
  }
  const registry = core.getState(STATE_LOGIN);
  if (registry) {
    await new LocalRunner().run(['docker', 'logout', registry], { silent: true }).catch(() => undefined);
    core.info(`Logged out of ${registry}.`);
  }
}
