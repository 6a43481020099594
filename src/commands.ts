import * as core from '@actions/core';
import * as github from '@actions/github';
import * as crypto from 'crypto';
import * as semver from 'semver';
import { buildImages, registryLogin } from './build';
import { InputError } from './errors';
import { LocalRunner } from './exec';
import { Inputs } from './inputs';
import { findTarget, readLedger } from './ledger';
import { lockStacks, lockTracker } from './lock';
import { LayerOutcome, LayerPlan, RunContext, lockDirFor, runLayer } from './layer';
import { Remote, shellJoin, sshOptions } from './remote';
import { OVERRIDE_FILE, overrideFile } from './secrets';
import { checkImages, layerTimeout, planDeploy, readVersions, variables } from './plan';
import { prepareStack } from './stack';
import { connectedChecks, runChecks } from './preflight';
import { StackLoader } from './model';
import { state } from './state';
import { FALLBACK_TIMEOUT_S } from './timing';
import { layerWithHooks } from './hooks';
import { checkPreviewCap } from './preview';

export interface Outcome {
  result: 'deployed' | 'rolled-back' | 'failed' | 'checked' | 'built' | 'removed' | 'commented';
  release: string;
  versions: Record<string, string>;
  images: Record<string, string>;
  layers: LayerOutcome[];
  checks?: string;
  error?: string;
  notes: string[];
}

function context() {
  const c = github.context;
  const server = process.env.GITHUB_SERVER_URL || 'https://github.com';
  const repo = process.env.GITHUB_REPOSITORY || '';
  const runUrl = repo && c.runId ? `${server}/${repo}/actions/runs/${c.runId}` : `local-${process.pid}-${Date.now()}`;
  return {
    sha: c.sha || process.env.GITHUB_SHA || '',
    ref: c.ref || process.env.GITHUB_REF || '',
    actor: c.actor || process.env.GITHUB_ACTOR || 'unknown',
    runUrl,
  };
}

export async function commandCheck(inputs: Inputs): Promise<Outcome> {
  const notes: string[] = [];
  let versions: Record<string, string> = {};
  let env = { ...inputs.env };
  const loader = new StackLoader(inputs.workingDirectory);
  try {
    const services = readVersions(inputs, notes, loader);
    versions = Object.fromEntries(services.map((s) => [s.name, s.version]));
    env = variables(inputs, services);
  } catch (e) {
    // `check` on a repo without service folders still checks the stacks.
    if (!(e instanceof InputError) || !/matches no service folder|does not exist/.test(e.message)) throw e;
  }
  const { models, markdown } = runChecks(inputs, env, loader);
  if (inputs.host) {
    // Read-only, as a dry run: no lock, no registry login.
    const prepared = models.map((m) => prepareStack(m, inputs.workingDirectory));
    const { remote, finish } = await connect(inputs, true);
    try {
      await connectedChecks(remote, prepared, inputs);
    } finally {
      await finish();
      remote.dispose();
    }
  }
  return { result: 'checked', release: inputs.release, versions, images: {}, layers: [], checks: markdown, notes };
}

export async function commandBuild(inputs: Inputs): Promise<Outcome> {
  const notes: string[] = [];
  const services = readVersions(inputs, notes, new StackLoader(inputs.workingDirectory));
  const docker = new LocalRunner(inputs.workingDirectory);
  if (inputs.registryUsername && inputs.registryPassword && !inputs.dryRun) {
    await registryLogin(docker, inputs.registry, inputs.registryUsername, inputs.registryPassword);
    state.saveLogin(inputs.registry);
  }
  if (!services.some((s) => s.dir)) {
    notes.push('Nothing to build: no service folder, and no stack service with build: (stacks input).');
    core.info(notes[notes.length - 1]);
  }
  const built = await buildImages(docker, services, {
    registry: inputs.registry,
    imagePrefix: inputs.imagePrefix,
    buildArgs: inputs.buildArgs,
    target: inputs.target,
    sha: context().sha || '0000000',
    push: !inputs.dryRun,
    rebuild: inputs.rebuild,
  });
  return {
    result: 'built',
    release: inputs.release,
    versions: Object.fromEntries(services.map((s) => [s.name, s.version])),
    images: Object.fromEntries(built.map((b) => [b.service, b.reference])),
    layers: [],
    notes,
  };
}

