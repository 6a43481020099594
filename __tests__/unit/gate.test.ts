import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { captured } from '../helpers/stdout';
import { GateOptions, ServiceGate, Watch, runGate } from '../../src/gate';
import { ServiceInfo } from '../../src/compose';
import { stabilitySeconds } from '../../src/timing';
import { servicesToRollBack } from '../../src/rollback';
import { ServiceState, Snapshot, TaskState, UpdateStatus, normalizeImage } from '../../src/swarm';

// ---------- fakes ----------

const T0 = 1_700_000_000_000; // host clock when the deploy started
const sec = (s: number) => T0 + s * 1000;

const OLD = 'registry.example.com:5000/acme/web:1.0';
const NEW = 'registry.example.com:5000/acme/web:1.1';
// Swarm stores the spec image with the digest the client resolved.
const OLD_SPEC = `${OLD}@sha256:${'a'.repeat(64)}`;
const NEW_SPEC = `${NEW}@sha256:${'b'.repeat(64)}`;

function service(p: Partial<ServiceState> = {}): ServiceState {
  return { id: 'svc1', name: 'app_web', image: NEW_SPEC, replicas: 2, update: null, ...p };
}

function upd(state: string, startedAt: string, message = ''): UpdateStatus {
  return { state, startedAt, completedAt: '', message };
}

let taskSeq = 0;
function task(p: Partial<TaskState> = {}): TaskState {
  return {
    id: `task${++taskSeq}`,
    serviceId: 'svc1',
    slot: 1,
    desired: 'running',
    state: 'running',
    at: T0,
    err: '',
    image: NEW_SPEC,
    exitCode: null,
    message: '',
    ...p,
  };
}

function snap(services: ServiceState[], tasks: TaskState[], now: number): Snapshot {
  return { services: new Map(services.map((s) => [s.name, s])), tasks, now };
}

function watch(p: Partial<Watch> = {}): Watch {
  return { name: 'app_web', expectedImage: NEW, stabilityMs: 10_000, ...p };
}

/** A service that existed before this deploy, on the old image, after an earlier update that completed. */
const PREV_UPDATE = upd('completed', '2024-01-01T10:00:00.123456789Z');
const BEFORE = service({ image: OLD_SPEC, update: PREV_UPDATE });
const THIS_UPDATE_AT = '2024-02-02T10:00:00.5Z';

// ---------- normalizeImage ----------

test('normalizeImage: Docker Hub spellings, digests and implicit :latest are the same image', () => {
  const digest = `@sha256:${'c'.repeat(64)}`;
  assert.equal(normalizeImage(`docker.io/library/redis:7${digest}`), 'redis:7');
  assert.equal(normalizeImage(`docker.io/library/redis:7${digest}`), normalizeImage('redis:7'));
  assert.equal(normalizeImage('library/redis:7'), 'redis:7');
  assert.equal(normalizeImage('docker.io/bitnami/redis:7'), 'bitnami/redis:7');
  assert.equal(normalizeImage('redis'), 'redis:latest');
  assert.equal(normalizeImage('docker.io/library/redis'), 'redis:latest');
  assert.equal(normalizeImage(`redis${digest}`.replace('@', ':7@')), 'redis:7');
});

test('normalizeImage: a registry port is not mistaken for a tag', () => {
  assert.equal(normalizeImage('127.0.0.1:5000/a/b:1'), '127.0.0.1:5000/a/b:1');
  assert.equal(normalizeImage(`127.0.0.1:5000/a/b:1@sha256:${'d'.repeat(64)}`), '127.0.0.1:5000/a/b:1');
  assert.equal(normalizeImage('127.0.0.1:5000/a/b'), '127.0.0.1:5000/a/b:latest');
  assert.equal(normalizeImage('localhost:5000/b'), 'localhost:5000/b:latest');
  assert.notEqual(normalizeImage('127.0.0.1:5000/a/b:1'), normalizeImage('127.0.0.1:5000/a/b:2'));
  assert.notEqual(normalizeImage('ghcr.io/acme/redis:7'), normalizeImage('redis:7'));
});

test('normalizeImage: two digest-pinned references of one repository stay different', () => {
  assert.notEqual(normalizeImage(`redis@sha256:${'a'.repeat(64)}`), normalizeImage(`redis@sha256:${'b'.repeat(64)}`));
});

// ---------- ServiceGate: new services ----------

test('gate: a new service goes pending → converged → stable after stabilityMs', () => {
  const g = new ServiceGate(watch(), T0);
  assert.equal(g.verdict.phase, 'pending');
  assert.equal(g.done, false);
  const svc = service();
  const a = task({ id: 'a', slot: 1, state: 'starting' });
  const b = task({ id: 'b', slot: 2, state: 'starting' });

  let v = g.observe(snap([svc], [a, b], sec(1)), sec(1));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /0\/2 running \(2 starting\)/);

  v = g.observe(snap([svc], [{ ...a, state: 'running' }, b], sec(2)), sec(2));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /1\/2 running/);

  const up = [
    { ...a, state: 'running' },
    { ...b, state: 'running' },
  ];
  v = g.observe(snap([svc], up, sec(3)), sec(3));
  assert.equal(v.phase, 'converged');
  assert.equal(g.convergedAt, sec(3));
  assert.match(v.detail, /2\/2 running; watching 10 s more/);

  v = g.observe(snap([svc], up, sec(12.999)), sec(12.999));
  assert.equal(v.phase, 'converged', 'still inside the window 1 ms before its end');
  assert.equal(g.done, false);

  v = g.observe(snap([svc], up, sec(13)), sec(13));
  assert.equal(v.phase, 'stable');
  assert.match(v.detail, /stable for 10 s/);
  assert.equal(g.done, true);
  assert.equal(g.changed(svc), false, 'a new service has nothing to roll back to');
});

