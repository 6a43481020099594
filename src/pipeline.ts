import * as core from '@actions/core';
import { GateResult, ServiceGate, Watch, runGate } from './gate';
import { Inputs } from './inputs';
import { Ledger, ReleaseRecord, filesDir, readLedger, saveRecord, stackDir } from './ledger';
import { ShippedPath, installFiles } from './files';
import { COMMAND_TIMEOUT_MS, Remote, shellJoin } from './remote';
import { redact } from './mask';
import { RollbackTarget, rollbackServices, servicesToRollBack, waitRolledBack } from './rollback';
import { PreparedStack, expectedImages, fullName, stackDeploy, uploadRelease } from './stack';
import { ConfigPlan, SecretPlan, ensureSecrets, nameSecrets, pruneConfigs, pruneSecrets } from './secrets';
import { Snapshot, TaskState, normalizeImage, readStack } from './swarm';
import { stabilitySeconds } from './timing';
import { NODES_SCRIPT, NodeFacts, parseNodes } from './placement';
import { VerifyCheck, describeFailure, runVerify } from './verify';

export interface RunContext {
  inputs: Inputs;
  remote: Remote;
  sha: string;
  ref: string;
  actor: string;
  runUrl: string;
  withRegistryAuth: boolean;
  detachFlag: boolean;
  pollMs: number;
}