/**
 * Connects once, checks the host can deploy, takes the lock of every stack of the run, and logs the
 * host in to the registry if asked. `finish` logs out and releases the locks.
 */
export async function connect(
  inputs: Inputs,
  readOnly = false,
  beforeLock?: (remote: Remote) => Promise<void>,
): Promise<{ remote: Remote; ctx: RunContext; finish: () => Promise<void> }> {
  const remote = await core.group(`Connect to ${inputs.user}@${inputs.host}:${inputs.port}`, async () => {
    const r = await Remote.connect(sshOptions(inputs));
    core.info(`Connected; host key matches the pinned known-hosts entry.`);
    return r;
  });
  const info = await remote.sh(
    `docker version --format '{{.Client.Version}}' && docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.ServerVersion}}' && printf '%s\\n' "$HOME"`,
    { retry: true },
  );
  if (info.code !== 0) {
    remote.dispose();
    throw new Error(
      `Docker does not answer on ${remote.where}: ${(info.stderr || info.stdout).trim()} (is the user in the docker group?)`,
    );
  }
  const [client, swarm, home] = info.stdout.trim().split('\n');
  const [swarmState, manager, server] = (swarm ?? '').split(' ');
  if (swarmState !== 'active' || manager !== 'true') {
    remote.dispose();
    throw new Error(
      `${remote.where} is not a Swarm manager (swarm state "${swarmState}", manager ${manager}). Run \`docker swarm init\` there first.`,
    );
  }
  core.info(`Host Docker: client ${client}, engine ${server}, Swarm manager.`);
  // A refusal found here leaves no trace on the host (taking a lock creates the stack's folder).
  if (beforeLock) await beforeLock(remote).catch((e) => (remote.dispose(), Promise.reject(e)));
  const { runUrl, actor, sha, ref } = context();
  let unlock: () => Promise<void> = async () => {};
  // A dry run only reads: it takes no lock and logs the host in nowhere.
  if (!readOnly)
    try {
      unlock = await lockStacks(
        remote,
        inputs.stacks.map((s) => lockDirFor(inputs.remoteDir, s.name)),
        { run: runUrl, actor, release: inputs.release, since: new Date().toISOString() },
        inputs.lockTimeout,
        lockTracker(),
        inputs.lockStaleAfter,
      );
    } catch (e) {
      remote.dispose();
      throw e;
    }
  const withRegistryAuth = !readOnly && !!(inputs.registryUsername && inputs.registryPassword);
  let logout = async () => {};
  if (withRegistryAuth) {
    // The run's own Docker config folder: another run on this host logging out (or in as someone
    // else) cannot touch this run's credentials, nor this run theirs. Saved first: if this step is
    // cancelled, the post step removes it.
    const config = `${inputs.remoteDir.startsWith('/') ? '' : `${home}/`}${inputs.remoteDir}/runs/${crypto.randomBytes(8).toString('hex')}`;
    state.saveHostConfig(config);
    remote.setEnv({ DOCKER_CONFIG: config });
    const res = await remote.sh(
      `umask 077 && mkdir -p "$DOCKER_CONFIG" && ${shellJoin(['docker', 'login', inputs.registry, '--username', inputs.registryUsername, '--password-stdin'].filter(Boolean))}`,
      { input: inputs.registryPassword },
    );
    if (res.code !== 0) {
      await removeHostConfig(remote, config);
      await unlock();
      remote.dispose();
      throw new Error(
        `The host could not log in to ${inputs.registry || 'Docker Hub'} as ${inputs.registryUsername}: ${res.stderr.trim()}`,
      );
    }
    core.info(
      `Host logged in to ${inputs.registry || 'Docker Hub'} with its own Docker config folder (removed at the end).`,
    );
    // Swarm keeps the credentials it needs (--with-registry-auth); the host keeps none.
    logout = () => removeHostConfig(remote, config);
  }
  const clientVersion = semver.coerce(client);
  const ctx: RunContext = {
    inputs,
    remote,
    sha,
    ref,
    actor,
    runUrl,
    withRegistryAuth,
    detachFlag: !!clientVersion && semver.gte(clientVersion, '26.0.0'),
    pollMs: 250,
  };
  const finish = async () => {
    await logout();
    await unlock();
  };
  return { remote, ctx, finish };
}