test('gate: stabilityMs 0 is stable on the first converged poll', () => {
  const g = new ServiceGate(watch({ stabilityMs: 0 }), T0);
  const v = g.observe(snap([service({ replicas: 1 })], [task()], sec(1)), sec(1));
  assert.equal(v.phase, 'stable');
});

test('gate: the service missing after the deploy fails', () => {
  const g = new ServiceGate(watch(), T0);
  const v = g.observe(snap([service({ name: 'app_other' })], [], sec(1)), sec(1));
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /does not exist/);
});

test('gate: tasks of other services are not counted', () => {
  const g = new ServiceGate(watch(), T0);
  const other = service({ id: 'svc2', name: 'app_db' });
  const tasks = [task({ slot: 1 }), task({ slot: 1, serviceId: 'svc2' }), task({ slot: 2, serviceId: 'svc2' })];
  const v = g.observe(snap([service(), other], tasks, sec(1)), sec(1));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /1\/2 running/);
});

test('gate: a new service whose tasks keep failing fails after 3 failures, newest first', () => {
  const g = new ServiceGate(watch(), T0);
  const svc = service({ replicas: 1 });
  const f1 = task({
    id: 'f1',
    desired: 'shutdown',
    state: 'failed',
    at: sec(1),
    err: 'task: non-zero exit (1)',
    exitCode: 1,
  });
  const f2 = task({ id: 'f2', desired: 'shutdown', state: 'failed', at: sec(3), exitCode: 1 });
  const f3 = task({ id: 'f3', desired: 'shutdown', state: 'failed', at: sec(5), exitCode: 1 });
  // A failure from before the deploy started is not this deploy's.
  const old = task({ id: 'old', desired: 'shutdown', state: 'failed', at: sec(-60) });

  let v = g.observe(snap([svc], [old, f1, task({ id: 'r2', state: 'starting' })], sec(2)), sec(2));
  assert.equal(v.phase, 'pending');
  v = g.observe(snap([svc], [old, f1, f2, task({ id: 'r3', state: 'starting' })], sec(4)), sec(4));
  assert.equal(v.phase, 'pending', 'two failures (plus one from before the deploy) are not yet a verdict');
  v = g.observe(snap([svc], [old, f1, f2, f3, task({ id: 'r4', state: 'starting' })], sec(6)), sec(6));
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /3 tasks failed since the deploy started/);
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['f3', 'f2', 'f1'],
  );
  assert.equal(g.done, true);
});

test('gate: rejected and orphaned tasks count as failures too', () => {
  const g = new ServiceGate(watch(), T0);
  const tasks = [
    task({ id: 'x1', desired: 'shutdown', state: 'rejected', at: sec(1), err: 'No such image' }),
    task({ id: 'x2', desired: 'shutdown', state: 'rejected', at: sec(2), err: 'No such image' }),
    task({ id: 'x3', desired: 'shutdown', state: 'orphaned', at: sec(3) }),
    task({ id: 'x4', state: 'pending' }),
  ];
  const v = g.observe(snap([service({ replicas: 1 })], tasks, sec(4)), sec(4));
  assert.equal(v.phase, 'failed');
  assert.equal(v.failedTasks?.length, 3);
});

test('gate: replicas 0 converges with no task, and not while a task is still desired running', () => {
  const g = new ServiceGate(watch({ stabilityMs: 5000 }), T0);
  const svc = service({ replicas: 0 });
  let v = g.observe(snap([svc], [task({ id: 'leftover' })], sec(1)), sec(1));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /1\/0 running/);
  v = g.observe(snap([svc], [task({ id: 'leftover', desired: 'shutdown', state: 'shutdown' })], sec(2)), sec(2));
  assert.equal(v.phase, 'converged');
  v = g.observe(snap([svc], [], sec(7)), sec(7));
  assert.equal(v.phase, 'stable');
});

test('gate: a global service (replicas null) needs every desired task running, and at least one', () => {
  const g = new ServiceGate(watch({ stabilityMs: 1000 }), T0);
  const svc = service({ replicas: null });
  let v = g.observe(snap([svc], [], sec(1)), sec(1));
  assert.equal(v.phase, 'pending', 'no task yet is not "all of zero tasks running"');

  const n1 = task({ id: 'n1', slot: 0 });
  const n2 = task({ id: 'n2', slot: 0, state: 'preparing' });
  v = g.observe(snap([svc], [n1, n2], sec(2)), sec(2));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /1\/2 running \(1 running, 1 preparing\)/);

  v = g.observe(snap([svc], [n1, { ...n2, state: 'running' }], sec(3)), sec(3));
  assert.equal(v.phase, 'converged');
  v = g.observe(snap([svc], [n1, { ...n2, state: 'running' }], sec(4)), sec(4));
  assert.equal(v.phase, 'stable');
  assert.match(v.detail, /2\/2 running/);
});

test('gate: a spec image other than the expected one fails (changed by someone else)', () => {
  const g = new ServiceGate(watch(), T0);
  const svc = service({ image: `registry.example.com:5000/acme/web:9.9@sha256:${'e'.repeat(64)}` });
  const v = g.observe(snap([svc], [task({ image: svc.image }), task({ image: svc.image, slot: 2 })], sec(1)), sec(1));
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /web:9\.9/);
  assert.match(v.detail, /not registry\.example\.com:5000\/acme\/web:1\.1/);
});

