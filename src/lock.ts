import * as core from '@actions/core';
import * as crypto from 'crypto';
import { posix } from 'path';
import { Shell, shellJoin } from './host/shell';
import { DEFAULTS } from './inputs';
import { Clock, pollUntil, systemClock } from './retry-helper';
import { state } from './state';

export interface Holder {
  /** Unique to one main step: two runs (or two jobs of one run) never release each other's lock. */
  token: string;
  run: string;
  actor: string;
  release: string;
  since: string;
  pid?: number;
}

/**
 * Older than this, a lock is from a run that died without its post step: it is broken, loudly.
 * Input `lock-stale-after` sets it; its default is the input's own.
 */
export const STALE_LOCK_SECONDS = Number(DEFAULTS['lock-stale-after']);

/**
 * A per-stack lock on the host: `mkdir` is atomic, so two deploys can never both take it.
 * The holder file says who has it, for the error the loser gets.
 */
export class HostLock {
  constructor(
    private readonly remote: Shell,
    readonly dir: string,
    private readonly holder: Holder,
  ) {}

  private async tryTake(): Promise<{
    taken: boolean;
    gone?: boolean;
    holder?: string;
    sum?: string;
    ageSeconds?: number;
  }> {
    const [d, parent] = [this.dir, posix.dirname(this.dir)].map((x) => shellJoin([x]));
    const script = [
      `[ -d ${parent} ] || mkdir -p ${parent}`,
      // A lock without its holder file (disk full) would look held by nobody for an hour: undo it.
      `if err=$(LC_ALL=C mkdir ${d} 2>&1); then`,
      `  if printf '%s' ${shellJoin([JSON.stringify(this.holder)])} > ${d}/holder.json; then echo TAKEN; exit 0; fi`,
      `  rm -rf ${d}; echo "cannot write its holder file: ` +
        `$(df -Pk ${parent} | awk 'NR==2 {print $4 " kB free on " $6}')" >&2; exit 1`,
      `fi`,
      // The holder may release between our failed mkdir and the next look: that lock is free, try again.
      `if [ ! -d ${d} ]; then case "$err" in *'File exists'*) echo GONE; exit 0;; esac`,
      // Not there and never was: the folder cannot be written (read-only, permissions).
      `  printf '%s\\n' "$err" >&2; exit 1; fi`,
      `if ! mtime=$(stat -c %Y ${d} 2>/dev/null); then echo GONE; exit 0; fi`,
      // The holder's checksum identifies what was seen: a breaker removes only that, never a newer lock.
      // A holder between its mkdir and its holder file (or half-way through rm -rf) has none yet: still held.
      `echo HELD; echo $(( $(date +%s) - mtime )); { cksum < ${d}/holder.json; } 2>/dev/null || echo none; cat ` +
        `${d}/holder.json 2>/dev/null; exit 0`,
    ].join('\n');
    const res = await this.remote.sh(script, { retry: false });
    if (res.code !== 0)
      throw new Error(
        `${this.remote.where}: cannot take the deploy lock ${this.dir}: ${(res.stderr || res.stdout).trim()}`,
      );
    const lines = res.stdout.trim().split('\n');
    if (lines[0] === 'TAKEN') return { taken: true };
    if (lines[0] === 'GONE') return { taken: false, gone: true };
    return { taken: false, ageSeconds: Number(lines[1]), sum: lines[2], holder: lines.slice(3).join('\n') };
  }

  /** Waits up to `timeoutSeconds` for the lock; fails naming the holder. */
  async acquire(
    timeoutSeconds: number,
    staleSeconds = STALE_LOCK_SECONDS,
    sleepMs = 2000,
    clock: Clock = systemClock,
  ): Promise<void> {
    let said = false;
    let lookedAgain = false;
    await pollUntil({ timeoutMs: timeoutSeconds * 1000, clock }, async (p) => {
      const r = await this.tryTake();
      if (r.taken) return { done: undefined };
      if (r.gone && !p.expired()) return { waitMs: 0 };
      const who = describe(r.holder);
      if ((r.ageSeconds ?? 0) > staleSeconds) {
        core.warning(
          `Breaking a stale deploy lock ${this.dir} (${r.ageSeconds} s old, more than lock-stale-after ` +
            `${staleSeconds} s; held by ${who}): its run is long gone.`,
        );
        if (await this.breakStale(r.sum ?? 'none')) return { waitMs: 0 };
        core.info(`Lock ${this.dir} changed hands while being broken; looking again.`);
        // Look again at once, but a lock another breaker is busy with is waited for like any other.
        if (!lookedAgain) {
          lookedAgain = true;
          return { waitMs: 0 };
        }
      }
      if (p.expired()) {
        throw new Error(
          `Another deploy holds the lock ${this.dir} on ${this.remote.where}: ${who}. ` +
            `Waited ${timeoutSeconds} s (input lock-timeout).`,
        );
      }
      if (!said) core.info(`Waiting for the deploy lock ${this.dir}, held by ${who} (up to ${timeoutSeconds} s)…`);
      said = true;
      return { waitMs: sleepMs };
    });
  }