/** Removes the run's Docker config folder on the host (its registry login with it). */
export async function removeHostConfig(remote: Remote, dir: string): Promise<void> {
  const res = await remote.run(['rm', '-rf', dir], { retry: true }).catch(() => undefined);
  if (res?.code === 0) state.saveHostConfig('');
}

async function runLayers(ctx: RunContext, plans: LayerPlan[]): Promise<{ layers: LayerOutcome[]; error?: string }> {
  const layers: LayerOutcome[] = [];
  for (const plan of plans) {
    const outcome = await layerWithHooks(ctx, ctx.inputs.hooks, plan, plans.indexOf(plan), plans.length, () =>
      core.group(`Layer ${plan.stack} (${plan.kind} ${plan.release})`, () => runLayer(ctx, plan)),
    );
    layers.push(outcome);
    if (outcome.result !== 'deployed' || outcome.error) {
      const skipped = plans.slice(plans.indexOf(plan) + 1).map((p) => p.stack);
      return {
        layers,
        error: outcome.error + (skipped.length ? `\nNot deployed (later layers): ${skipped.join(', ')}.` : ''),
      };
    }
  }
  return { layers };
}

function overall(layers: LayerOutcome[], error?: string): Outcome['result'] {
  if (!error) return 'deployed';
  return layers[layers.length - 1]?.result === 'rolled-back' ? 'rolled-back' : 'failed';
}

export async function commandDeploy(inputs: Inputs): Promise<Outcome> {
  const { notes, versions, markdown, prepared, plans } = await planDeploy(inputs);
  if (inputs.dryRun) {
    // Only the stack files: referenced files (env_file, configs) may hold values that must not be logged.
    for (const p of prepared)
      for (const u of p.uploads) if (p.composePaths.includes(u.rel)) core.info(`--- ${p.name}: ${u.rel}\n${u.content}`);
    // No connection, so no keyed hash: the host's part of each secret name shows as placeholder text.
    prepared.forEach((p, i) => {
      const { secrets = [], configs = [] } = plans[i];
      if (secrets.length || configs.length)
        core.info(`--- ${p.name}: ${OVERRIDE_FILE}\n${overrideFile(p, secrets, configs, { placeholders: true })}`);
    });
    // With a host: read-only (no lock, no login), what each service runs now and what it would run.
    if (inputs.host) {
      const { remote, finish } = await connect(inputs, true);
      try {
        await connectedChecks(remote, prepared, inputs);
        await printPlan(remote, plans, 'would deploy release');
        await checkImages(remote, prepared, inputs);
      } finally {
        await finish();
        remote.dispose();
      }
    } else await checkImages(new LocalRunner(inputs.workingDirectory), prepared, inputs);
    return {
      result: 'checked',
      release: inputs.release,
      versions,
      images: {},
      layers: [],
      checks: markdown,
      notes: [...notes, 'dry-run: nothing was deployed (no lock, no ledger record, no file on the host).'],
    };
  }
  const { remote, ctx, finish } = await connect(inputs, false, (r) =>
    checkPreviewCap(
      r,
      plans.map((p) => p.stack),
      inputs.maxPreviews,
    ),
  );
  try {
    const nodes = await connectedChecks(remote, prepared, inputs);
    await checkImages(remote, prepared, inputs);
    // A global service runs a task on every node: its rollout has as many batches.
    prepared.forEach((p, i) => Object.assign(plans[i], layerTimeout(p.name, Object.values(p.services), inputs, nodes)));
    const { layers, error } = await runLayers(ctx, plans);
    const images: Record<string, string> = Object.assign({}, ...layers.map((l) => l.images));
    return {
      result: overall(layers, error),
      release: inputs.release,
      versions,
      images,
      layers,
      checks: markdown,
      error,
      notes,
    };
  } finally {
    await finish();
    remote.dispose();
  }
}

