import * as core from '@actions/core';
import { Clock, pollUntil, systemClock } from './retry-helper';
import { ServiceGate, Verdict } from './service-gate';
import { Snapshot } from './swarm';

export { PLACEMENT_GRACE_MS, ServiceGate, UPDATE_START_GRACE_MS } from './service-gate';
export type { Phase, Verdict, Watch } from './service-gate';

export interface GateOptions {
  timeoutMs: number;
  /** The wait between polls; while an update is under way, down to `minPollMs` when polls are quick. */
  pollMs: number;
  minPollMs?: number;
  /** Reads a snapshot from Swarm; given the ms left before the deadline, to bound itself. */
  poll: (msLeft: number) => Promise<Snapshot>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Stop at the first failure (the caller rolls back the rest); default true. */
  stopOnFailure?: boolean;
  /** How often a long wait prints where every unfinished service stands; default 30 s. */
  progressMs?: number;
}

export interface GateResult {
  ok: boolean;
  timedOut: boolean;
  gates: ServiceGate[];
  last: Snapshot;
  polls: number;
  /** When the first failure was seen (ms since epoch), for the benchmark. */
  failedAt?: number;
}

/** Logs each service's state changes, and where every unfinished one stands at a calm rate. */
class GateLog {
  private readonly lastDetail = new Map<string, string>();
  private progressAt: number;

  constructor(
    private readonly gates: ServiceGate[],
    private readonly startedAt: number,
    private readonly deadline: number,
    private readonly progressMs: number,
  ) {
    this.progressAt = startedAt;
  }

  observe(snap: Snapshot, t: number): void {
    for (const g of this.gates) {
      // Task times are the host's: judge them with the host's clock.
      const v = g.observe(snap, snap.now || t);
      const line = `${v.phase}: ${v.detail}`;
      // Countdowns change every poll; log the phase change, not each second.
      const key = v.phase === 'converged' ? v.phase : line;
      if (this.lastDetail.get(g.watch.name) !== key) {
        this.lastDetail.set(g.watch.name, key);
        core.info(`  ${g.watch.name}: ${line}`);
      }
    }
    // A long rollout must not look hung: where each unfinished service stands, at a calm rate.
    if (t - this.progressAt < this.progressMs) return;
    this.progressAt = t;
    const open = this.gates.filter((g) => !g.done);
    const [since, left] = [t - this.startedAt, Math.max(0, this.deadline - t)].map((ms) => Math.round(ms / 1000));
    const done = this.gates.length - open.length;
    core.info(`Gate: ${since} s in, ${left} s left; ${done}/${this.gates.length} service(s) done.`);
    for (const g of open) core.info(`  ${g.watch.name}: ${g.verdict.phase}: ${g.verdict.detail}`);
  }
}

/** Fails every unfinished service at the deadline with `detail(its last verdict)`. */
function failOpen(gates: ServiceGate[], detail: (last: Verdict) => string): void {
  for (const g of gates) if (!g.done) g.verdict = { phase: 'failed', detail: detail(g.verdict) };
}

/** Polls until every service is stable, one fails, or the time is up. Logs state changes only. */
export async function runGate(gates: ServiceGate[], opts: GateOptions): Promise<GateResult> {
  const clock: Clock = { now: opts.now ?? systemClock.now, sleep: opts.sleep ?? systemClock.sleep };
  const startedAt = clock.now();
  const timeoutS = Math.round(opts.timeoutMs / 1000);
  const log = new GateLog(gates, startedAt, startedAt + opts.timeoutMs, opts.progressMs ?? 30_000);
  let polls = 0;
  let pollErrors = 0;
  let lastError = '';
  let lastOkAt = 0;
  let last: Snapshot = { services: new Map(), tasks: [], now: 0 };
  const result = (ok: boolean, timedOut: boolean, failedAt?: number): GateResult => {
    return { ok, timedOut, gates, last, polls, failedAt };
  };
  return pollUntil<GateResult>({ timeoutMs: opts.timeoutMs, clock }, async (p) => {
    const asked = p.now();
    try {
      last = await opts.poll(p.left());
      pollErrors = 0;
    } catch (e) {
      // The engine restarting or the connection dropping is not a verdict: keep trying until the deadline.
      pollErrors++;
      lastError = (e as Error).message;
      if (pollErrors === 1 || pollErrors % 10 === 0)
        core.warning(`Cannot read the Swarm state (${pollErrors}×): ${lastError}`);
      if (!p.expired()) return { waitMs: Math.min(opts.pollMs * 2, 2000) };
      const seenS = Math.round((p.now() - lastOkAt) / 1000);
      // A gate that did read the state fails for what it saw; the failed reads come after.
      failOpen(gates, (v) =>
        polls
          ? `not healthy within the timeout (${timeoutS} s); last seen ${seenS} s before it: ` +
            `${v.phase}: ${v.detail} (reads failed after that: ${lastError})`
          : `could not read the Swarm state before the timeout: ${lastError}`,
      );
      return { done: result(false, true, p.now()) };
    }
    polls++;
    const t = p.now();
    lastOkAt = t;
    log.observe(last, t);
    const failed = gates.filter((g) => g.verdict.phase === 'failed');
    if (failed.length && (opts.stopOnFailure ?? true)) return { done: result(false, false, t) };
    if (gates.every((g) => g.done)) return { done: result(failed.length === 0, false, failed.length ? t : undefined) };
    if (t < p.deadline) return { waitMs: Math.min(nextWaitMs(opts, gates, t - asked), p.deadline - t) };
    failOpen(gates, (v) => `not healthy within the timeout (${timeoutS} s); last seen: ${v.detail}`);
    return { done: result(false, true, t) };
  });
}

/**
 * The wait before the next poll. While an update is under way (a service pending), down to
 * `minPollMs`, and at least 4× what the last poll took: a slow engine or link is asked no more often
 * than it answers with ease. Otherwise (stability windows, whose end is known), `pollMs`.
 */
function nextWaitMs(opts: GateOptions, gates: ServiceGate[], pollTookMs: number): number {
  const updating = gates.some((g) => !g.done && g.verdict.phase === 'pending');
  if (!updating || opts.minPollMs === undefined) return opts.pollMs;
  return Math.min(opts.pollMs, Math.max(opts.minPollMs, 4 * pollTookMs));
}
