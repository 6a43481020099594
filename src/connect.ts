import * as core from '@actions/core';
import * as crypto from 'crypto';
import { EngineInfo, readInfo } from './host/engine-facts';
import { Shell, shellJoin } from './host/shell';
import { Inputs } from './inputs';
import { RunContext, lockDirFor } from './layer';
import { lockStacks, lockTracker } from './lock';
import { Remote, sshOptions } from './remote';
import { state } from './state';

/**
 * Who runs this job and where it is seen: recorded with the lock and the ledger. Read from the
 * runner's GITHUB_* variables, as @actions/github's context does (not loaded here: its client is
 * a large part of the bundle's load time and only the comment command needs it).
 */
export function jobContext() {
  const env = process.env;
  const server = env.GITHUB_SERVER_URL || 'https://github.com';
  const repo = env.GITHUB_REPOSITORY || '';
  const runId = Number.parseInt(env.GITHUB_RUN_ID ?? '', 10);
  const runUrl = repo && runId ? `${server}/${repo}/actions/runs/${runId}` : `local-${process.pid}-${Date.now()}`;
  return { sha: env.GITHUB_SHA || '', ref: env.GITHUB_REF || '', actor: env.GITHUB_ACTOR || 'unknown', runUrl };
}

/**
 * Checks Docker answers and the host is a Swarm manager: the engine's GET /info (the pre-flight
 * reads the node's address from it), asked at once on the usual socket over the Engine API
 * connection the gate polls over; beside it, the shell says which engine the host's CLI uses (asked
 * again there if it is another one), the user's home and the host's clock.
 */
async function checkDocker(remote: Remote): Promise<{ info: EngineInfo; home: string }> {
  const noAnswer = (why: string) =>
    new Error(`Docker does not answer on ${remote.where}: ${why.trim()} (is the user in the docker group?)`);
  const first = readInfo(remote.engine()).catch((e: Error) => e);
  const facts = await remote.hostFacts().catch((e: Error) => {
    throw noAnswer(e.message);
  });
  let info = await first;
  if (facts.moved) info = await readInfo(remote.engine()).catch((e: Error) => e);
  if (info instanceof Error) throw noAnswer(info.message);
  if (info.swarmState !== 'active' || !info.manager)
    throw new Error(
      `${remote.where} is not a Swarm manager (swarm state "${info.swarmState}", manager ${info.manager}). ` +
        'Run `docker swarm init` there first.',
    );
  return { info, home: facts.home };
}

/** Whether `connect` logs the host in to the registry (under the lock): a dry run never does. */
export function hostLogsIn(inputs: Inputs, readOnly = false): boolean {
  return !readOnly && !!(inputs.registryUsername && inputs.registryPassword);
}

/** Takes the lock of every stack of the run; returns what releases them. */
function lockRun(remote: Shell, inputs: Inputs, who: ReturnType<typeof jobContext>): Promise<() => Promise<void>> {
  return lockStacks(
    remote,
    inputs.stacks.map((s) => lockDirFor(inputs.remoteDir, s.name)),
    { run: who.runUrl, actor: who.actor, release: inputs.release, since: new Date().toISOString() },
    inputs.lockTimeout,
    lockTracker(),
    inputs.lockStaleAfter,
  );
}

/**
 * Logs the host in to the registry with the run's own Docker config folder: another run on this host
 * logging out (or in as someone else) cannot touch this run's credentials, nor this run theirs. Saved
 * first: if this step is cancelled, the post step removes it. Failing, it removes the folder and
 * releases the locks. Returns what logs out.
 */
async function hostLogin(
  remote: Remote,
  inputs: Inputs,
  home: string,
  unlock: () => Promise<void>,
): Promise<() => Promise<void>> {
  const registry = inputs.registry || 'Docker Hub';
  const base = inputs.remoteDir.startsWith('/') ? inputs.remoteDir : `${home}/${inputs.remoteDir}`;
  const config = `${base}/runs/${crypto.randomBytes(8).toString('hex')}`;
  state.saveHostConfig(config);
  remote.setEnv({ DOCKER_CONFIG: config });
  const argv = ['docker', 'login', inputs.registry, '--username', inputs.registryUsername, '--password-stdin'];
  const res = await remote.sh(`umask 077 && mkdir -p "$DOCKER_CONFIG" && ${shellJoin(argv.filter(Boolean))}`, {
    input: inputs.registryPassword,
  });
  if (res.code !== 0) {
    await removeHostConfig(remote, config);
    await unlock();
    throw new Error(`The host could not log in to ${registry} as ${inputs.registryUsername}: ${res.stderr.trim()}`);
  }
  core.info(`Host logged in to ${registry} with its own Docker config folder (removed at the end).`);
  // Swarm keeps the credentials it needs (--with-registry-auth); the host keeps none.
  return () => removeHostConfig(remote, config);
}

/**
 * Connects once, checks the host can deploy, takes the lock of every stack of the run, and logs the
 * host in to the registry if asked. `finish` logs out and releases the locks.
 */
export async function connect(
  inputs: Inputs,
  readOnly = false,
  beforeLock?: (remote: Remote) => Promise<void>,
): Promise<{ remote: Remote; ctx: RunContext; finish: () => Promise<void>; info: EngineInfo }> {
  const remote = await core.group(`Connect to ${inputs.user}@${inputs.host}:${inputs.port}`, async () => {
    const r = await Remote.connect(sshOptions(inputs));
    core.info(`Connected; host key matches the pinned known-hosts entry.`);
    return r;
  });
  const withRegistryAuth = hostLogsIn(inputs, readOnly);
  try {
    const docker = checkDocker(remote);
    // Read-only checks run beside Docker's: a refusal found here leaves no trace on the host (taking
    // a lock creates the stack's folder). Docker not answering is the error told first.
    const settled = await Promise.allSettled([docker, beforeLock?.(remote)]);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    const { info, home } = await docker;
    core.info(`Host Docker: engine ${info.version}, Swarm manager.`);
    const who = jobContext();
    // A dry run only reads: it takes no lock and logs the host in nowhere.
    const unlock = readOnly ? async () => {} : await lockRun(remote, inputs, who);
    const logout = withRegistryAuth ? await hostLogin(remote, inputs, home, unlock) : async () => {};
    const ctx: RunContext = {
      inputs,
      remote,
      ...who,
      withRegistryAuth,
      // Until the host's CLI refuses it (older than Docker 26: src/stack.ts).
      detachFlag: true,
      pollMs: 250,
      // While an update is under way: Swarm's `completed` is seen sooner (a poll is two requests).
      minPollMs: 100,
    };
    const finish = async () => {
      await logout();
      await unlock();
    };
    return { remote, ctx, finish, info };
  } catch (e) {
    remote.dispose();
    throw e;
  }
}

/** Removes the run's Docker config folder on the host (its registry login with it). */
export async function removeHostConfig(remote: Shell, dir: string): Promise<void> {
  const res = await remote.run(['rm', '-rf', dir], { retry: true }).catch(() => undefined);
  if (res?.code === 0) state.saveHostConfig('');
}
