import { ServiceState, Snapshot, TaskState, UpdateStatus, countStates, normalizeImage, onCurrentSpec } from './swarm';

type CurrentSpec = ReturnType<typeof onCurrentSpec>;

/** What the gate expects of one service after `docker stack deploy`. */
export interface Watch {
  /** Full Swarm name: `<stack>_<service>`. */
  name: string;
  /** Image from the stack file, without digest. */
  expectedImage: string;
  /** The service as it was before the deploy; undefined for a new service. */
  before?: ServiceState;
  /** How long it must stay healthy after converging. */
  stabilityMs: number;
}

export type Phase = 'pending' | 'rolling-back' | 'converged' | 'stable' | 'failed';

export interface Verdict {
  phase: Phase;
  /** Human text: what the gate sees now, or why it failed. */
  detail: string;
  /** Swarm already rolled the service back itself. */
  swarmRolledBack?: boolean;
  /** The tasks whose failure explains the verdict, newest first. */
  failedTasks?: TaskState[];
}

const FAILED_STATES = new Set(['failed', 'rejected', 'orphaned']);
// A new service has no update policy to stop a crash loop: give up after this many failed tasks.
const NEW_SERVICE_MAX_FAILURES = 3;
// Swarm starts the rolling update of a changed task template within milliseconds; a change that
// dirties no task (placement only, on nodes that still qualify) gets no update at all.
export const UPDATE_START_GRACE_MS = 5000;
// The scheduler's answer for a task no node can take; Swarm retries it forever, so it is a verdict.
const UNPLACEABLE = /no suitable node|insufficient resources|max replicas per node/i;
// A stop-first update can leave the next task pending for a moment while the old one releases its node.
export const PLACEMENT_GRACE_MS = 5000;

/** Tasks of the current spec that failed at or after `since`, newest first. */
function failuresSince(tasks: TaskState[], image: string, since: number): TaskState[] {
  return tasks
    .filter((t) => t.image === image && FAILED_STATES.has(t.state) && t.at >= since)
    .sort((a, b) => b.at - a.at);
}

/**
 * Follows one service through its rolling update. Pure: it is fed snapshots and a clock,
 * so the state machine is unit-tested with fakes and driven by real Swarm state in the lab.
 */
export class ServiceGate {
  convergedAt?: number;
  private runningSet = '';
  verdict: Verdict = { phase: 'pending', detail: 'waiting for the first poll' };

  constructor(
    readonly watch: Watch,
    private readonly startedAt: number,
  ) {}

  get done(): boolean {
    return this.verdict.phase === 'stable' || this.verdict.phase === 'failed';
  }

  /**
   * Whether this deploy changed the service (so a rollback can bring the old one back): a new image,
   * or an update Swarm started. `docker stack deploy` re-submits unchanged services too; those are left alone.
   */
  changed(now?: ServiceState): boolean {
    const b = this.watch.before;
    if (!b) return false;
    return (
      normalizeImage(b.image) !== this.watch.expectedImage ||
      (!!now?.update && now.update.startedAt !== b.update?.startedAt)
    );
  }

  /** The UpdateStatus of an update this deploy started, not one left over from an earlier deploy. */
  private freshUpdate(svc: ServiceState) {
    const u = svc.update;
    if (!u) return null;
    const old = this.watch.before?.update;
    if (old && old.startedAt === u.startedAt) return null;
    return u;
  }

  observe(snap: Snapshot, now: number): Verdict {
    if (this.verdict.phase === 'failed') return this.verdict;
    const v = this.evaluate(snap, now);
    // A stable service is still watched until the layer's verdict: its new version crashing while
    // other services converge is this release failing. Anything short of a failure keeps it stable.
    if (this.verdict.phase === 'stable' && v.phase !== 'failed' && v.phase !== 'rolling-back') return this.verdict;
    this.verdict = v;
    return v;
  }

  private evaluate(snap: Snapshot, now: number): Verdict {
    const w = this.watch;
    const svc = snap.services.get(w.name);
    if (!svc) return { phase: 'failed', detail: 'the service does not exist after the deploy' };
    const tasks = snap.tasks.filter((t) => t.serviceId === svc.id);
    const upd = this.freshUpdate(svc);

    const stuck = this.unplaceable(tasks, svc.image, now);
    if (stuck.length && !upd?.state.startsWith('rollback')) {
      return {
        phase: 'failed',
        detail: `${stuck.length} task(s) cannot be placed: ${stuck[0].err}`,
        failedTasks: stuck,
      };
    }
    const byUpdate = upd && this.updateVerdict(upd, svc, tasks);
    if (byUpdate) return byUpdate;

    // Same image, new env or config: the old tasks already run the image, so they only look converged
    // until Swarm has started (and finished) the update this deploy asked for.
    const templateChanged = !!w.before?.taskSpec && !!svc.taskSpec && w.before.taskSpec !== svc.taskSpec;
    if (templateChanged && !upd && now - this.startedAt < UPDATE_START_GRACE_MS) {
      return { phase: 'pending', detail: 'waiting for Swarm to start the update (the task template changed)' };
    }

    if (normalizeImage(svc.image) !== w.expectedImage) {
      return {
        phase: 'failed',
        detail: `the service runs ${svc.image}, not ${w.expectedImage} (changed by someone else?)`,
      };
    }

    const spec = onCurrentSpec(svc, tasks);
    const { converged, need, running } = spec;

    // A new service has no update to roll back: a crash loop is its failure.
    if (!w.before) {
      const failed = failuresSince(tasks, svc.image, this.startedAt);
      if (failed.length >= NEW_SERVICE_MAX_FAILURES) {
        return {
          phase: 'failed',
          detail: `${failed.length} tasks failed since the deploy started`,
          failedTasks: failed,
        };
      }
    }

    // A service this deploy did not touch only has to be up: a task it loses meanwhile is not the
    // release's doing, and rolling the layer back would not bring it back.
    const untouched = !!w.before && !!w.before.taskSpec && w.before.taskSpec === svc.taskSpec && !upd;
    if (untouched && converged)
      return { phase: 'stable', detail: `${running.length}/${need} running (unchanged by this deploy)` };
    if (!converged) return this.notConverged(spec, tasks, svc.image);
    return this.convergedVerdict(spec, tasks, svc.image, now);
  }

