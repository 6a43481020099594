import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceInfo } from '../../src/compose';
import {
  PULL_MARGIN_S,
  describeTiming,
  layerTiming,
  serviceTiming,
  stabilitySeconds,
  tooShort,
} from '../../src/timing';

function svc(p: Partial<ServiceInfo> & { hc?: Partial<NonNullable<ServiceInfo['healthcheck']>> } = {}): ServiceInfo {
  const { hc, ...rest } = p;
  return {
    name: 'api',
    image: 'api:1',
    replicas: 1,
    mode: 'replicated',
    healthcheck: hc ? { interval: 30, timeout: 30, retries: 3, startPeriod: 0, disabled: false, ...hc } : undefined,
    update: { monitor: 5, failureAction: 'rollback', order: 'stop-first', parallelism: 1, delay: 0 },
    stopGracePeriod: 10,
    placement: { constraints: [], maxReplicasPerNode: 0 },
    networks: ['default'],
    labels: {},
    ...rest,
  };
}

// Glasck's own fix: monitor 180 s, 2 replicas one at a time. A healthy release was rolled back by
// a fixed 300 s timeout after 308 s.
const GLASCK = svc({
  replicas: 2,
  hc: { interval: 10, timeout: 5, retries: 3 },
  update: { monitor: 180, failureAction: 'rollback', order: 'start-first', parallelism: 1, delay: 0 },
});

test("auto timeout: Glasck's monitor 180 s, 2 replicas, parallelism 1 gets more than the 308 s it took, and says how", () => {
  const t = layerTiming([GLASCK, svc({ name: 'web' })], {});
  assert.equal(t.auto, true);
  assert.equal(t.longest?.service, 'api');
  const stability = stabilitySeconds(GLASCK); // 180 + 10 × 3
  assert.equal(stability, 210);
  // 2 batches × (10 s start + 5 + 30 + 0 s to healthy) + monitor 180 + stability 210 + pulls 60
  assert.equal(t.seconds, 2 * (10 + 35) + 180 + 210 + PULL_MARGIN_S);
  assert.ok(t.seconds > 308 + 210, 'covers the measured rollout and the stability window after it');
  assert.match(
    describeTiming('app', t),
    /auto, set by app_api: 2 batch\(es\) × \(10 s start \+ 35 s to healthy\) \+ monitor 180 s \+ stability 210 s \+ pulls 60 s/,
  );
});

test('an explicit timeout below what a healthy rollout needs is named with both figures; auto never is', () => {
  const t = layerTiming([GLASCK], { timeout: 300 });
  assert.equal(t.seconds, 300);
  const short = tooShort(t);
  assert.equal(short.length, 1);
  assert.equal(short[0].service, 'api');
  // 2 batches × (first check 10 s) + monitor 180 + stability 210
  assert.equal(short[0].minimum, 410);
  assert.deepEqual(tooShort(layerTiming([GLASCK], { timeout: 410 })), []);
  assert.deepEqual(tooShort(layerTiming([GLASCK], {})), []);
});

test('measured on the lab: 3 replicas, parallelism 1, delay 5 s, monitor 10 s, interval 2 s completed in 38 s', () => {
  const s = svc({
    replicas: 3,
    hc: { interval: 2, timeout: 2, retries: 3 },
    update: { monitor: 10, failureAction: 'rollback', order: 'stop-first', parallelism: 1, delay: 5 },
  });
  const t = serviceTiming(s, 0);
  assert.equal(t.batches, 3);
  assert.ok(t.minimum <= 38, `minimum ${t.minimum} s must not exceed what Swarm took`);
  assert.ok(t.auto >= 38, `auto ${t.auto} s must cover what Swarm took`);
});

test('batches: parallelism 0 is all at once; parallelism 2 of 5 is 3 batches; a global service has one task per node', () => {
  const u = (parallelism: number) => ({
    monitor: 5,
    failureAction: 'rollback',
    order: 'start-first',
    parallelism,
    delay: 0,
  });
  assert.equal(serviceTiming(svc({ replicas: 5, update: u(0) }), 10).batches, 1);
  assert.equal(serviceTiming(svc({ replicas: 5, update: u(2) }), 10).batches, 3);
  assert.equal(serviceTiming(svc({ mode: 'global', update: u(1) }), 10, 3).batches, 3);
  // stop-first waits for the old task to stop: its grace period counts.
  const stopFirst = serviceTiming(svc({ stopGracePeriod: 30 }), 10);
  const startFirst = serviceTiming(svc({ stopGracePeriod: 30, update: u(1) }), 10);
  assert.equal(stopFirst.auto - startFirst.auto, 30);
});

test('no service: auto falls back to the fixed figure', () => {
  assert.equal(layerTiming([], {}).seconds, 300);
});