  /**
   * Another waiter may have broken the same stale lock and taken it anew: break it only while it still
   * carries the holder seen stale, one breaker at a time, and rename it away before removing it.
   */
  private async breakStale(seenSum: string): Promise<boolean> {
    const d = shellJoin([this.dir]);
    const same =
      seenSum === 'none'
        ? `[ ! -e ${d}/holder.json ]`
        : `[ "$(cksum < ${d}/holder.json 2>/dev/null)" = ${shellJoin([seenSum])} ]`;
    const aside = shellJoin([`${this.dir}.stale.${crypto.randomBytes(6).toString('hex')}`]);
    const script = [
      // One breaker at a time; a marker left by a breaker that died a minute ago is its own stale lock.
      `if ! mkdir ${d}/.breaking 2>/dev/null; then`,
      `  [ -n "$(find ${d}/.breaking -maxdepth 0 -mmin +1 2>/dev/null)" ] && rmdir ${d}/.breaking 2>/dev/null && ` +
        `mkdir ${d}/.breaking 2>/dev/null || exit 0`,
      `fi`,
      `if ${same}; then mv ${d} ${aside} && rm -rf ${aside} && echo BROKEN; else rmdir ${d}/.breaking; fi`,
    ].join('\n');
    const res = await this.remote.sh(script, { retry: false });
    return res.stdout.includes('BROKEN');
  }

  /** Removes the lock only if this run holds it. */
  async release(): Promise<void> {
    await releaseLock(this.remote, this.dir, this.holder.token);
  }
}

export async function releaseLock(remote: Shell, dir: string, token: string): Promise<boolean> {
  const d = shellJoin([dir]);
  const res = await remote.sh(
    `grep -qF ${shellJoin([JSON.stringify({ token }).slice(1, -1)])} ${d}/holder.json 2>/dev/null && rm -rf ${d} ` +
      `&& echo RELEASED`,
    { retry: true },
  );
  return res.stdout.includes('RELEASED');
}

function describe(holderJson?: string): string {
  try {
    const h = JSON.parse(holderJson ?? '') as Holder;
    return `${h.actor} (${h.run}, release ${h.release}, since ${h.since})`;
  } catch {
    return 'an unknown holder (no readable holder.json)';
  }
}

/**
 * Tracks the locks this step may hold, so the post step can release them if the step is killed.
 * A lock is saved before it is taken: a step killed between `mkdir` on the host and the answer
 * reaching it would otherwise leave a lock nobody releases (the post step only removes a lock whose
 * holder file carries this step's token).
 */
export interface LockTracker {
  token: string;
  track(dir: string, held: boolean): void;
}

export function lockTracker(): LockTracker {
  const token = crypto.randomUUID();
  const held = new Set<string>();
  return {
    token,
    track(dir, on) {
      if (on) held.add(dir);
      else held.delete(dir);
      state.saveLocks({ token, dirs: [...held] });
    },
  };
}

/**
 * Takes the lock of every stack this run deploys, one after the other in a fixed order (two runs
 * cannot deadlock), before anything on the host is touched: two multi-layer deploys can then never
 * interleave (A infra, B infra, A app, B app). Returns what releases them all.
 */
export async function lockStacks(
  remote: Shell,
  dirs: string[],
  holder: Omit<Holder, 'token'>,
  timeoutSeconds: number,
  tracker: LockTracker,
  staleSeconds = STALE_LOCK_SECONDS,
): Promise<() => Promise<void>> {
  const taken: HostLock[] = [];
  const releaseAll = async () => {
    for (const lock of taken.splice(0).reverse()) {
      try {
        await lock.release();
        tracker.track(lock.dir, false);
      } catch (e) {
        // Still in the saved state: the post step tries again.
        core.warning(`Could not release the lock ${lock.dir}: ${(e as Error).message}`);
      }
    }
  };
  for (const dir of [...new Set(dirs)].sort()) {
    const lock = new HostLock(remote, dir, { ...holder, token: tracker.token });
    tracker.track(dir, true);
    try {
      await lock.acquire(timeoutSeconds, staleSeconds);
    } catch (e) {
      // The take may have happened on the host with its answer lost: undo it if it is ours, and keep
      // it in the saved state unless the host said so (the post step tries again).
      try {
        await releaseLock(remote, dir, tracker.token);
        tracker.track(dir, false);
      } catch {
        // keep tracked
      }
      await releaseAll();
      throw e;
    }
    taken.push(lock);
  }
  return releaseAll;
}
