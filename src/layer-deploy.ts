import * as core from '@actions/core';
import { GateResult, ServiceGate, runGate } from './gate';
import type { Host } from './host/shell';
import type { LayerOutcome, LayerPlan, RunContext } from './layer';
import { explainGateFailure } from './layer-failure';
import { GateTimes, serviceRows } from './layer-rows';
import { touchedServices, undoLayer } from './layer-undo';
import { redact } from './mask';
import { COMMAND_TIMEOUT_MS } from './remote';
import { RollbackTarget } from './rollback';
import { stackDeploy } from './stack';
import { Snapshot, readStack } from './swarm';
import { describeFailure, runVerify } from './verify';

// A poll is bounded: a wedged engine counts as a failed poll, and the gate's deadline holds.
const POLL_BOUND_MS = 15_000;

function readSnapshot(remote: Host, stack: string, msLeft = POLL_BOUND_MS): Promise<Snapshot> {
  return readStack(remote.engine(), stack, Math.max(1000, Math.min(POLL_BOUND_MS, msLeft))).catch((e: Error) => {
    throw new Error(`reading stack ${stack} failed: ${e.message}`);
  });
}

type Poll = (msLeft?: number) => Promise<Snapshot>;

/** A `docker stack deploy` that failed after changing some services: its error, and the gate it stands for. */
interface PartFailed {
  error: string;
  gate: GateResult;
}

/**
 * `docker stack deploy` from the release folder. The CLI updates services one by one and stops at the
 * first error: those before it run the new spec. Nothing changed: the error is the whole story (thrown).
 * Something changed: the services it touched fail the gate, to be undone.
 */
async function deployStack(ctx: RunContext, plan: LayerPlan, gates: ServiceGate[], poll: Poll) {
  const { stack } = plan;
  try {
    core.info(
      await stackDeploy(ctx.remote, plan.dir, stack, plan.composePaths, {
        withRegistryAuth: ctx.withRegistryAuth,
        detachFlag: ctx.detachFlag,
        onNoDetach: () => {
          ctx.detachFlag = false;
          core.info(
            "The host's docker CLI is older than Docker 26 (no --detach): `docker stack deploy` ran without it.",
          );
        },
        timeoutMs: Math.max(COMMAND_TIMEOUT_MS, plan.timeoutS * 1000),
      }),
    );
    return undefined;
  } catch (e) {
    const error = redact((e as Error).message);
    const now = await poll()
      .catch(() => poll())
      .catch(() => undefined);
    if (!now)
      throw new Error(`${error}\nThe stack could not be read afterwards: check which services changed on the host.`);
    const touched = touchedServices(gates, now);
    if (!touched.changed.length && !touched.created.length) throw e;
    core.error(error, { title: `docker stack deploy ${stack} failed part-way` });
    for (const g of gates)
      if ([...touched.changed, ...touched.created].includes(g.watch.name))
        g.verdict = { phase: 'failed', detail: 'changed by a `docker stack deploy` that then failed' };
    const failed: PartFailed = { error, gate: { ok: false, timedOut: false, gates, last: now, polls: 1 } };
    return failed;
  }
}

/** The gate on Swarm's own state, noting when each service got its verdict. */
function watchGate(ctx: RunContext, plan: LayerPlan, gates: ServiceGate[], poll: Poll, times: GateTimes) {
  const timing = plan.timing ?? `timeout ${plan.timeoutS} s`;
  const every = ctx.minPollMs !== undefined ? `${ctx.minPollMs}–${ctx.pollMs}` : `${ctx.pollMs}`;
  core.info(`Gate: watching ${plan.watches.length} service(s) of ${plan.stack}; ${timing}; poll ${every} ms.`);
  const { finishedAt } = times;
  return runGate(gates, {
    timeoutMs: plan.timeoutS * 1000,
    pollMs: ctx.pollMs,
    minPollMs: ctx.minPollMs,
    poll: async (msLeft) => {
      const s = await poll(msLeft);
      for (const g of gates) if (g.done && !finishedAt.has(g.watch.name)) finishedAt.set(g.watch.name, Date.now());
      return s;
    },
  });
}

/** What failed, for the layer's error: the deploy itself, the requests of input `verify`, or the gate. */
function whatFailed(deployError: string | undefined, verifyFailed: boolean, timedOut: boolean): string {
  if (deployError) return 'to deploy';
  if (verifyFailed) return 'verification (healthy for Swarm, but a request did not answer as expected)';
  return `its health gate${timedOut ? ' (timeout)' : ''}`;
}

/** A service's state in the summary after the undo. */
function undoneState(g: ServiceGate, removed: string[], targets: Map<string, RollbackTarget>): string {
  const name = g.watch.name;
  if (removed.includes(name)) return 'removed';
  if (g.verdict.phase === 'failed' && !targets.has(name)) return 'failed';
  return targets.has(name) ? 'rolled back' : g.verdict.phase;
}

/**
 * One layer: `docker stack deploy` from the release folder, then the gate on Swarm's own state;
 * on failure, the services this deploy changed go back to their previous spec, gated too, and the
 * services it created are removed.
 */
export async function deployLayer(
  ctx: RunContext,
  plan: LayerPlan,
  /** Called as the gate starts watching: work that may run beside its polls. */
  onGate?: () => void,
): Promise<{ outcome: LayerOutcome; gate: GateResult }> {
  const { remote } = ctx;
  const { stack, watches } = plan;
  const before = await readSnapshot(remote, stack);
  const poll: Poll = (msLeft) => readSnapshot(remote, stack, msLeft);
  const times: GateTimes = { t0: Date.now(), reportedAt: 0, finishedAt: new Map() };
  const gates = watches.map((w) => new ServiceGate({ ...w, before: before.services.get(w.name) }, before.now));
  const partFailed = await deployStack(ctx, plan, gates, poll);
  const deployError = partFailed?.error;
  if (!partFailed) onGate?.();
  const gate = partFailed?.gate ?? (await watchGate(ctx, plan, gates, poll, times));
  times.reportedAt = Date.now();
  const seconds = Math.round((times.reportedAt - times.t0) / 100) / 10;
  core.info(
    `Gate: ${gate.polls} polls in ${seconds} s (${remote.commands} remote commands and ` +
      `${remote.engine().requests} Engine API requests so far in this job).`,
  );
  const rows = (snap: Snapshot, state: (g: ServiceGate) => string) => serviceRows(stack, gates, snap, times, state);

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

  const parts: string[] = [];
  if (deployError) parts.push(deployError);
  else if (verifyFailures.length) parts.push(...verifyFailures.map((f) => redact(describeFailure(f))));
  else parts.push(...(await explainGateFailure(remote, gates)));

  const { result, note, targets, removed } = await undoLayer(ctx, plan, gates, gate.last, poll);
  const after = await poll().catch(() => gate.last);
  const failed = whatFailed(deployError, verifyFailures.length > 0, gate.timedOut);
  return {
    outcome: {
      stack,
      result,
      rows: rows(after, (g) => undoneState(g, removed, targets)),
      images: {},
      error: `Stack ${stack} failed ${failed}.\n  ${parts.join('\n  ')}\n${note}`,
      polls: gate.polls,
    },
    gate,
  };
}