test('gate: the expected image matches the spec in any equivalent spelling', () => {
  const spec = `docker.io/library/redis:7@sha256:${'f'.repeat(64)}`;
  const g = new ServiceGate(watch({ name: 'app_redis', expectedImage: normalizeImage('redis:7'), stabilityMs: 0 }), T0);
  const svc = service({ name: 'app_redis', image: spec, replicas: 1 });
  const v = g.observe(snap([svc], [task({ image: spec })], sec(1)), sec(1));
  assert.equal(v.phase, 'stable');
});

// ---------- ServiceGate: updated services ----------

test('gate: an update goes updating → completed with new-image tasks running → stable', () => {
  const g = new ServiceGate(watch({ before: BEFORE }), T0);
  const o1 = task({ id: 'o1', slot: 1, image: OLD_SPEC, at: sec(-3600) });
  const o2 = task({ id: 'o2', slot: 2, image: OLD_SPEC, at: sec(-3600) });

  // The spec is new but Swarm has not started the update yet: the old tasks must not count.
  let v = g.observe(snap([service({ update: PREV_UPDATE })], [o1, o2], sec(0.5)), sec(0.5));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /0\/2 running/);

  const n1 = task({ id: 'n1', slot: 1, state: 'starting', at: sec(1) });
  let svc = service({ update: upd('updating', THIS_UPDATE_AT, 'update in progress') });
  v = g.observe(snap([svc], [{ ...o1, desired: 'shutdown', state: 'shutdown' }, n1, o2], sec(1)), sec(1));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /updating: update in progress/);

  // Every new task runs but Swarm still says updating (monitor period): not converged yet.
  const n2 = task({ id: 'n2', slot: 2, at: sec(4) });
  const done = [
    { ...o1, desired: 'shutdown', state: 'shutdown' },
    { ...n1, state: 'running' },
    { ...o2, desired: 'shutdown', state: 'shutdown' },
    n2,
  ];
  v = g.observe(snap([svc], done, sec(5)), sec(5));
  assert.equal(v.phase, 'pending');
  assert.equal(g.convergedAt, undefined);

  svc = service({
    update: { ...upd('completed', THIS_UPDATE_AT, 'update completed'), completedAt: '2024-02-02T10:00:06Z' },
  });
  v = g.observe(snap([svc], done, sec(6)), sec(6));
  assert.equal(v.phase, 'converged');
  assert.equal(g.convergedAt, sec(6));
  v = g.observe(snap([svc], done, sec(16)), sec(16));
  assert.equal(v.phase, 'stable');
  assert.equal(g.changed(svc), true);
});

test('gate: an UpdateStatus left from a previous deploy (same StartedAt) is ignored', () => {
  for (const state of ['rollback_completed', 'paused', 'rollback_paused', 'rollback_started', 'updating']) {
    const stale = upd(state, '2024-01-01T10:00:00.123456789Z', 'from last week');
    const before = { ...BEFORE, update: stale };
    const g = new ServiceGate(watch({ before, stabilityMs: 0 }), T0);
    const svc = service({ update: stale });
    const v = g.observe(snap([svc], [task({ slot: 1 }), task({ slot: 2 })], sec(1)), sec(1));
    assert.equal(v.phase, 'stable', `a stale ${state} is not this deploy's`);
  }
});

test("gate: the same update state with a new StartedAt is this deploy's", () => {
  const before = { ...BEFORE, update: upd('rollback_completed', '2024-01-01T10:00:00Z') };
  const g = new ServiceGate(watch({ before }), T0);
  const svc = service({ image: OLD_SPEC, update: upd('rollback_completed', THIS_UPDATE_AT) });
  const v = g.observe(snap([svc], [], sec(1)), sec(1));
  assert.equal(v.phase, 'failed');
  assert.equal(v.swarmRolledBack, true);
});

test('gate: rollback_started → rolling-back, then rollback_completed → failed with the new-image failures', () => {
  const g = new ServiceGate(watch({ before: BEFORE }), T0);
  const o1 = task({ id: 'o1', slot: 1, image: OLD_SPEC, at: sec(-3600) });
  // Failures that are not this deploy's: the old image, and a new-image task from before the deploy.
  const oldFail = task({ id: 'oldfail', slot: 2, image: OLD_SPEC, desired: 'shutdown', state: 'failed', at: sec(2) });
  const earlier = task({ id: 'earlier', slot: 2, desired: 'shutdown', state: 'failed', at: sec(-5) });
  const f1 = task({
    id: 'f1',
    slot: 2,
    desired: 'shutdown',
    state: 'failed',
    at: sec(3),
    err: 'task: non-zero exit (1)',
    exitCode: 1,
  });
  const f2 = task({ id: 'f2', slot: 2, desired: 'shutdown', state: 'failed', at: sec(8), exitCode: 1 });
  const tasks = [o1, oldFail, earlier, f1, f2];

  // During a Swarm rollback the spec already holds the old image again.
  let v = g.observe(
    snap(
      [
        service({
          image: OLD_SPEC,
          update: upd(
            'rollback_started',
            THIS_UPDATE_AT,
            'update paused due to failure or early termination of task f2',
          ),
        }),
      ],
      tasks,
      sec(9),
    ),
    sec(9),
  );
  assert.equal(v.phase, 'rolling-back');
  assert.match(v.detail, /rolling the update back: update paused due to failure/);
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['f2', 'f1'],
  );
  assert.equal(g.done, false);

  v = g.observe(
    snap(
      [service({ image: OLD_SPEC, update: upd('rollback_completed', THIS_UPDATE_AT, 'rollback completed') })],
      tasks,
      sec(15),
    ),
    sec(15),
  );
  assert.equal(v.phase, 'failed');
  assert.equal(v.swarmRolledBack, true);
  assert.match(v.detail, /Swarm rolled it back: rollback completed/);
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['f2', 'f1'],
  );
  assert.equal(g.done, true);
});

