import * as core from '@actions/core';
import { ServiceGate } from './gate';
import { Remote, shellJoin } from './remote';
import { ServiceState, Snapshot, normalizeImage } from './swarm';

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
}

export interface RollbackWait {
  targets: Map<string, RollbackTarget>;
  timeoutMs: number;
  pollMs: number;
  poll: () => Promise<Snapshot>;
}

function isBack(svc: ServiceState | undefined, target: RollbackTarget, snap: Snapshot): boolean {
  if (!svc || normalizeImage(svc.image) !== normalizeImage(target.image)) return false;
  if (target.staleStartedAt !== undefined) {
    // Until Swarm reports our rollback completed, running tasks may still be its start-first overlap.
    if (!svc.update || svc.update.startedAt === target.staleStartedAt || svc.update.state !== 'rollback_completed') return false;
  } else if (svc.update && !['rollback_completed', 'completed'].includes(svc.update.state)) return false;
  const desired = snap.tasks.filter((t) => t.serviceId === svc.id && t.desired === 'running');
  const running = desired.filter((t) => t.state === 'running' && t.image === svc.image);
  const need = svc.replicas ?? desired.length;
  return running.length === need && desired.length === need;
}

/** Asks Swarm to roll the services back to their previous spec (one remote command). */
export async function rollbackServices(remote: Remote, names: string[]): Promise<void> {
  if (!names.length) return;
  core.info(`Rolling back ${names.join(', ')} to the previous spec.`);
  const script = names.map((n) => shellJoin(['docker', 'service', 'rollback', '--detach', n])).join(' && ');
  const res = await remote.sh(script, { retry: true });
  if (res.code !== 0) throw new Error(`docker service rollback failed on ${remote.where}: ${(res.stderr || res.stdout).trim()}`);
}

/** Waits until every service runs its old image again, all replicas up; returns those that did not make it. */
export async function waitRolledBack(w: RollbackWait): Promise<{ notBack: string[]; snap: Snapshot }> {
  const deadline = Date.now() + w.timeoutMs;
  for (;;) {
    const snap = await w.poll();
    const notBack = [...w.targets].filter(([name, t]) => !isBack(snap.services.get(name), t, snap)).map(([n]) => n);
    if (!notBack.length || Date.now() >= deadline) return { notBack, snap };
    await new Promise((r) => setTimeout(r, w.pollMs));
  }
}
