import * as core from '@actions/core';
import { Watch } from './gate';
import type { Host } from './host/shell';
import { Inputs } from './inputs';
import { deployLayer } from './layer-deploy';
import type { ServiceRow } from './layer-rows';
import { Ledger, ReleaseRecord, filesDir, readLedger, saveRecord, stackDir } from './ledger';
import { ShippedPath, installFiles } from './files';
import { PreparedStack, expectedImages, fullName, uploadRelease } from './stack';
import {
  ConfigPlan,
  SecretPlan,
  ensureSecrets,
  nameSecrets,
  prunableSecrets,
  pruneConfigs,
  pruneSecrets,
} from './secrets';
import { stabilitySeconds } from './timing';
import { VerifyCheck } from './verify';

export type { ServiceRow };

export interface RunContext {
  inputs: Inputs;
  remote: Host;
  sha: string;
  ref: string;
  actor: string;
  runUrl: string;
  withRegistryAuth: boolean;
  /** `docker stack deploy --detach=true`, until the host's CLI (older than Docker 26) refuses it. */
  detachFlag: boolean;
  /** The gate's wait between polls, and its least while an update is under way (src/gate.ts). */
  pollMs: number;
  minPollMs?: number;
}

export interface LayerOutcome {
  stack: string;
  result: 'deployed' | 'rolled-back' | 'failed';
  rows: ServiceRow[];
  /** Full service name → image reference with digest. */
  images: Record<string, string>;
  /** Why it failed: per service, state, task errors and log tail. */
  error?: string;
  /** What the layer did besides the gate (secrets created or generated, configs renamed): for the summary. */
  notes?: string[];
  polls: number;
}

export interface LayerPlan {
  stack: string;
  release: string;
  kind: 'deploy' | 'rollback';
  /** Release folder on the host; filled by the plan or created for a deploy. */
  dir: string;
  composePaths: string[];
  uploads?: { rel: string; content: string | Buffer }[];
  versions: Record<string, string>;
  watches: Watch[];
  /** Seconds the gate (and a rollback) may take. */
  timeoutS: number;
  /** How the timeout was set, for the log. */
  timing?: string;
  /** Secrets to create before deploying (deploy), or the names a recorded release used (rollback). */
  secrets?: SecretPlan[];
  /** Configs this deploy names by content (their earlier versions are removed after the gate). */
  configs?: ConfigPlan[];
  secretNames?: string[];
  /** Bind-mounted files to ship (deploy), or the content hashes a recorded release used (rollback). */
  shipped?: ShippedPath[];
  fileHashes?: string[];
  /** Requests sent once the gate passed (input verify). */
  verify?: VerifyCheck[];
}

export function watchesFor(stack: PreparedStack, fixedStability?: number): Watch[] {
  const images = expectedImages(stack);
  return Object.values(stack.services).map((s) => {
    const name = fullName(stack.name, s.name);
    return { name, expectedImage: images[name], stabilityMs: stabilitySeconds(s, fixedStability) * 1000 };
  });
}

export function lockDirFor(remoteDir: string, stack: string): string {
  return `${stackDir(remoteDir, stack)}/lock`;
}