test('gate: rollback_started after converging clears the stability clock', () => {
  const g = new ServiceGate(watch({ before: BEFORE, stabilityMs: 10_000 }), T0);
  const running = [task({ slot: 1 }), task({ slot: 2 })];
  g.observe(snap([service({ update: upd('completed', THIS_UPDATE_AT) })], running, sec(1)), sec(1));
  assert.equal(g.convergedAt, sec(1));
  const v = g.observe(snap([service({ update: upd('rollback_started', THIS_UPDATE_AT) })], running, sec(2)), sec(2));
  assert.equal(v.phase, 'rolling-back');
  assert.equal(g.convergedAt, undefined);
});

test('gate: paused and rollback_paused updates fail', () => {
  const f = task({ id: 'f', desired: 'shutdown', state: 'failed', at: sec(2) });
  let g = new ServiceGate(watch({ before: BEFORE }), T0);
  let v = g.observe(
    snap([service({ update: upd('paused', THIS_UPDATE_AT, 'update paused due to failure') })], [f], sec(3)),
    sec(3),
  );
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /paused \(failure_action: pause\): update paused due to failure/);
  assert.equal(v.swarmRolledBack, undefined);
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['f'],
  );

  g = new ServiceGate(watch({ before: BEFORE }), T0);
  v = g.observe(
    snap([service({ image: OLD_SPEC, update: upd('rollback_paused', THIS_UPDATE_AT) })], [f], sec(3)),
    sec(3),
  );
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /rollback is paused/);
});

// ---------- the stability window ----------

/** An updated service that converged at sec(10) with tasks n1, n2, watched for 30 s. */
function convergedUpdate() {
  const g = new ServiceGate(watch({ before: BEFORE, stabilityMs: 30_000 }), T0);
  const svc = service({ update: upd('completed', THIS_UPDATE_AT) });
  const n1 = task({ id: 'n1', slot: 1, at: sec(5) });
  const n2 = task({ id: 'n2', slot: 2, at: sec(6) });
  const v = g.observe(snap([svc], [n1, n2], sec(10)), sec(10));
  assert.equal(v.phase, 'converged');
  return { g, svc, n1, n2 };
}

test('gate: a new-image task failing inside the stability window fails the release', () => {
  const { g, svc, n1, n2 } = convergedUpdate();
  const crashed = {
    ...n1,
    desired: 'shutdown',
    state: 'failed',
    at: sec(14),
    err: 'task: non-zero exit (137)',
    exitCode: 137,
  };
  const n3 = task({ id: 'n3', slot: 1, state: 'starting', at: sec(15) });
  const v = g.observe(snap([svc], [crashed, n2, n3], sec(16)), sec(16));
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /failed 4 s after the update converged \(inside the 30 s stability window\)/);
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['n1'],
  );
});

test('gate: a crash inside the window already replaced by the next poll still fails', () => {
  const { g, svc, n1, n2 } = convergedUpdate();
  const crashed = { ...n1, desired: 'shutdown', state: 'failed', at: sec(14) };
  const n3 = task({ id: 'n3', slot: 1, at: sec(15) });
  const v = g.observe(snap([svc], [crashed, n2, n3], sec(20)), sec(20));
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /stability window/);
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['n1'],
  );
});

test('gate: a task replaced without failing (e.g. node drained) keeps the window running from the first convergence', () => {
  const { g, svc, n1, n2 } = convergedUpdate();
  const moved = { ...n1, desired: 'shutdown', state: 'shutdown', at: sec(14) };
  const n3 = task({ id: 'n3', slot: 1, at: sec(15) });
  let v = g.observe(snap([svc], [moved, n2, n3], sec(20)), sec(20));
  assert.equal(v.phase, 'converged');
  assert.equal(g.convergedAt, sec(10));
  v = g.observe(snap([svc], [moved, n2, n3], sec(40)), sec(40));
  assert.equal(v.phase, 'stable');
});

test('gate: a crash after its own window, while the layer is still gated, fails the release', () => {
  const { g, svc, n1, n2 } = convergedUpdate();
  let v = g.observe(snap([svc], [n1, n2], sec(40)), sec(40));
  assert.equal(v.phase, 'stable');
  assert.equal(g.done, true);
  // Still stable while nothing fails, even if a task is replaced without failing.
  const moved = { ...n2, desired: 'shutdown', state: 'shutdown', at: sec(41) };
  v = g.observe(snap([svc], [n1, moved, task({ id: 'n4', slot: 2, state: 'starting' })], sec(42)), sec(42));
  assert.equal(v.phase, 'stable');
  const crashed = { ...n1, desired: 'shutdown', state: 'failed', at: sec(43) };
  v = g.observe(
    snap([svc], [crashed, moved, task({ id: 'n4', slot: 2 }), task({ id: 'n3', state: 'starting' })], sec(44)),
    sec(44),
  );
  assert.equal(v.phase, 'failed');
  assert.deepEqual(
    v.failedTasks?.map((t) => t.id),
    ['n1'],
  );
});

test("gate: an old-image failure inside the window is not the release's", () => {
  const { g, svc, n1, n2 } = convergedUpdate();
  const oldCrash = task({ id: 'o9', slot: 3, image: OLD_SPEC, desired: 'shutdown', state: 'failed', at: sec(12) });
  const v = g.observe(snap([svc], [n1, n2, oldCrash], sec(15)), sec(15));
  assert.equal(v.phase, 'converged');
});