export interface ServiceRow {
  stack: string;
  service: string;
  before: string;
  after: string;
  /** The image the service runs at the verdict (`repo:tag@sha256:<12 hex>`). */
  image: string;
  replicas: string;
  state: string;
  seconds: number;
  detail: string;
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

export function watchesFor(stack: PreparedStack, fixedStability?: number): Watch[] {
  const images = expectedImages(stack);
  return Object.values(stack.services).map((s) => {
    const name = fullName(stack.name, s.name);
    return { name, expectedImage: images[name], stabilityMs: stabilitySeconds(s, fixedStability) * 1000 };
  });
}

// A poll is bounded: a wedged engine counts as a failed poll, and the gate's deadline holds.
const POLL_BOUND_MS = 15_000;

function readSnapshot(remote: Remote, stack: string, msLeft = POLL_BOUND_MS): Promise<Snapshot> {
  return readStack(remote.engine(), stack, Math.max(1000, Math.min(POLL_BOUND_MS, msLeft))).catch((e: Error) => {
    throw new Error(`reading stack ${stack} failed: ${e.message}`);
  });
}

const tag = (image?: string | null) =>
  image ? (image.split('@')[0].split('/').pop() ?? '').split(':').slice(1).join(':') || image : '—';

/** One failed task and what Swarm said; given the swarm's nodes (more than one), where it ran. */
export function describeTask(t: TaskState, nodes?: Map<string, NodeFacts>): string {
  const exit = t.exitCode !== null && t.exitCode !== undefined && t.exitCode !== 0 ? `, exit ${t.exitCode}` : '';
  const name = t.node ? nodes?.get(t.node)?.hostname : undefined;
  const on = t.node && nodes ? ` on ${name || `node ${t.node.slice(0, 12)}`}` : '';
  // Swarm's agent falls back to a local image when the pull fails: "No such image" is a failed pull.
  const pull =
    name && /^No such image/.test(t.err)
      ? ` (${name} could not pull the image: can it reach the registry, with the credentials?)`
      : '';
  return `task ${t.id.slice(0, 12)} (slot ${t.slot})${on} ${t.state}${exit}: ${t.err || t.message}${pull}`;
}

/** The nodes the scheduler cannot use right now: the usual reason a task has nowhere to go. */
export function nodesNotTakingTasks(nodes: NodeFacts[]): string {
  const off = nodes
    .filter((n) => !n.schedulable)
    .map((n) => `${n.hostname || n.id.slice(0, 12)} (${n.state && n.state !== 'ready' ? n.state : n.availability})`);
  return off.length ? `Swarm nodes not taking new tasks: ${off.join(', ')}.` : '';
}

/** Every node of the swarm, for explaining a failure; none when they cannot be read (a worker's view, a lost connection). */
async function readNodes(remote: Remote): Promise<NodeFacts[]> {
  const res = await remote.sh(NODES_SCRIPT, { retry: true, silent: true, timeoutMs: 30_000 }).catch(() => undefined);
  try {
    return res?.code === 0 ? parseNodes(res.stdout) : [];
  } catch {
    return [];
  }
}

// A task that never got a container has no logs to show.
const NEVER_STARTED = new Set(['new', 'pending', 'assigned', 'accepted']);

/** The last lines a failed task printed, bounded so a chatty crash cannot flood the log; known secrets masked. */
async function logTail(remote: Remote, taskId: string, lines = 20, bytes = 4000): Promise<string> {
  const res = await remote.sh(
    `${shellJoin(['docker', 'service', 'logs', '--raw', '--no-trunc', '--tail', String(lines), taskId])} 2>&1 | tail -c ${bytes}`,
    { retry: true, silent: true, timeoutMs: 30_000 },
  );
  return redact(res.stdout.trim());
}

/** Services whose spec this deploy changed (or created), judged against the snapshot taken before it. */
export function touchedServices(gates: ServiceGate[], now: Snapshot): { changed: string[]; created: string[] } {
  const changed: string[] = [];
  const created: string[] = [];
  for (const g of gates) {
    const svc = now.services.get(g.watch.name);
    if (!svc) continue;
    const b = g.watch.before;
    if (!b) created.push(g.watch.name);
    else if (
      b.taskSpec && svc.taskSpec ? b.taskSpec !== svc.taskSpec : normalizeImage(b.image) !== normalizeImage(svc.image)
    )
      changed.push(g.watch.name);
  }
  return { changed, created };
}

/**
 * One layer: `docker stack deploy` from the release folder, then the gate on Swarm's own state;
 * on failure, the services this deploy changed go back to their previous spec, gated too, and the
 * services it created are removed.
 */
export async function deployLayer(
  ctx: RunContext,
  plan: LayerPlan,
): Promise<{ outcome: LayerOutcome; gate: GateResult }> {
  const { remote } = ctx;
  const { stack, dir: releaseDir, composePaths, watches, timeoutS } = plan;
  const before = await readSnapshot(remote, stack);
  const poll = (msLeft?: number) => readSnapshot(remote, stack, msLeft);
  const started = before.now;
  const t0 = Date.now();
  const gates = watches.map((w) => new ServiceGate({ ...w, before: before.services.get(w.name) }, started));
  const finishedAt = new Map<string, number>();
  let gate: GateResult;
  let deployError: string | undefined;
  try {
    core.info(
      await stackDeploy(remote, releaseDir, stack, composePaths, {
        withRegistryAuth: ctx.withRegistryAuth,
        detachFlag: ctx.detachFlag,
        timeoutMs: Math.max(COMMAND_TIMEOUT_MS, timeoutS * 1000),
      }),
    );
  } catch (e) {
    // The CLI updates services one by one and stops at the first error: those before it run the
    // new spec. Nothing changed: the error is the whole story. Something changed: undo it, gated.
    deployError = redact((e as Error).message);
    const now = await poll()
      .catch(() => poll())
      .catch(() => undefined);
    if (!now)
      throw new Error(
        `${deployError}\nThe stack could not be read afterwards: check which services changed on the host.`,
      );
    const touched = touchedServices(gates, now);
    if (!touched.changed.length && !touched.created.length) throw e;
    core.error(deployError, { title: `docker stack deploy ${stack} failed part-way` });
    for (const g of gates)
      if ([...touched.changed, ...touched.created].includes(g.watch.name))
        g.verdict = { phase: 'failed', detail: 'changed by a `docker stack deploy` that then failed' };
    gate = { ok: false, timedOut: false, gates, last: now, polls: 1 };
  }
  if (!deployError) {
    core.info(
      `Gate: watching ${watches.length} service(s) of ${stack}; ${plan.timing ?? `timeout ${timeoutS} s`}; poll ${ctx.pollMs} ms.`,
    );
    gate = await runGate(gates, {
      timeoutMs: timeoutS * 1000,
      pollMs: ctx.pollMs,
      poll: async (msLeft) => {
        const s = await poll(msLeft);
        for (const g of gates) if (g.done && !finishedAt.has(g.watch.name)) finishedAt.set(g.watch.name, Date.now());
        return s;
      },
    });
  }
  gate = gate!;
  const reportedAt = Date.now();
  core.info(
    `Gate: ${gate.polls} polls in ${Math.round((reportedAt - t0) / 100) / 10} s (${remote.commands} remote commands and ${remote.engine().requests} Engine API requests so far in this job).`,
  );
  const rows = (snap: Snapshot, state: (g: ServiceGate) => string): ServiceRow[] =>
    gates.map((g) => {
      const svc = snap.services.get(g.watch.name);
      const running = svc
        ? snap.tasks.filter((t) => t.serviceId === svc.id && t.desired === 'running' && t.state === 'running').length
        : 0;
      return {
        stack,
        service: g.watch.name,
        before: tag(g.watch.before?.image),
        after: tag(g.watch.expectedImage),
        image: (svc?.image ?? g.watch.expectedImage).replace(/@sha256:([0-9a-f]{12})[0-9a-f]+$/, '@sha256:$1'),
        replicas: svc ? `${running}/${svc.replicas ?? 'global'}` : '—',
        state: state(g),
        seconds: Math.round(((finishedAt.get(g.watch.name) ?? reportedAt) - t0) / 100) / 10,
        detail: g.verdict.detail,
      };
    });

  // Healthy for Swarm; the requests of input `verify` must answer too, or the layer fails like a gate.
  const verifyFailures = gate.ok && plan.verify?.length ? await runVerify(remote, stack, plan.verify) : [];
  if (gate.ok && !verifyFailures.length) {
    const images: Record<string, string> = {};
    for (const w of watches) images[w.name] = gate.last.services.get(w.name)?.image ?? w.expectedImage;
    return {
      outcome: { stack, result: 'deployed', rows: rows(gate.last, () => 'healthy'), images, polls: gate.polls },
      gate,
    };
  }

  // Explain every failed service: Swarm's words, the failing tasks, and what they printed last.
  // Services Swarm is still rolling back failed too: explain them with the others.
  const parts: string[] = [];
  if (deployError) parts.push(deployError);
  else if (verifyFailures.length) parts.push(...verifyFailures.map((f) => redact(describeFailure(f))));
  else {
    const nodeList = await readNodes(remote);
    // On one node, where a task ran says nothing.
    const nodes = nodeList.length > 1 ? new Map(nodeList.map((n) => [n.id, n])) : undefined;
    for (const g of gates.filter((x) => x.verdict.phase === 'failed' || x.verdict.phase === 'rolling-back')) {
      const tasks = (g.verdict.failedTasks ?? []).slice(0, 3);
      let text = `${g.watch.name}: ${g.verdict.detail}`;
      for (const t of tasks) text += `\n    ${describeTask(t, nodes)}`;
      if (tasks[0] && !NEVER_STARTED.has(tasks[0].state)) {
        const tail = await logTail(remote, tasks[0].id).catch(() => '');
        if (tail)
          text += `\n    last log lines of task ${tasks[0].id.slice(0, 12)}:\n      ${tail.split('\n').slice(-10).join('\n      ')}`;
      }
      parts.push(redact(text));
    }
    const off = nodesNotTakingTasks(nodeList);
    if (off && parts.length) parts[parts.length - 1] += `\n  ${off}`;
    for (const p of parts) core.error(p, { title: `Gate failed: ${p.split(':')[0]}` });
  }

  const { result, note, targets, removed } = await undoLayer(ctx, plan, gates, gate.last, poll);
  const after = await poll().catch(() => gate.last);
  return {
    outcome: {
      stack,
      result,
      rows: rows(after, (g) =>
        removed.includes(g.watch.name)
          ? 'removed'
          : g.verdict.phase === 'failed' && !targets.has(g.watch.name)
            ? 'failed'
            : targets.has(g.watch.name)
              ? 'rolled back'
              : g.verdict.phase,
      ),
      images: {},
      error: `Stack ${stack} failed ${deployError ? 'to deploy' : verifyFailures.length ? 'verification (healthy for Swarm, but a request did not answer as expected)' : `its health gate${gate.timedOut ? ' (timeout)' : ''}`}.\n  ${parts.join('\n  ')}\n${note}`,
      polls: gate.polls,
    },
    gate,
  };
}

/**
 * Brings back every service this deploy changed (those Swarm rolled back itself only need watching)
 * and removes the services it created. Never throws: the gate's explanation stays the job's reason.
 */
async function undoLayer(
  ctx: RunContext,
  plan: LayerPlan,
  gates: ServiceGate[],
  gateLast: Snapshot,
  poll: () => Promise<Snapshot>,
): Promise<{ result: LayerOutcome['result']; note: string; targets: Map<string, RollbackTarget>; removed: string[] }> {
  const { remote } = ctx;
  const { stack } = plan;
  // The gate's last snapshot may be old (its polls failed): decide from a fresh one when it can be read.
  const last = await poll().catch(() => gateLast);
  const touched = touchedServices(gates, last);
  const toRoll = servicesToRollBack(gates, last).filter((n) => touched.changed.includes(n));
  const targets = new Map<string, RollbackTarget>();
  for (const g of gates) {
    if (
      !g.watch.before ||
      !(
        touched.changed.includes(g.watch.name) ||
        (g.verdict.swarmRolledBack ?? false) ||
        g.verdict.phase === 'rolling-back'
      )
    )
      continue;
    const ours = toRoll.includes(g.watch.name);
    targets.set(g.watch.name, {
      image: g.watch.before.image,
      staleStartedAt: ours ? (last.services.get(g.watch.name)?.update?.startedAt ?? '') : undefined,
      requestedAt: ours ? last.now : undefined,
    });
  }
  const notes: string[] = [];
  let result: LayerOutcome['result'] = 'failed';
  let back = true;
  await core.group(`Rollback ${stack}`, async () => {
    if (targets.size) {
      try {
        const before = new Map(gates.map((g) => [g.watch.name, g.watch.before]));
        await rollbackServices(remote, toRoll, {
          poll,
          before,
          stale: new Map([...targets].map(([n, t]) => [n, t.staleStartedAt ?? ''])),
        });
        const { notBack, lastSeen } = await waitRolledBack({
          targets,
          timeoutMs: plan.timeoutS * 1000,
          pollMs: ctx.pollMs,
          poll,
        });
        if (notBack.length) {
          back = false;
          notes.push(
            `Rollback did not converge within ${plan.timeoutS} s for ${notBack.map((n) => `${n} (last seen: ${lastSeen.get(n)})`).join(', ')}: check the host.`,
          );
        } else
          notes.push(
            `The previous version is running again: ${[...targets].map(([n, t]) => `${n} → ${tag(t.image)}`).join(', ')}.`,
          );
      } catch (e) {
        back = false;
        notes.push(`Rollback could not be confirmed: ${(e as Error).message}`);
      }
    }
    if (touched.created.length) {
      // A new service of a failed release has nothing to go back to: it would crash-loop on.
      const rm = await remote
        .sh(
          touched.created
            .map(
              (n) =>
                `${shellJoin(['docker', 'service', 'rm', n])} >/dev/null 2>&1 || ! ${shellJoin(['docker', 'service', 'inspect', n])} >/dev/null 2>&1`,
            )
            .join(' && '),
          { retry: true },
        )
        .catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
      if (rm.code === 0) notes.push(`Removed the service(s) this release created: ${touched.created.join(', ')}.`);
      else {
        back = false;
        notes.push(
          `Could not remove the service(s) this release created (${touched.created.join(', ')}): ${rm.stderr.trim()}`,
        );
      }
    }
    if (!targets.size && !touched.created.length)
      notes.push('Nothing to roll back: this deploy changed no running service.');
    if (back && (targets.size || touched.created.length)) result = 'rolled-back';
    for (const n of notes) core.info(n);
  });
  return { result, note: notes.join('\n'), targets, removed: touched.created };
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

/** Upload (for a deploy), deploy and gate, record in the ledger — for one layer, under the run's locks. */
export async function runLayer(ctx: RunContext, plan: LayerPlan): Promise<LayerOutcome> {
  const { remote, inputs } = ctx;
  const ledger: Ledger | null = await readLedger(remote, inputs.remoteDir, plan.stack);
  // Named on the host (keyed hash) before the override file that carries the names is uploaded.
  if (plan.secrets?.length) await nameSecrets(remote, inputs.remoteDir, plan.secrets);
  if (plan.uploads) await uploadRelease(remote, plan.dir, plan.uploads);
  const notes: string[] = [];
  if (plan.shipped?.length) {
    const f = await installFiles(remote, filesDir(inputs.remoteDir, plan.stack), plan.shipped);
    const list = (xs: ShippedPath[]) => xs.map((x) => `${x.rel}${x.kind === 'dir' ? '/' : ''} (${x.hash})`).join(', ');
    notes.push(
      `Bind-mounted files of ${plan.stack}: ${[f.shipped.length && `shipped ${list(f.shipped)}`, f.present.length && `unchanged ${list(f.present)}`].filter(Boolean).join('; ')}.`,
    );
    core.info(notes[notes.length - 1]);
  }
  if (plan.secrets?.length) {
    const s = await ensureSecrets(remote, plan.stack, plan.secrets);
    const parts = [
      s.created.length && `created ${s.created.join(', ')}`,
      s.generated.length && `generated ${s.generated.join(', ')} (value never shown)`,
      s.reused.length && `unchanged ${s.reused.join(', ')}`,
    ].filter(Boolean);
    notes.push(`Secrets of ${plan.stack}: ${parts.join('; ')}.`);
    core.info(notes[notes.length - 1]);
  }
  if (plan.configs?.length) {
    notes.push(
      `Configs of ${plan.stack}, named by their content: ${plan.configs.map((c) => `${c.key} → ${c.name}`).join(', ')}.`,
    );
    core.info(notes[notes.length - 1]);
  }
  const rec: ReleaseRecord = {
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
  // Recorded before the deploy: a run cancelled mid-gate still leaves a trace of what may be running.
  // Nothing is pruned yet: until the gate passes, the older releases are what a rollback needs.
  const started = await saveRecord(remote, inputs.remoteDir, plan.stack, ledger, rec, inputs.keepReleases, false);
  let outcome: LayerOutcome;
  try {
    ({ outcome } = await deployLayer(ctx, plan));
  } catch (e) {
    await saveRecord(
      remote,
      inputs.remoteDir,
      plan.stack,
      started,
      { ...rec, result: 'failed', time: new Date().toISOString() },
      inputs.keepReleases,
      false,
    ).catch(() => undefined);
    throw e;
  }
  const kept = await saveRecord(
    remote,
    inputs.remoteDir,
    plan.stack,
    started,
    { ...rec, result: outcome.result, images: outcome.images, time: new Date().toISOString() },
    inputs.keepReleases,
    outcome.result === 'deployed',
  );
  // Old secrets go once no kept release uses them: a rollback within the history still finds its own.
  if (outcome.result === 'deployed') {
    const shared = [...new Set((plan.secrets ?? []).filter((x) => x.shared).map((x) => x.key))];
    await pruneSecrets(remote, plan.stack, new Set(kept.releases.flatMap((r) => r.secrets ?? [])), {
      remoteDir: inputs.remoteDir,
      shared,
    });
    await pruneConfigs(remote, plan.stack, plan.configs ?? []);
  }
  return notes.length ? { ...outcome, notes } : outcome;
}
