import * as core from '@actions/core';
import { buildImages, registryLogin } from './build';
import { connect, hostLogsIn, jobContext } from './connect';
import { dryRunRollback, printDeployFiles, printPlan } from './dry-run';
import { InputError } from './errors';
import { LocalRunner } from './exec';
import type { Shell } from './host/shell';
import { Inputs } from './inputs';
import { findTarget, readLedger } from './ledger';
import { LayerOutcome, LayerPlan, RunContext, runLayer } from './layer';
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
    const { remote, finish, info } = await connect(inputs, true);
    try {
      await connectedChecks(remote, prepared, inputs, info);
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
    sha: jobContext().sha || '0000000',
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
    printDeployFiles(prepared, plans);
    // With a host: read-only (no lock, no login), what each service runs now and what it would run.
    if (inputs.host) {
      const { remote, finish, info } = await connect(inputs, true);
      try {
        await connectedChecks(remote, prepared, inputs, info);
        await printPlan(remote, plans, 'would deploy release');
        await checkImages(remote, prepared, inputs, remote.engine());
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
  // The registry is asked at once, beside Docker's own checks, unless it needs the host's login (made
  // under the lock). Its verdict is told after the swarm's checks, which read what the lock guards.
  let registryCheck: Promise<void> | undefined;
  const { remote, ctx, finish, info } = await connect(inputs, false, async (r) => {
    if (!hostLogsIn(inputs)) {
      registryCheck = checkImages(r, prepared, inputs, r.engine());
      registryCheck.catch(() => undefined);
    }
    await checkPreviewCap(
      r,
      plans.map((p) => p.stack),
      inputs.maxPreviews,
    );
  });
  try {
    const [checked, registry] = await Promise.allSettled([
      connectedChecks(remote, prepared, inputs, info),
      registryCheck ?? checkImages(remote, prepared, inputs, remote.engine()),
    ]);
    if (checked.status === 'rejected') throw checked.reason;
    if (registry.status === 'rejected') throw registry.reason;
    const nodes = checked.value;
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

/** The layer plan that brings a stack back to the release `rollback-to` names, found in its ledger. */
async function rollbackPlan(remote: Shell, inputs: Inputs, stack: string): Promise<LayerPlan> {
  const ledger = await readLedger(remote, inputs.remoteDir, stack);
  if (!ledger)
    throw new InputError(
      `No deploy history for stack "${stack}" on ${remote.where} (${inputs.remoteDir}/stacks/${stack}/ledger.json): ` +
        'it was never deployed by this action, or remote-dir differs.',
    );
  const target = findTarget(ledger, inputs.rollbackTo);
  const versions = Object.entries(target.versions).map(([k, v]) => `${k} ${v}`);
  core.info(`${stack}: rolling back to release ${target.release} of ${target.time} (${versions.join(', ')}).`);
  // The recorded release knows how long its gate may take; an older record does not.
  const timeoutS = inputs.timeout ?? target.timeoutS ?? FALLBACK_TIMEOUT_S;
  const how = target.timeoutS ? 'auto, as recorded with the release' : 'no figure recorded with the release';
  return {
    stack,
    release: target.release,
    kind: 'rollback',
    dir: target.dir,
    composePaths: target.composePaths,
    versions: target.versions,
    watches: target.watch,
    timeoutS,
    timing: inputs.timeout !== undefined ? `timeout ${timeoutS} s (input)` : `timeout ${timeoutS} s (${how})`,
    secretNames: target.secrets,
    fileHashes: target.files,
  };
}

export async function commandRollback(inputs: Inputs): Promise<Outcome> {
  const { remote, ctx, finish } = await connect(inputs, inputs.dryRun);
  try {
    const plans: LayerPlan[] = [];
    // Every target is found before anything is touched: an unknown version changes nothing.
    for (const s of inputs.stacks) plans.push(await rollbackPlan(remote, inputs, s.name));
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