// ---------- changed / servicesToRollBack ----------

test('gate.changed: a new image, or an update Swarm started for this deploy', () => {
  assert.equal(new ServiceGate(watch(), T0).changed(service()), false, 'new service');
  assert.equal(new ServiceGate(watch({ before: BEFORE }), T0).changed(), true, 'image changed');
  const same = service({ image: NEW_SPEC });
  const g = new ServiceGate(watch({ before: same }), T0);
  assert.equal(g.changed(same), false, 'same image, same spec version');
  // docker stack deploy re-submits unchanged services: a new spec version alone is not a change.
  assert.equal(g.changed({ ...same }), false, 'same image, re-submitted, no update');
  assert.equal(
    g.changed({
      ...same,
      update: { state: 'updating', startedAt: '2026-11-23T19:00:00Z', completedAt: '', message: '' },
    }),
    true,
    'same image, Swarm started an update (env, labels…)',
  );
});

function rbGate(name: string, before: ServiceState | undefined, expectedImage = NEW) {
  return new ServiceGate(watch({ name, before, expectedImage }), T0);
}

test('servicesToRollBack: only changed services that existed before and that Swarm is not already rolling back', () => {
  const id = (n: string) => `id-${n}`;
  const prev = (n: string, p: Partial<ServiceState> = {}) =>
    service({ id: id(n), name: n, image: OLD_SPEC, update: PREV_UPDATE, ...p });
  const gates = [
    rbGate('s_changed', prev('s_changed')),
    rbGate('s_new', undefined),
    rbGate('s_same', prev('s_same', { image: NEW_SPEC })),
    rbGate('s_envonly', prev('s_envonly', { image: NEW_SPEC })),
    rbGate('s_rbstarted', prev('s_rbstarted')),
    rbGate('s_rbdone', prev('s_rbdone')),
    rbGate('s_stale', prev('s_stale', { update: upd('rollback_completed', '2024-01-01T00:00:00Z') })),
    rbGate('s_gone', prev('s_gone')),
  ];
  const now = snap(
    [
      service({ id: id('s_changed'), name: 's_changed', update: upd('updating', THIS_UPDATE_AT) }),
      service({ id: id('s_new'), name: 's_new' }),
      service({ id: id('s_same'), name: 's_same', update: PREV_UPDATE }),
      service({ id: id('s_envonly'), name: 's_envonly', update: upd('completed', THIS_UPDATE_AT) }),
      service({
        id: id('s_rbstarted'),
        name: 's_rbstarted',
        image: OLD_SPEC,
        update: upd('rollback_started', THIS_UPDATE_AT),
      }),
      service({
        id: id('s_rbdone'),
        name: 's_rbdone',
        image: OLD_SPEC,
        update: upd('rollback_completed', THIS_UPDATE_AT),
      }),
      // Its rollback_completed is last week's: this deploy's update has not started yet.
      service({ id: id('s_stale'), name: 's_stale', update: upd('rollback_completed', '2024-01-01T00:00:00Z') }),
    ],
    [],
    sec(30),
  );
  assert.deepEqual(servicesToRollBack(gates, now), ['s_changed', 's_envonly', 's_stale']);
});

test('servicesToRollBack: a service whose Swarm rollback is paused is not rolled back a second time', () => {
  const before = service({ image: OLD_SPEC, update: PREV_UPDATE });
  const now = snap([service({ image: OLD_SPEC, update: upd('rollback_paused', THIS_UPDATE_AT) })], [], sec(30));
  assert.deepEqual(servicesToRollBack([rbGate('app_web', before)], now), []);
});

// ---------- runGate ----------

/** A fake clock: sleep advances it; poll i returns script(i, now). */
function fakeRun(script: (i: number, now: number) => Snapshot | Error, opts: Partial<GateOptions> = {}) {
  let t = T0;
  let i = 0;
  const sleeps: number[] = [];
  const o: GateOptions = {
    timeoutMs: 60_000,
    pollMs: 1000,
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
    poll: async () => {
      const r = script(i++, t);
      if (r instanceof Error) throw r;
      return r;
    },
    ...opts,
  };
  return { o, sleeps, clock: () => t, calls: () => i };
}

test('runGate: polls until every service is stable; logs phase changes, not countdowns', async () => {
  const g = new ServiceGate(watch({ stabilityMs: 5000 }), T0);
  const { o, clock } = fakeRun((i, now) =>
    snap(
      [service()],
      [task({ id: 'a', slot: 1 }), task({ id: 'b', slot: 2, state: i < 2 ? 'starting' : 'running' })],
      now,
    ),
  );
  const { value: r, out } = await captured(() => runGate([g], o));
  assert.equal(r.ok, true);
  assert.equal(r.timedOut, false);
  assert.equal(r.failedAt, undefined);
  assert.equal(g.verdict.phase, 'stable');
  // Polls at 0 s, 1 s (pending), 2 s converged … 7 s stable.
  assert.equal(r.polls, 8);
  assert.equal(clock(), T0 + 7000);
  assert.equal(out.match(/app_web: converged/g)?.length, 1, 'the countdown is logged once');
  assert.equal(out.match(/app_web: pending/g)?.length, 1, 'an unchanged detail is logged once');
  assert.equal(out.match(/app_web: stable/g)?.length, 1);
});

