import * as core from '@actions/core';
import * as github from '@actions/github';
import * as crypto from 'crypto';
import * as semver from 'semver';
import { buildImages, missingImages, registryLogin, stackBuilds } from './build';
import { Finding, checkStack, overlayNetworks, reportFindings, traefikProviderNetworks } from './checks';
import { describeHostMtu, hostMtuVerdict, readHostMtu } from './hostmtu';
import { ComposeFileError, InputError } from './errors';
import { LocalRunner, Runner } from './exec';
import { Inputs } from './inputs';
import { findTarget, readLedger } from './ledger';
import { lockStacks, lockTracker } from './lock';
import { LayerOutcome, LayerPlan, RunContext, lockDirFor, releaseDirFor, runLayer, watchesFor } from './pipeline';
import { Remote, shellJoin, sshOptions } from './remote';
import {
  OVERRIDE_FILE,
  SecretPlan,
  checkShared,
  overrideFile,
  overrideUpload,
  planConfigs,
  planSecrets,
} from './secrets';
import { LoadedStack, PreparedStack, loadStack, prepareStack } from './stack';
import { NODES_SCRIPT, bindMountFindings, parseNodes, placementFindings, selfNodeId } from './placement';
import { state } from './state';
import { FROM_INPUT, Service, readServices, releaseTagMismatches, versionEnv } from './versions';
import { FALLBACK_TIMEOUT_S, describeTiming, layerTiming, tooShort } from './timing';
import { ServiceInfo, locateIn, resolveCompose, stackServices } from './compose';
import { layerWithHooks } from './hooks';
import { checksFor } from './verify';
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

function readVersions(inputs: Inputs, notes: string[]): Service[] {
  // The stacks' build: sections name their images with ${REGISTRY}, ${IMAGE_PREFIX} or the env input.
  const env = { REGISTRY: inputs.registry, IMAGE_PREFIX: inputs.imagePrefix, ...inputs.env };
  const builds = stackBuilds(inputs.stacks, inputs.workingDirectory, env, inputs.registry, inputs.imagePrefix, {
    sources: inputs.command === 'build',
  });
  const services = readServices(inputs.workingDirectory, inputs.services, builds, inputs.versions);
  if (inputs.releaseTagCheck !== 'off') {
    const bad = releaseTagMismatches(services, process.env.GITHUB_REF);
    for (const m of bad) {
      const text = `${m.versionFile} says ${m.version} but the release tag is ${m.tag}.`;
      if (inputs.releaseTagCheck === 'strict') throw new InputError(`${text} (release-tag-check: strict)`);
      core.warning(text, { file: m.versionFile });
      notes.push(text);
    }
  }
  core.info(
    services.length
      ? `Versions: ${services.map((s) => `${s.name} ${s.version}${s.versionFile === FROM_INPUT ? ' (input)' : ''}`).join(', ')}`
      : 'Versions: none (no service folder, no stack service with build:, no input `versions`).',
  );
  return services;
}

function runChecks(inputs: Inputs, env: Record<string, string>): { stacks: LoadedStack[]; markdown: string } {
  const stacks: LoadedStack[] = [];
  const findings: Finding[] = [];
  for (const spec of inputs.stacks) {
    try {
      // The deploy (prepareStack) honours the same switched-off rules as the checks.
      stacks.push({ ...loadStack(spec, inputs.workingDirectory), skip: inputs.skipChecks });
    } catch (e) {
      // A file Docker would refuse to load is a finding like the others (annotation, summary), and the
      // other stacks are still checked. It cannot be switched off.
      if (!(e instanceof ComposeFileError)) throw e;
      findings.push({
        rule: e.rule,
        severity: 'error',
        file: e.file,
        line: e.line,
        col: e.col,
        stack: spec.name,
        message: e.reason,
      });
    }
  }
  // Traefik's default network is set in the proxy's stack and applies to the services of every stack.
  const traefikNetworks = traefikProviderNetworks(stacks, env);
  for (const stack of stacks) findings.push(...checkStack(stack, env, { skip: inputs.skipChecks, traefikNetworks }));
  if (!inputs.skipChecks.some((r) => r === 'all' || r === 'timeout-too-short'))
    findings.push(...timeoutFindings(stacks, env, inputs));
  const report = reportFindings(findings);
  core.info(
    `Pre-flight: ${report.errors} error(s), ${report.warnings} warning(s), ${report.notices} notice(s) in ${stacks.length} stack(s).`,
  );
  if (report.errors) {
    const list = findings
      .filter((f) => f.severity === 'error')
      .map((f) => `  ${f.file}:${f.line}:${f.col} [${f.rule}] ${f.message}`);
    const err = new InputError(
      `Pre-flight checks found ${report.errors} error(s); nothing was deployed:\n${list.join('\n')}`,
    );
    (err as InputError & { markdown?: string }).markdown = report.markdown;
    throw err;
  }
  return { stacks, markdown: report.markdown };
}

