import type { Clock } from '../../src/retry-helper';

/** A clock that only moves when slept on: every sleep is recorded and advances it at once. */
export function fakeClock(start = 1_700_000_000_000): Clock & { sleeps: number[]; advance(ms: number): void } {
  let t = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
}