test('runGate: while an update is under way polls every minPollMs, or 4× what a poll took; in a stability window every pollMs', async () => {
  const g = new ServiceGate(watch({ stabilityMs: 3000 }), T0);
  const { o, sleeps } = fakeRun(
    (i, now) =>
      snap(
        [service()],
        [task({ id: 'a', slot: 1 }), task({ id: 'b', slot: 2, state: i < 2 ? 'starting' : 'running' })],
        now,
      ),
    { minPollMs: 250 },
  );
  // The second poll takes 100 ms of the runner's clock.
  let extra = 0;
  const [now, poll] = [o.now!, o.poll];
  o.now = () => now() + extra;
  o.poll = async (ms) => {
    const s = await poll(ms);
    if (sleeps.length === 1) extra += 100;
    return s;
  };
  const { value: r } = await captured(() => runGate([g], o));
  assert.equal(r.ok, true);
  // Pending: 250 ms, then 4 × 100 ms; converged (the window's countdown): 1000 ms.
  assert.deepEqual(sleeps.slice(0, 3), [250, 400, 1000]);
  assert.ok(
    sleeps.slice(2).every((ms) => ms === 1000),
    sleeps.join(','),
  );
  // Without minPollMs: every pollMs throughout.
  const plain = fakeRun((i, t) =>
    snap([service()], [task({ slot: 1 }), task({ slot: 2, state: i < 2 ? 'starting' : 'running' })], t),
  );
  await captured(() => runGate([new ServiceGate(watch({ stabilityMs: 3000 }), T0)], plain.o));
  assert.ok(
    plain.sleeps.every((ms) => ms === 1000),
    plain.sleeps.join(','),
  );
});

test("runGate: judges task times with the host clock of the snapshot, not the runner's", async () => {
  const g = new ServiceGate(watch({ stabilityMs: 5000 }), T0);
  // The runner's clock barely moves (0.1 s per poll); the host's moves 3 s per poll.
  let host = T0;
  let runner = T0;
  const r = await captured(() =>
    runGate([g], {
      timeoutMs: 10_000,
      pollMs: 1000,
      now: () => runner,
      sleep: async () => {
        runner += 100;
      },
      poll: async () => snap([service({ replicas: 1 })], [task()], (host += 3000)),
    }),
  );
  assert.equal(r.value.ok, true);
  assert.equal(r.value.polls, 3);
});

test('runGate: stops at the first failure', async () => {
  const web = new ServiceGate(watch({ stabilityMs: 60_000 }), T0);
  const worker = new ServiceGate(watch({ name: 'app_worker', stabilityMs: 60_000 }), T0);
  const wsvc = service({ id: 'svc2', name: 'app_worker', replicas: 1 });
  const { o } = fakeRun((i, now) => {
    const crash =
      i >= 2
        ? [1, 2, 3].map((k) =>
            task({ id: `c${k}`, serviceId: 'svc2', desired: 'shutdown', state: 'failed', at: now - k }),
          )
        : [];
    return snap([service(), wsvc], [task({ slot: 1 }), task({ slot: 2 }), ...crash], now);
  });
  const { value: r } = await captured(() => runGate([web, worker], o));
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, false);
  assert.equal(r.polls, 3);
  assert.equal(r.failedAt, T0 + 2000);
  assert.equal(worker.verdict.phase, 'failed');
  assert.equal(web.verdict.phase, 'converged', 'the others are left as they were');
});

test('runGate: with stopOnFailure false it waits for the others, and is still not ok', async () => {
  const web = new ServiceGate(watch({ stabilityMs: 3000 }), T0);
  const worker = new ServiceGate(watch({ name: 'app_worker', stabilityMs: 3000 }), T0);
  const { o } = fakeRun(
    (i, now) =>
      snap(
        [service(), service({ id: 'svc2', name: 'app_worker', image: 'elsewhere:1' })],
        [task({ slot: 1 }), task({ slot: 2 })],
        now,
      ),
    {
      stopOnFailure: false,
    },
  );
  const { value: r } = await captured(() => runGate([web, worker], o));
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, false);
  assert.equal(web.verdict.phase, 'stable');
  assert.equal(worker.verdict.phase, 'failed');
  assert.equal(r.polls, 4);
});

test('runGate: times out with a message naming the timeout and the last state', async () => {
  const g = new ServiceGate(watch(), T0);
  const { o, sleeps, clock } = fakeRun(
    (i, now) => snap([service()], [task({ slot: 1 }), task({ slot: 2, state: 'starting' })], now),
    { timeoutMs: 5500, pollMs: 2000 },
  );
  const { value: r } = await captured(() => runGate([g], o));
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(g.verdict.phase, 'failed');
  assert.match(g.verdict.detail, /not healthy within the timeout \(6 s\); last seen: 1\/2 running/);
  // The last sleep is cut to the deadline: the verdict comes at the deadline, not a poll later.
  assert.deepEqual(sleeps, [2000, 2000, 1500]);
  assert.equal(clock(), T0 + 5500);
  assert.equal(r.failedAt, T0 + 5500);
});

test('runGate: poll errors are retried until the deadline and never produce success', async () => {
  const g = new ServiceGate(watch(), T0);
  const { o, clock } = fakeRun(() => new Error('ssh: connection reset'), { timeoutMs: 10_000, pollMs: 500 });
  const { value: r, out } = await captured(() => runGate([g], o));
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(r.polls, 0);
  assert.equal(g.verdict.phase, 'failed');
  assert.match(g.verdict.detail, /could not read the Swarm state before the timeout: ssh: connection reset/);
  assert.ok(clock() >= T0 + 10_000);
  assert.match(out, /::warning::Cannot read the Swarm state \(1×\)/);
  assert.ok((out.match(/::warning::/g)?.length ?? 0) <= 2, 'warned at the first error and every tenth, not each time');
});