export async function commandRollback(inputs: Inputs): Promise<Outcome> {
  const { remote, ctx, finish } = await connect(inputs, inputs.dryRun);
  try {
    const plans: LayerPlan[] = [];
    // Every target is found before anything is touched: an unknown version changes nothing.
    for (const s of inputs.stacks) {
      const ledger = await readLedger(remote, inputs.remoteDir, s.name);
      if (!ledger)
        throw new InputError(
          `No deploy history for stack "${s.name}" on ${remote.where} (${inputs.remoteDir}/stacks/${s.name}/ledger.json): it was never deployed by this action, or remote-dir differs.`,
        );
      const target = findTarget(ledger, inputs.rollbackTo);
      core.info(
        `${s.name}: rolling back to release ${target.release} of ${target.time} (${Object.entries(target.versions)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}).`,
      );
      // The recorded release knows how long its gate may take; an older record does not.
      const timeoutS = inputs.timeout ?? target.timeoutS ?? FALLBACK_TIMEOUT_S;
      const timing =
        inputs.timeout !== undefined
          ? `timeout ${timeoutS} s (input)`
          : `timeout ${timeoutS} s (${target.timeoutS ? 'auto, as recorded with the release' : 'no figure recorded with the release'})`;
      plans.push({
        stack: s.name,
        release: target.release,
        kind: 'rollback',
        dir: target.dir,
        composePaths: target.composePaths,
        versions: target.versions,
        watches: target.watch,
        timeoutS,
        timing,
        secretNames: target.secrets,
        fileHashes: target.files,
      });
    }
    if (inputs.dryRun) return await dryRunRollback(remote, plans);
    const { layers, error } = await runLayers(ctx, plans);
    const images: Record<string, string> = Object.assign({}, ...layers.map((l) => l.images));
    const versions = Object.assign({}, ...plans.map((p) => p.versions));
    const release = plans[plans.length - 1]?.release ?? '';
    return { result: error ? 'failed' : 'rolled-back', release, versions, images, layers, error, notes: [] };
  } finally {
    await finish();
    remote.dispose();
  }
}

const shortImage = (image: string) => image.split('@')[0].split('/').pop() ?? image;

/** What a rollback would change, per service (image now → image of the target release); changes nothing. */
async function dryRunRollback(remote: Remote, plans: LayerPlan[]): Promise<Outcome> {
  await printPlan(remote, plans, 'would roll back to release');
  const note = 'dry-run: nothing was rolled back (no lock, no ledger record, no file on the host).';
  core.info(note);
  const versions = Object.assign({}, ...plans.map((p) => p.versions));
  return {
    result: 'checked',
    release: plans[plans.length - 1]?.release ?? '',
    versions,
    images: {},
    layers: [],
    notes: [note],
  };
}

/** Per layer and service: the image it runs now → the one the plan would give it. Reads only. */
async function printPlan(remote: Remote, plans: LayerPlan[], verb: string): Promise<void> {
  for (const p of plans) {
    const res = await remote.run(
      [
        'docker',
        'service',
        'ls',
        '--filter',
        `label=com.docker.stack.namespace=${p.stack}`,
        '--format',
        '{{.Name}} {{.Image}}',
      ],
      { retry: true, silent: true },
    );
    if (res.code !== 0)
      throw new Error(`Cannot list the services of ${p.stack} on ${remote.where}: ${res.stderr.trim()}`);
    const now = new Map(
      res.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ') as [string, string]),
    );
    core.info(`${p.stack}: ${verb} ${p.release}:`);
    for (const w of p.watches)
      core.info(
        `  ${w.name}: ${now.has(w.name) ? shortImage(now.get(w.name) as string) : '(not running)'} → ${shortImage(w.expectedImage)}`,
      );
  }
}