export function releaseDirFor(remoteDir: string, stack: string, release: string, now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stackDir(remoteDir, stack)}/releases/${stamp}-${release}`;
}

/** Ships the bind-mounted files the host does not have yet; says which were shipped and which were there. */
async function shipFiles(ctx: RunContext, plan: LayerPlan, shipped: ShippedPath[]): Promise<string> {
  const f = await installFiles(ctx.remote, filesDir(ctx.inputs.remoteDir, plan.stack), shipped);
  const list = (xs: ShippedPath[]) => xs.map((x) => `${x.rel}${x.kind === 'dir' ? '/' : ''} (${x.hash})`).join(', ');
  const parts = [f.shipped.length && `shipped ${list(f.shipped)}`, f.present.length && `unchanged ${list(f.present)}`];
  return `Bind-mounted files of ${plan.stack}: ${parts.filter(Boolean).join('; ')}.`;
}

/** Creates the layer's secrets the host does not have yet; says which were created, generated or kept. */
async function shipSecrets(ctx: RunContext, plan: LayerPlan, secrets: SecretPlan[]): Promise<string> {
  const s = await ensureSecrets(ctx.remote, plan.stack, secrets);
  const parts = [
    s.created.length && `created ${s.created.join(', ')}`,
    s.generated.length && `generated ${s.generated.join(', ')} (value never shown)`,
    s.reused.length && `unchanged ${s.reused.join(', ')}`,
  ].filter(Boolean);
  return `Secrets of ${plan.stack}: ${parts.join('; ')}.`;
}

/** What the layer's deploy needs on the host: release files, bind-mounted files, secrets; notes for the summary. */
async function shipLayer(ctx: RunContext, plan: LayerPlan): Promise<string[]> {
  const { remote, inputs } = ctx;
  // Named on the host (keyed hash) before the override file that carries the names is uploaded.
  if (plan.secrets?.length) await nameSecrets(remote, inputs.remoteDir, plan.secrets);
  if (plan.uploads) await uploadRelease(remote, plan.dir, plan.uploads);
  const notes: string[] = [];
  const note = (text: string) => {
    notes.push(text);
    core.info(text);
  };
  if (plan.shipped?.length) note(await shipFiles(ctx, plan, plan.shipped));
  if (plan.secrets?.length) note(await shipSecrets(ctx, plan, plan.secrets));
  if (plan.configs?.length) {
    const names = plan.configs.map((c) => `${c.key} → ${c.name}`).join(', ');
    note(`Configs of ${plan.stack}, named by their content: ${names}.`);
  }
  return notes;
}

/** The ledger's record of this layer's deploy (or rollback), as it starts. */
function releaseRecord(ctx: RunContext, plan: LayerPlan): ReleaseRecord {
  return {
    id: `${plan.dir.split('/').pop()}${plan.kind === 'rollback' ? `-rollback-${Date.now()}` : ''}`,
    release: plan.release,
    kind: plan.kind,
    result: 'started',
    time: new Date().toISOString(),
    dir: plan.dir,
    composePaths: plan.composePaths,
    versions: plan.versions,
    images: {},
    watch: plan.watches.map((w) => ({ name: w.name, expectedImage: w.expectedImage, stabilityMs: w.stabilityMs })),
    timeoutS: plan.timeoutS,
    secrets: plan.secrets?.map((s) => s.name) ?? plan.secretNames ?? [],
    ...(plan.shipped?.length || plan.fileHashes?.length
      ? { files: plan.shipped?.map((f) => f.hash) ?? plan.fileHashes }
      : {}),
    sha: ctx.sha,
    ref: ctx.ref,
    actor: ctx.actor,
    runUrl: ctx.runUrl,
  };
}

/** Deploys and gates the layer between two ledger records: `started` before, the result after. */
async function deployRecorded(
  ctx: RunContext,
  plan: LayerPlan,
  ledger: Ledger | null,
  rec: ReleaseRecord,
  onGate?: () => void,
) {
  const { remote, inputs } = ctx;
  const save = (from: Ledger | null, r: ReleaseRecord, prune: boolean) =>
    saveRecord(remote, inputs.remoteDir, plan.stack, from, r, inputs.keepReleases, prune);
  // Recorded before the deploy: a run cancelled mid-gate still leaves a trace of what may be running.
  // Nothing is pruned yet: until the gate passes, the older releases are what a rollback needs.
  const started = await save(ledger, rec, false);
  let outcome: LayerOutcome;
  try {
    ({ outcome } = await deployLayer(ctx, plan, onGate));
  } catch (e) {
    await save(started, { ...rec, result: 'failed', time: new Date().toISOString() }, false).catch(() => undefined);
    throw e;
  }
  const done = { ...rec, result: outcome.result, images: outcome.images, time: new Date().toISOString() };
  const kept = await save(started, done, outcome.result === 'deployed');
  return { outcome, kept };
}

/** Upload (for a deploy), deploy and gate, record in the ledger — for one layer, under the run's locks. */
export async function runLayer(ctx: RunContext, plan: LayerPlan): Promise<LayerOutcome> {
  const { remote, inputs } = ctx;
  const ledger: Ledger | null = await readLedger(remote, inputs.remoteDir, plan.stack);
  const notes = await shipLayer(ctx, plan);
  const shared = [...new Set((plan.secrets ?? []).filter((x) => x.shared).map((x) => x.key))];
  // Listed while the gate polls (a channel of its own), not after it.
  let listed: Promise<Set<string> | Error> | undefined;
  const list = () => (listed = prunableSecrets(remote, plan.stack, shared, true).catch((e: Error) => e));
  const { outcome, kept } = await deployRecorded(ctx, plan, ledger, releaseRecord(ctx, plan), list);
  // Old secrets go once no kept release uses them: a rollback within the history still finds its own.
  if (outcome.result === 'deployed') {
    let names = await (listed ?? list());
    // Its channel failed during the gate (a dropped connection, since reconnected): listed again now.
    if (names instanceof Error) names = await prunableSecrets(remote, plan.stack, shared);
    await pruneSecrets(remote, plan.stack, new Set(kept.releases.flatMap((r) => r.secrets ?? [])), {
      remoteDir: inputs.remoteDir,
      shared,
      listed: names,
    });
    await pruneConfigs(remote, plan.stack, plan.configs ?? []);
  }
  return notes.length ? { ...outcome, notes } : outcome;
}