/** An explicit `timeout` a healthy rolling update cannot fit in: the gate would roll a good release back. */
function timeoutFindings(stacks: LoadedStack[], env: Record<string, string>, inputs: Inputs): Finding[] {
  if (inputs.timeout === undefined) return [];
  const out: Finding[] = [];
  for (const stack of stacks) {
    let services;
    try {
      services = stackServices(stack.files.map((f) => resolveCompose(f, env)));
    } catch {
      continue; // the other rules report what makes the stack unreadable
    }
    for (const t of tooShort(
      layerTiming(Object.values(services), { timeout: inputs.timeout, stability: inputs.stability }),
    )) {
      const at = locateIn(stack.files, ['services', t.service, 'deploy', 'update_config']);
      out.push({
        rule: 'timeout-too-short',
        severity: 'error',
        file: at.file.path,
        line: at.line,
        col: at.col,
        stack: stack.name,
        service: t.service,
        message:
          `Service ${t.service}: input \`timeout\` is ${inputs.timeout} s, but a healthy rolling update of it takes at least ${t.minimum} s ` +
          `(${t.batches} batch(es), each at least one healthcheck interval and the delay, then monitor and the stability window). ` +
          `The gate would roll back a good release. Use \`timeout: auto\` (${t.auto} s here) or at least ${t.minimum}.`,
      });
    }
  }
  return out;
}

function variables(inputs: Inputs, services: Service[]): Record<string, string> {
  return { ...versionEnv(services, inputs.registry, inputs.imagePrefix), ...inputs.env };
}

export async function commandCheck(inputs: Inputs): Promise<Outcome> {
  const notes: string[] = [];
  let versions: Record<string, string> = {};
  let env = { ...inputs.env };
  try {
    const services = readVersions(inputs, notes);
    versions = Object.fromEntries(services.map((s) => [s.name, s.version]));
    env = variables(inputs, services);
  } catch (e) {
    // `check` on a repo without service folders still checks the stacks.
    if (!(e instanceof InputError) || !/matches no service folder|does not exist/.test(e.message)) throw e;
  }
  const { stacks, markdown } = runChecks(inputs, env);
  if (inputs.host) {
    // Read-only, as a dry run: no lock, no registry login.
    const prepared = stacks.map((s) => prepareStack(s, inputs.workingDirectory, env));
    const { remote, finish } = await connect(inputs, true);
    try {
      await connectedChecks(remote, stacks, prepared, env, inputs);
    } finally {
      await finish();
      remote.dispose();
    }
  }
  return { result: 'checked', release: inputs.release, versions, images: {}, layers: [], checks: markdown, notes };
}

