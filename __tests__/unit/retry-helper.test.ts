import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bounded, disposing, pollUntil, retry } from '../../src/retry-helper';
import { fakeClock } from '../helpers/clock';

test('pollUntil: rounds until done, sleeping what each round asks; the deadline is fixed at the start', async () => {
  const clock = fakeClock(1000);
  const seen: { round: number; left: number; expired: boolean }[] = [];
  const out = await pollUntil({ timeoutMs: 2500, clock }, async (r) => {
    seen.push({ round: r.round, left: r.left(), expired: r.expired() });
    return r.expired() ? { done: `stopped at ${r.now()}` } : { waitMs: 1000 };
  });
  assert.equal(out, 'stopped at 4000');
  assert.deepEqual(clock.sleeps, [1000, 1000, 1000]);
  assert.deepEqual(seen, [
    { round: 1, left: 2500, expired: false },
    { round: 2, left: 1500, expired: false },
    { round: 3, left: 500, expired: false },
    { round: 4, left: 0, expired: true },
  ]);
});

test('pollUntil: a wait of 0 runs the next round at once, without sleeping', async () => {
  const clock = fakeClock();
  const n = await pollUntil({ timeoutMs: 0, clock }, async (r) => (r.round < 3 ? { waitMs: 0 } : { done: r.round }));
  assert.equal(n, 3);
  assert.deepEqual(clock.sleeps, []);
});

test('pollUntil: an error of a round ends the poll with it', async () => {
  const clock = fakeClock();
  await assert.rejects(
    pollUntil({ timeoutMs: 10_000, clock }, async (r) => {
      if (r.round === 2) throw new Error('not within 10 s');
      return { waitMs: 5 };
    }),
    /not within 10 s/,
  );
  assert.deepEqual(clock.sleeps, [5]);
});

test('retry: backs off between attempts, tells each retry before its wait, returns the first success', async () => {
  const clock = fakeClock();
  const told: string[] = [];
  const out = await retry(
    {
      attempts: 4,
      delayMs: (n) => 500 * n,
      clock,
      onRetry: (e, n, ms) => {
        told.push(`${n}:${ms}:${e.message}:${clock.sleeps.length}`);
      },
    },
    async (n) => {
      if (n < 3) throw new Error(`fail ${n}`);
      return `ok on ${n}`;
    },
  );
  assert.equal(out, 'ok on 3');
  assert.deepEqual(clock.sleeps, [500, 1000]);
  assert.deepEqual(told, ['1:500:fail 1:0', '2:1000:fail 2:1']);
});

test('retry: the last attempt’s error is thrown as it is; no wait after it', async () => {
  const clock = fakeClock();
  let calls = 0;
  await assert.rejects(
    retry({ attempts: 3, delayMs: () => 100, clock }, async (n) => {
      calls++;
      throw new Error(`attempt ${n}`);
    }),
    /^Error: attempt 3$/,
  );
  assert.equal(calls, 3);
  assert.deepEqual(clock.sleeps, [100, 100]);
});

test('retry: an error that is not retryable ends it at once; so does an error of onRetry', async () => {
  const clock = fakeClock();
  let calls = 0;
  await assert.rejects(
    retry({ attempts: 5, retryable: (e) => /dropped/.test(e.message), clock }, async () => {
      calls++;
      throw new Error(calls === 1 ? 'dropped' : 'refused');
    }),
    /refused/,
  );
  assert.equal(calls, 2);
  calls = 0;
  await assert.rejects(
    retry(
      {
        attempts: 5,
        clock,
        onRetry: async () => {
          throw new Error('cannot read the state');
        },
      },
      async () => {
        calls++;
        throw new Error('lost');
      },
    ),
    /cannot read the state/,
  );
  assert.equal(calls, 1);
  assert.deepEqual(clock.sleeps, []);
});

test('disposing: the resource is disposed of after a result and after an error', async () => {
  const log: string[] = [];
  const res = { dispose: () => log.push('disposed') };
  assert.equal(await disposing(res, async () => (log.push('used'), 7)), 7);
  await assert.rejects(
    disposing(res, async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(log, ['used', 'disposed', 'disposed']);
});

test('bounded: the promise’s own result within the bound; past it, the error onTimeout makes', async () => {
  assert.equal(await bounded(Promise.resolve(3), 50, () => new Error('late')), 3);
  let told = 0;
  await assert.rejects(
    bounded(new Promise(() => undefined), 5, () => (told++, new Error('no answer within 5 ms'))),
    /no answer within 5 ms/,
  );
  assert.equal(told, 1);
});
