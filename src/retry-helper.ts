/**
 * The action's ways of waiting, one helper each: poll until a deadline, retry with backoff, bound a
 * promise by a time, and dispose on exit. Time comes from a Clock, so the unit tests use a fake one.
 */

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** What one round of a poll sees of the deadline. */
export interface PollRound {
  /** 1 for the first round. */
  round: number;
  deadline: number;
  now(): number;
  /** Milliseconds before the deadline, never negative. */
  left(): number;
  expired(): boolean;
}

/** A round's answer: the loop's result, or how long to wait before the next round (0: at once). */
export type PollNext<T> = { done: T } | { waitMs: number };

export interface PollOptions {
  timeoutMs: number;
  clock?: Clock;
}

/**
 * Runs `round` until it returns `{ done }`, sleeping `waitMs` between rounds. The deadline is fixed
 * when the poll starts; each round decides what running past it means (an error, or a verdict), so a
 * loop's own bounds and messages stay its own.
 */
export async function pollUntil<T>(opts: PollOptions, round: (r: PollRound) => Promise<PollNext<T>>): Promise<T> {
  const clock = opts.clock ?? systemClock;
  const deadline = clock.now() + opts.timeoutMs;
  const r: PollRound = {
    round: 0,
    deadline,
    now: () => clock.now(),
    left: () => Math.max(0, deadline - clock.now()),
    expired: () => clock.now() >= deadline,
  };
  for (;;) {
    r.round++;
    const next = await round(r);
    if ('done' in next) return next.done;
    if (next.waitMs > 0) await clock.sleep(next.waitMs);
  }
}

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number;
  /** The wait after attempt `failed` (1-based) failed; default none. */
  delayMs?: (failed: number) => number;
  /** Which errors are worth another attempt; default all. */
  retryable?: (e: Error) => boolean;
  /** Called, and awaited, before each wait: its error ends the retries with that error. */
  onRetry?: (e: Error, failed: number, delayMs: number) => void | Promise<void>;
  clock?: Pick<Clock, 'sleep'>;
}

/**
 * Calls `attempt(n)` (n from 1) until it resolves. An error that is not retryable, or that of the
 * last attempt, is thrown as it is.
 */
export async function retry<T>(opts: RetryOptions, attempt: (n: number) => Promise<T>): Promise<T> {
  const clock = opts.clock ?? systemClock;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      const err = e as Error;
      if (n >= opts.attempts || !(opts.retryable?.(err) ?? true)) throw err;
      const ms = opts.delayMs?.(n) ?? 0;
      await opts.onRetry?.(err, n, ms);
      if (ms > 0) await clock.sleep(ms);
    }
  }
}

/** Rejects with `onTimeout()` when the promise has not settled within `ms`. */
export function bounded<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Runs `use` with the resource and disposes of it however `use` ends. */
export async function disposing<R extends { dispose(): void }, T>(resource: R, use: (r: R) => Promise<T>): Promise<T> {
  try {
    return await use(resource);
  } finally {
    resource.dispose();
  }
}