test('runGate: a converged service whose polls then fail does not become stable', async () => {
  const g = new ServiceGate(watch({ stabilityMs: 5000 }), T0);
  const { o } = fakeRun(
    (i, now) =>
      i < 2 ? snap([service({ replicas: 1 })], [task()], now) : new Error('Cannot connect to the Docker daemon'),
    { timeoutMs: 20_000 },
  );
  const { value: r } = await captured(() => runGate([g], o));
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(g.verdict.phase, 'failed');
  assert.match(g.verdict.detail, /Docker daemon/);
});

// Near the deadline the poll's own bound is short: a slow last read must not hide why the gate failed.
test('runGate: a timeout whose last read failed still says what was last seen', async () => {
  const g = new ServiceGate(watch(), T0);
  const { o } = fakeRun(
    (i, now) =>
      now < T0 + 9000
        ? snap([service()], [task({ slot: 1 }), task({ slot: 2, state: 'starting' })], now)
        : new Error('a remote command did not answer within 1 s'),
    { timeoutMs: 10_000, pollMs: 2000 },
  );
  const { value: r } = await captured(() => runGate([g], o));
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.match(
    g.verdict.detail,
    /^not healthy within the timeout \(10 s\); last seen 2 s before it: pending: 1\/2 running \(1 running, 1 starting\) \(reads failed after that: a remote command did not answer within 1 s\)$/,
  );
});

test('runGate: a poll error in between is not a verdict; the gate goes on', async () => {
  const g = new ServiceGate(watch({ stabilityMs: 2000 }), T0);
  const { o } = fakeRun((i, now) =>
    i === 1 || i === 2 ? new Error('engine restarting') : snap([service({ replicas: 1 })], [task()], now),
  );
  const { value: r } = await captured(() => runGate([g], o));
  assert.equal(r.ok, true);
  assert.equal(g.verdict.phase, 'stable');
});

// ---------- stability window length (`stability: auto`) ----------

function info(monitor: number, hc?: { interval: number; retries: number; disabled?: boolean }): ServiceInfo {
  return {
    name: 'web',
    image: 'web:1',
    replicas: 1,
    mode: 'replicated',
    healthcheck: hc ? ({ disabled: false, ...hc } as unknown as ServiceInfo['healthcheck']) : undefined,
    update: { monitor, failureAction: 'rollback', order: 'stop-first', parallelism: 1, delay: 0 },
    stopGracePeriod: 10,
    placement: { constraints: [], maxReplicasPerNode: 0 },
    networks: ['default'],
    labels: {},
  };
}

test('stabilitySeconds: a fixed `stability` input wins, 0 included', () => {
  assert.equal(stabilitySeconds(info(30), 0), 0);
  assert.equal(stabilitySeconds(info(30), 42), 42);
});

test('stabilitySeconds auto: grows with update_config.monitor and the healthcheck; a disabled healthcheck adds nothing', () => {
  assert.ok(stabilitySeconds(info(60)) >= 60);
  assert.ok(stabilitySeconds(info(60, { interval: 10, retries: 3 })) > stabilitySeconds(info(60)));
  assert.equal(stabilitySeconds(info(60, { interval: 10, retries: 3, disabled: true })), stabilitySeconds(info(60)));
});

test('stabilitySeconds auto: as action.yml documents it — monitor plus one healthcheck cycle (interval × retries), at least 10 s', () => {
  const doc = YAML.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'action.yml'), 'utf8')).inputs.stability
    .description as string;
  assert.match(doc, /plus one healthcheck cycle \(interval × retries\), at least 10 s/);
  assert.equal(stabilitySeconds(info(0)), 10);
  assert.equal(stabilitySeconds(info(5, { interval: 10, retries: 3 })), 35);
});

test('a service this deploy did not touch is stable once up: a task it loses is not blamed on the release', () => {
  const same = service({ image: NEW_SPEC, update: PREV_UPDATE, taskSpec: 'tpl-1' });
  const g = new ServiceGate(watch({ before: same, stabilityMs: 30_000 }), T0);
  const up = [task({ id: 't1', image: NEW_SPEC }), task({ id: 't2', slot: 2, image: NEW_SPEC })];
  assert.equal(g.observe(snap([{ ...same }], up, sec(1)), sec(1)).phase, 'stable');
  const lost = [
    { ...up[0], desired: 'shutdown', state: 'failed', at: sec(2) },
    up[1],
    task({ id: 't3', state: 'starting', image: NEW_SPEC }),
  ];
  assert.equal(
    g.observe(snap([{ ...same }], lost, sec(3)), sec(3)).phase,
    'stable',
    'still not blamed after it was stable',
  );
  // The same service with a fresh update of its own (env changed): watched through the window.
  const g2 = new ServiceGate(watch({ before: same, stabilityMs: 30_000 }), T0);
  const updated = { ...same, update: upd('completed', THIS_UPDATE_AT) };
  assert.equal(g2.observe(snap([updated], up, sec(1)), sec(1)).phase, 'converged');
  // A changed template whose update Swarm has not started yet is not taken for untouched.
  const g3 = new ServiceGate(watch({ before: same, stabilityMs: 30_000 }), T0);
  assert.equal(g3.observe(snap([{ ...same, taskSpec: 'tpl-2' }], up, sec(1)), sec(1)).phase, 'pending');
});

// ---------- an env- or config-only change: same image, new task template ----------

