import * as core from '@actions/core';
import { ServiceGate } from './gate';
import { Shell, shellJoin } from './host/shell';
import { Clock, pollUntil, retry } from './retry-helper';
import { ServiceState, Snapshot, countStates, normalizeImage, onCurrentSpec } from './swarm';

/**
 * The services of a failed layer that need `docker service rollback`: changed by this deploy,
 * existed before (a new service has nothing to go back to), and not already rolled back by Swarm.
 */
export function servicesToRollBack(gates: ServiceGate[], snap: Snapshot): string[] {
  return gates
    .filter((g) => {
      const now = snap.services.get(g.watch.name);
      if (!now || !g.watch.before || !g.changed(now)) return false;
      const state = now.update && now.update.startedAt !== g.watch.before.update?.startedAt ? now.update.state : '';
      // After rollback_paused Swarm already restored the old spec: another rollback would re-apply the new one.
      return !['rollback_started', 'rollback_completed', 'rollback_paused'].includes(state);
    })
    .map((g) => g.watch.name);
}

export interface RollbackTarget {
  /** The image it must be back on. */
  image: string;
  /** StartedAt of the update seen when the gate failed: a rollback we asked for must be a newer one, completed. */
  staleStartedAt?: string;
  /** Host clock (ms) when we asked for the rollback. */
  requestedAt?: number;
}

export interface RollbackWait {
  targets: Map<string, RollbackTarget>;
  timeoutMs: number;
  pollMs: number;
  poll: () => Promise<Snapshot>;
  clock?: Clock;
}

function isBack(svc: ServiceState | undefined, target: RollbackTarget, snap: Snapshot): boolean {
  if (!svc || normalizeImage(svc.image) !== normalizeImage(target.image)) return false;
  const { converged, running } = onCurrentSpec(
    svc,
    snap.tasks.filter((t) => t.serviceId === svc.id),
  );
  if (!converged) return false;
  const u = svc.update;
  if (target.staleStartedAt !== undefined) {
    if (u && !['rollback_completed', 'completed'].includes(u.state)) return false;
    // Our rollback's own status, or, once Swarm has folded it back into the older status (seen on
    // 20.10 under load), tasks that all started running after we asked: not the old ones.
    const ours = !!u && u.startedAt !== target.staleStartedAt;
    return ours || (target.requestedAt !== undefined && running.every((t) => t.at >= target.requestedAt!));
  }
  return !u || ['rollback_completed', 'completed'].includes(u.state);
}

export interface RollbackContext {
  /** Reads the stack (reconnecting if it must). */
  poll: () => Promise<Snapshot>;
  /** Each service as it was before the deploy. */
  before: Map<string, ServiceState | undefined>;
  /** StartedAt of the update seen when the gate failed, per service. */
  stale: Map<string, string>;
}

/** Whether Swarm has taken the rollback of this service in (a newer rollback update, or the old spec back). */
export function rollbackTaken(
  svc: ServiceState | undefined,
  before: ServiceState | undefined,
  staleStartedAt: string,
): boolean {
  if (!svc) return true;
  const u = svc.update;
  if (u && u.startedAt !== staleStartedAt && u.state.startsWith('rollback')) return true;
  return !!before?.taskSpec && before.taskSpec === svc.taskSpec;
}

const isLost = (e: Error) => /Lost the SSH connection|did not answer within/.test(e.message);

/**
 * Asks Swarm to roll the services back to their previous spec (one remote command). Never repeated
 * blindly: a second rollback would swap the failed spec back in. After a lost reply, the state says
 * which services still need it.
 */
export async function rollbackServices(remote: Shell, names: string[], ctx: RollbackContext): Promise<void> {
  if (!names.length) return;
  core.info(`Rolling back ${names.join(', ')} to the previous spec.`);
  const script = (ns: string[]) =>
    ns.map((n) => shellJoin(['docker', 'service', 'rollback', '--detach', n])).join(' && ');
  let pending = names;
  await retry(
    {
      attempts: 3,
      retryable: isLost,
      onRetry: async () => {
        const snap = await ctx.poll();
        pending = pending.filter(
          (n) => !rollbackTaken(snap.services.get(n), ctx.before.get(n), ctx.stale.get(n) ?? ''),
        );
        const still = pending.length ? `${pending.join(', ')} still need(s) it` : 'it was taken in';
        core.warning(`The answer to docker service rollback was lost; Swarm's state says ${still}.`);
      },
    },
    async () => {
      if (!pending.length) return;
      const res = await remote.sh(script(pending), { retry: false });
      if (res.code !== 0)
        throw new Error(`docker service rollback failed on ${remote.where}: ${(res.stderr || res.stdout).trim()}`);
    },
  );
}

/** What a service not back looked like, for the job's note: the host may still be finishing it. */
function lastSeen(svc: ServiceState | undefined, snap: Snapshot | undefined): string {
  if (!snap) return 'the Swarm state could not be read';
  if (!svc) return 'the service is gone';
  const tasks = snap.tasks.filter((t) => t.serviceId === svc.id);
  const { running, need } = onCurrentSpec(svc, tasks);
  const states = countStates(tasks.filter((t) => t.desired === 'running'));
  return (
    `${svc.image}, ${running.length}/${need} running on it${states ? ` (${states})` : ''}, update ` +
    `${svc.update?.state || 'none'}`
  );
}

export interface RolledBack {
  notBack: string[];
  snap?: Snapshot;
  lastSeen: Map<string, string>;
}

/** Waits until every service runs its old image again, all replicas up; returns those that did not make it. */
export async function waitRolledBack(w: RollbackWait): Promise<RolledBack> {
  let snap: Snapshot | undefined;
  let said = false;
  return pollUntil<RolledBack>({ timeoutMs: w.timeoutMs, clock: w.clock }, async (p) => {
    try {
      snap = await w.poll();
    } catch (e) {
      // One failed read is not a verdict: keep trying until the bound.
      if (!said) core.warning(`Cannot read the Swarm state while waiting for the rollback: ${(e as Error).message}`);
      said = true;
    }
    const s = snap;
    const notBack = [...w.targets].filter(([name, t]) => !s || !isBack(s.services.get(name), t, s)).map(([n]) => n);
    if (notBack.length && !p.expired()) return { waitMs: w.pollMs };
    return { done: { notBack, snap, lastSeen: new Map(notBack.map((n) => [n, lastSeen(s?.services.get(n), s)])) } };
  });
}