export async function commandBuild(inputs: Inputs): Promise<Outcome> {
  const notes: string[] = [];
  const services = readVersions(inputs, notes);
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
  const notes: string[] = [];
  const services = readVersions(inputs, notes);
  const env = variables(inputs, services);
  const versions = Object.fromEntries(services.map((s) => [s.name, s.version]));
  const { stacks, markdown } = await core.group('Pre-flight checks', async () => runChecks(inputs, env));
  const prepared = stacks.map((s) => prepareStack(s, inputs.workingDirectory, env));
  // The input secrets of every layer: the first layer has the host name them all in one command.
  const run: SecretPlan[] = [];
  checkShared(prepared, inputs.sharedSecrets);
  const plans: LayerPlan[] = prepared.map((p) => {
    const secrets = planSecrets(p, inputs.secrets, inputs.generateSecrets, run, inputs.sharedSecrets);
    const configs = planConfigs(p);
    // Written at upload time: the secret names come from the host once connected (runLayer).
    const extra = secrets.length || configs.length ? [overrideUpload(p, secrets, configs)] : [];
    return {
      stack: p.name,
      release: inputs.release,
      kind: 'deploy',
      dir: releaseDirFor(inputs.remoteDir, p.name, inputs.release),
      composePaths: [...p.composePaths, ...extra.map((e) => e.rel)],
      uploads: [...p.uploads, ...extra],
      versions,
      watches: watchesFor(p, inputs.stability),
      ...layerTimeout(p.name, Object.values(p.services), inputs),
      secrets,
      configs,
      shipped: p.shipped,
      verify: checksFor(inputs.verify, p.name, p === prepared[prepared.length - 1]),
    };
  });
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
        await connectedChecks(remote, stacks, prepared, env, inputs);
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
    const nodes = await connectedChecks(remote, stacks, prepared, env, inputs);
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

/**
 * Every image the stacks name in our registry (or under image-prefix, without one) must be there
 * before anything is deployed; asked where the pulls happen, with the host's login. A dry run warns.
 */
async function checkImages(runner: Runner, prepared: PreparedStack[], inputs: Inputs): Promise<void> {
  const ours = (image: string) =>
    inputs.registry
      ? image.startsWith(`${inputs.registry}/`)
      : !!inputs.imagePrefix && image.startsWith(`${inputs.imagePrefix}/`);
  const users = new Map<string, string[]>();
  for (const p of prepared) {
    for (const s of Object.values(p.services)) {
      if (!s.image || !ours(s.image)) continue;
      users.set(s.image, [...(users.get(s.image) ?? []), `${p.name}/${s.name}`]);
    }
  }
  if (!users.size) return;
  const t0 = Date.now();
  const { missing, unreadable } = await missingImages(runner, [...users.keys()]);
  for (const u of unreadable)
    core.warning(`Could not check that ${u.image} is in the registry (${u.why}); the deploy will tell.`);
  const list = missing.map((m) => `  ${m} (${(users.get(m) ?? []).join(', ')})`).join('\n');
  if (missing.length && inputs.dryRun) {
    core.warning(`Not in the registry (a deploy would fail before changing anything):\n${list}`);
    return;
  }
  if (missing.length)
    throw new InputError(
      `${missing.length} image(s) the stacks name are not in the registry; nothing was deployed:\n${list}\nPush them (command: build), or fix the version (input \`versions\`, VERSION files).`,
    );
  core.info(
    `Registry: the ${users.size} image(s) of the stacks in ${inputs.registry || inputs.imagePrefix} are there (checked on ${runner.where} in ${((Date.now() - t0) / 1000).toFixed(1)} s).`,
  );
}

/** The layer's gate timeout: the input, or `auto` from its services' update_config and healthchecks. */
function layerTimeout(
  stack: string,
  services: ServiceInfo[],
  inputs: Inputs,
  nodes = 1,
): { timeoutS: number; timing: string } {
  const t = layerTiming(services, { timeout: inputs.timeout, stability: inputs.stability, nodes });
  return { timeoutS: t.seconds, timing: describeTiming(stack, t) };
}

/**
 * The checks that need the swarm's own facts, before anything changes: configs changed under an
 * unchanged name (Swarm configs are immutable), placement against the nodes, overlay MTU against the
 * host's interface. Returns the node count.
 */
async function connectedChecks(
  remote: Remote,
  stacks: LoadedStack[],
  prepared: PreparedStack[],
  env: Record<string, string>,
  inputs: Inputs,
): Promise<number> {
  const existing = await existingConfigs(remote);
  const res = await remote.sh(NODES_SCRIPT, { retry: true, silent: true });
  if (res.code !== 0) throw new Error(`Cannot list the swarm's nodes on ${remote.where}: ${res.stderr.trim()}`);
  const nodes = parseNodes(res.stdout);
  const skipped = (rule: string) => inputs.skipChecks.some((r) => r === 'all' || r === rule);
  const late = stacks
    .flatMap((s) => checkStack(s, env, { skip: inputs.skipChecks, existingObjects: existing }))
    .filter((f) => f.rule === 'immutable-object');
  if (!skipped('placement'))
    late.push(...prepared.flatMap((p) => placementFindings(p, Object.values(p.services), nodes)));
  if (!skipped('overlay-mtu')) late.push(...(await hostMtuCheck(remote, stacks, env, nodes.length)));
  if (!skipped('bind-mount-node')) {
    const warnings = prepared.flatMap((p) =>
      bindMountFindings(p, Object.values(p.services), nodes, selfNodeId(res.stdout)),
    );
    if (warnings.length) reportFindings(warnings);
  }
  if (late.length) {
    reportFindings(late);
    throw new InputError(
      `Pre-flight checks against the swarm found ${late.length} error(s); nothing was deployed:\n${late.map((f) => `  ${f.file}:${f.line}: [${f.rule}] ${f.message}`).join('\n')}`,
    );
  }
  const ran = ['configs', !skipped('placement') && 'placement', !skipped('overlay-mtu') && 'host MTU'].filter(Boolean);
  core.info(`Pre-flight against the swarm: ${nodes.length} node(s), ${ran.join(', ')} fine.`);
  return nodes.length;
}

/**
 * overlay-mtu with the host's facts: the MTU of the interface carrying the manager's Swarm node
 * address. A loopback address (a one-machine swarm advertised on 127.0.0.1) decides nothing.
 */
async function hostMtuCheck(
  remote: Remote,
  stacks: LoadedStack[],
  env: Record<string, string>,
  nodes: number,
): Promise<Finding[]> {
  const h = await readHostMtu(remote);
  core.info(describeHostMtu(h, nodes));
  const { findings, notice } = hostMtuVerdict(
    h,
    stacks.flatMap((s) => overlayNetworks(s, env)),
  );
  if (notice) core.notice(notice, { title: 'overlay-mtu' });
  return findings;
}

/** Name → sha256 of the content of the Swarm configs on the host. */
async function existingConfigs(remote: Remote): Promise<Record<string, string>> {
  const res = await remote.sh(
    `ids=$(docker config ls -q) && [ -n "$ids" ] && ${shellJoin(['docker', 'config', 'inspect', '--format', '{{json .Spec.Name}} {{json .Spec.Data}}'])} $ids; true`,
    { retry: true, silent: true },
  );
  const out: Record<string, string> = {};
  for (const line of res.stdout.split('\n')) {
    const m = /^(".*?") (".*")$/.exec(line.trim());
    if (!m) continue;
    out[JSON.parse(m[1])] = crypto
      .createHash('sha256')
      .update(Buffer.from(JSON.parse(m[2]), 'base64'))
      .digest('hex');
  }
  return out;
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