test('stability 0, env-only change: not stable on the old tasks before Swarm started the update this deploy asked for', () => {
  const before = service({ image: NEW_SPEC, update: PREV_UPDATE, taskSpec: 'template-old' });
  const g = new ServiceGate(watch({ before, stabilityMs: 0 }), sec(0));
  const old = [task({ slot: 1, at: sec(-100) }), task({ slot: 2, at: sec(-100) })];
  // Just after `docker stack deploy`: the spec is new, the update has not started, old tasks run the same image.
  const v1 = g.observe(snap([service({ update: PREV_UPDATE, taskSpec: 'template-new' })], old, sec(0.2)), sec(0.2));
  assert.notEqual(v1.phase, 'stable', `stable on the old tasks: ${v1.detail}`);
  assert.match(v1.detail, /waiting for Swarm to start the update/);
  g.observe(
    snap([service({ update: upd('updating', THIS_UPDATE_AT), taskSpec: 'template-new' })], old, sec(0.5)),
    sec(0.5),
  );
  const fresh = [task({ slot: 1, at: sec(2) }), task({ slot: 2, at: sec(3) })];
  const v3 = g.observe(
    snap(
      [service({ update: { ...upd('completed', THIS_UPDATE_AT), completedAt: 'x' }, taskSpec: 'template-new' })],
      fresh,
      sec(4),
    ),
    sec(4),
  );
  assert.equal(v3.phase, 'stable', v3.detail);
});

test('a template change Swarm starts no update for (placement only) is accepted once the grace has passed', () => {
  const before = service({ image: NEW_SPEC, update: PREV_UPDATE, taskSpec: 'template-old' });
  const g = new ServiceGate(watch({ before, stabilityMs: 0 }), sec(0));
  const old = [task({ slot: 1, at: sec(-100) }), task({ slot: 2, at: sec(-100) })];
  const now = service({ update: PREV_UPDATE, taskSpec: 'template-new' });
  assert.equal(g.observe(snap([now], old, sec(1)), sec(1)).phase, 'pending');
  assert.equal(g.observe(snap([now], old, sec(6)), sec(6)).phase, 'stable');
});

// ---------- more tasks than replicas; tasks the scheduler cannot place ----------

test('an engine restart leaves 3 running tasks of the new version for 2 replicas: converged, not a timeout', () => {
  const g = new ServiceGate(watch({ before: BEFORE, stabilityMs: 0 }), T0);
  const svc = service({ update: { ...upd('completed', THIS_UPDATE_AT), completedAt: 'x' } });
  const three = [task({ slot: 1, at: sec(2) }), task({ slot: 2, at: sec(3) }), task({ slot: 2, at: sec(1) })];
  const v = g.observe(snap([svc], three, sec(5)), sec(5));
  assert.equal(v.phase, 'stable', v.detail);
});

test('more tasks than replicas, one of them still on the old version: not converged', () => {
  const g = new ServiceGate(watch({ before: BEFORE, stabilityMs: 0 }), T0);
  const svc = service({ update: { ...upd('completed', THIS_UPDATE_AT), completedAt: 'x' } });
  const mixed = [
    task({ slot: 1, at: sec(2) }),
    task({ slot: 2, at: sec(3) }),
    task({ slot: 2, image: OLD_SPEC, at: sec(-50) }),
  ];
  const v = g.observe(snap([svc], mixed, sec(5)), sec(5));
  assert.equal(v.phase, 'pending');
  assert.match(v.detail, /old version/);
});

test("a task the scheduler cannot place fails the service with the scheduler's words, after a short grace", () => {
  const g = new ServiceGate(watch(), T0);
  const err = 'no suitable node (scheduling constraints not satisfied on 1 node)';
  const pending = task({ state: 'pending', at: sec(0.5), err });
  assert.equal(g.observe(snap([service({ replicas: 1 })], [pending], sec(1)), sec(1)).phase, 'pending');
  const v = g.observe(snap([service({ replicas: 1 })], [pending], sec(7)), sec(7));
  assert.equal(v.phase, 'failed');
  assert.match(v.detail, /cannot be placed.*no suitable node \(scheduling constraints not satisfied on 1 node\)/);
  assert.equal(v.failedTasks?.[0]?.id, pending.id);
  const res = task({ state: 'pending', at: sec(0.5), err: 'insufficient resources on 1 node' });
  assert.equal(
    new ServiceGate(watch(), T0).observe(snap([service({ replicas: 1 })], [res], sec(7)), sec(7)).phase,
    'failed',
  );
});

test('runGate: a long wait prints where each unfinished service stands every progressMs, not every poll', async () => {
  const g = new ServiceGate(watch({ before: BEFORE, stabilityMs: 0 }), T0);
  const svc = service({ update: upd('updating', THIS_UPDATE_AT, 'update in progress') });
  const { o } = fakeRun(
    (i, now) => snap([svc], [task({ slot: 1, at: sec(1) }), task({ slot: 2, state: 'starting', at: sec(1) })], now),
    { timeoutMs: 95_000, progressMs: 30_000 },
  );
  const { value: r, out } = await captured(() => runGate([g], o));
  assert.equal(r.timedOut, true);
  const lines = out.match(/Gate: \d+ s in, \d+ s left; 0\/1 service\(s\) done\./g) ?? [];
  assert.deepEqual(lines, [
    'Gate: 30 s in, 65 s left; 0/1 service(s) done.',
    'Gate: 60 s in, 35 s left; 0/1 service(s) done.',
    'Gate: 90 s in, 5 s left; 0/1 service(s) done.',
  ]);
  assert.match(out, /app_web: pending: updating: update in progress; 1\/2 running the new spec/);
});
