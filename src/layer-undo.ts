import * as core from '@actions/core';
import type { ServiceGate } from './gate';
import { Shell, shellJoin } from './host/shell';
import type { LayerOutcome, LayerPlan, RunContext } from './layer';
import { tag } from './layer-rows';
import { RollbackTarget, rollbackServices, servicesToRollBack, waitRolledBack } from './rollback';
import { Snapshot, normalizeImage } from './swarm';

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
 * What goes back and to which image: every service this deploy changed, and those Swarm rolled back
 * (or is rolling back) itself. `toRoll` are the ones this run must roll back; the others only need watching.
 */
function rollbackTargets(
  gates: ServiceGate[],
  last: Snapshot,
  changed: string[],
): { toRoll: string[]; targets: Map<string, RollbackTarget> } {
  const toRoll = servicesToRollBack(gates, last).filter((n) => changed.includes(n));
  const targets = new Map<string, RollbackTarget>();
  for (const g of gates) {
    const { name, before } = g.watch;
    const swarmRolling = (g.verdict.swarmRolledBack ?? false) || g.verdict.phase === 'rolling-back';
    if (!before || !(changed.includes(name) || swarmRolling)) continue;
    const ours = toRoll.includes(name);
    targets.set(name, {
      image: before.image,
      staleStartedAt: ours ? (last.services.get(name)?.update?.startedAt ?? '') : undefined,
      requestedAt: ours ? last.now : undefined,
    });
  }
  return { toRoll, targets };
}

/** A step of the undo: whether it left the layer as it was, and what to say. */
interface Undone {
  ok: boolean;
  note: string;
}

/** Rolls back `toRoll` and waits, gated, until every target runs its previous image again. */
async function rollBack(
  ctx: RunContext,
  plan: LayerPlan,
  gates: ServiceGate[],
  rollback: { toRoll: string[]; targets: Map<string, RollbackTarget> },
  poll: () => Promise<Snapshot>,
): Promise<Undone> {
  const { toRoll, targets } = rollback;
  try {
    const before = new Map(gates.map((g) => [g.watch.name, g.watch.before]));
    await rollbackServices(ctx.remote, toRoll, {
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
      const which = notBack.map((n) => `${n} (last seen: ${lastSeen.get(n)})`).join(', ');
      return { ok: false, note: `Rollback did not converge within ${plan.timeoutS} s for ${which}: check the host.` };
    }
    const running = [...targets].map(([n, t]) => `${n} → ${tag(t.image)}`).join(', ');
    return { ok: true, note: `The previous version is running again: ${running}.` };
  } catch (e) {
    return { ok: false, note: `Rollback could not be confirmed: ${(e as Error).message}` };
  }
}

/** Removes the services this release created: with nothing to go back to, they would crash-loop on. */
async function removeCreated(remote: Shell, created: string[]): Promise<Undone> {
  const rmOne = (n: string) =>
    `${shellJoin(['docker', 'service', 'rm', n])} >/dev/null 2>&1 || ` +
    `! ${shellJoin(['docker', 'service', 'inspect', n])} >/dev/null 2>&1`;
  const rm = await remote
    .sh(created.map(rmOne).join(' && '), { retry: true })
    .catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
  if (rm.code === 0) return { ok: true, note: `Removed the service(s) this release created: ${created.join(', ')}.` };
  return {
    ok: false,
    note: `Could not remove the service(s) this release created (${created.join(', ')}): ${rm.stderr.trim()}`,
  };
}

/**
 * Brings back every service this deploy changed (those Swarm rolled back itself only need watching)
 * and removes the services it created. Never throws: the gate's explanation stays the job's reason.
 */
export async function undoLayer(
  ctx: RunContext,
  plan: LayerPlan,
  gates: ServiceGate[],
  gateLast: Snapshot,
  poll: () => Promise<Snapshot>,
): Promise<{ result: LayerOutcome['result']; note: string; targets: Map<string, RollbackTarget>; removed: string[] }> {
  // The gate's last snapshot may be old (its polls failed): decide from a fresh one when it can be read.
  const last = await poll().catch(() => gateLast);
  const touched = touchedServices(gates, last);
  const rollback = rollbackTargets(gates, last, touched.changed);
  const { targets } = rollback;
  const notes: string[] = [];
  let result: LayerOutcome['result'] = 'failed';
  await core.group(`Rollback ${plan.stack}`, async () => {
    const steps: Undone[] = [];
    if (targets.size) steps.push(await rollBack(ctx, plan, gates, rollback, poll));
    if (touched.created.length) steps.push(await removeCreated(ctx.remote, touched.created));
    notes.push(...steps.map((s) => s.note));
    if (!steps.length) notes.push('Nothing to roll back: this deploy changed no running service.');
    else if (steps.every((s) => s.ok)) result = 'rolled-back';
    for (const n of notes) core.info(n);
  });
  return { result, note: notes.join('\n'), targets, removed: touched.created };
}