  /** What an update this deploy started says, while Swarm is updating or rolling back; else undefined. */
  private updateVerdict(upd: UpdateStatus, svc: ServiceState, tasks: TaskState[]): Verdict | undefined {
    const msg = upd.message ? `: ${upd.message}` : '';
    const failedTasks = this.newImageFailures(tasks);
    switch (upd.state) {
      case 'rollback_started':
        this.convergedAt = undefined;
        return { phase: 'rolling-back', detail: `Swarm is rolling the update back${msg}`, failedTasks };
      case 'rollback_completed':
        return {
          phase: 'failed',
          detail: `the update failed and Swarm rolled it back${msg}`,
          swarmRolledBack: true,
          failedTasks,
        };
      case 'rollback_paused':
        return { phase: 'failed', detail: `Swarm's rollback is paused${msg}`, failedTasks };
      case 'paused':
        return { phase: 'failed', detail: `the update is paused (failure_action: pause)${msg}`, failedTasks };
      case 'updating': {
        this.convergedAt = undefined;
        const onNew = tasks.filter(
          (t) => t.desired === 'running' && t.state === 'running' && t.image === svc.image,
        ).length;
        return {
          phase: 'pending',
          detail: `updating${msg}; ${onNew}/${svc.replicas ?? 'global'} running the new spec`,
        };
      }
    }
    return undefined;
  }

  /** Not all replicas run the new spec: a failed release if it had converged before, else still pending. */
  private notConverged(spec: CurrentSpec, tasks: TaskState[], image: string): Verdict {
    if (this.convergedAt !== undefined) {
      // It was healthy and lost a task: inside the stability window that is a failed release.
      const failed = failuresSince(tasks, image, this.convergedAt - 1000);
      if (failed.length) {
        const after = Math.round((failed[0].at - this.convergedAt) / 1000);
        const window = Math.round(this.watch.stabilityMs / 1000);
        return {
          phase: 'failed',
          detail:
            `a task of the new version failed ${after} s after the update converged (inside the ${window} ` +
            `s stability window)`,
          failedTasks: failed,
        };
      }
    }
    const states = countStates(spec.current);
    const old = spec.otherRunning.length
      ? `; ${spec.otherRunning.length} task(s) of the old version still running`
      : '';
    return {
      phase: 'pending',
      detail: `${spec.running.length}/${spec.need} running${states ? ` (${states})` : ''}${old}`,
    };
  }

  /** All replicas run the new spec: stable once they have for the stability window, the same tasks throughout. */
  private convergedVerdict(spec: CurrentSpec, tasks: TaskState[], image: string, now: number): Verdict {
    const { running, need } = spec;
    const set = running
      .map((t) => t.id)
      .sort()
      .join(',');
    if (this.convergedAt === undefined || set !== this.runningSet) {
      if (this.convergedAt !== undefined) {
        const failed = failuresSince(tasks, image, this.convergedAt - 1000);
        if (failed.length) {
          return {
            phase: 'failed',
            detail: `a task of the new version failed inside the stability window and was replaced`,
            failedTasks: failed,
          };
        }
      }
      this.convergedAt ??= now;
      this.runningSet = set;
    }
    const stabilityS = Math.round(this.watch.stabilityMs / 1000);
    const left = this.watch.stabilityMs - (now - this.convergedAt);
    if (left <= 0) return { phase: 'stable', detail: `${running.length}/${need} running, stable for ${stabilityS} s` };
    return {
      phase: 'converged',
      detail: `${running.length}/${need} running; watching ${Math.ceil(left / 1000)} s more`,
    };
  }

  /** Tasks of this spec the scheduler has refused for longer than the grace, newest first. */
  private unplaceable(tasks: TaskState[], image: string, now: number): TaskState[] {
    return tasks
      .filter(
        (t) =>
          t.image === image &&
          t.desired === 'running' &&
          t.state === 'pending' &&
          UNPLACEABLE.test(t.err) &&
          now - t.at >= PLACEMENT_GRACE_MS,
      )
      .sort((a, b) => b.at - a.at);
  }

  private newImageFailures(tasks: TaskState[]): TaskState[] {
    // After a Swarm rollback the spec holds the old image: the failed tasks are those of any other image.
    const expected = this.watch.expectedImage;
    return tasks
      .filter((t) => normalizeImage(t.image) === expected && FAILED_STATES.has(t.state) && t.at >= this.startedAt)
      .sort((a, b) => b.at - a.at);
  }
}
