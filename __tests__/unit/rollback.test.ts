import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rollbackServices, waitRolledBack } from '../../src/rollback';
import type { ServiceState, Snapshot } from '../../src/swarm';
import { fakeClock } from '../helpers/clock';
import { RecordingShell } from '../helpers/host';

const svc = (p: Partial<ServiceState>): ServiceState => ({
  id: 'id-web',
  name: 'app_web',
  image: 'r/web:2',
  replicas: 1,
  update: null,
  taskSpec: 'new',
  ...p,
});
const snap = (services: ServiceState[], tasks: Snapshot['tasks'] = []): Snapshot => ({
  services: new Map(services.map((s) => [s.name, s])),
  tasks,
  now: Date.now(),
});
const BEFORE = svc({ image: 'r/web:1', taskSpec: 'old' });
const STALE = '2026-01-01T00:00:00Z';

/** A host whose first rollback command runs and then loses its answer; it records every command. */
const lossyHost = () =>
  new RecordingShell([
    {
      sh: 'docker service rollback',
      times: 1,
      reply: new Error('Lost the SSH connection to me@vps: the remote shell closed'),
    },
    { sh: 'docker service rollback' },
  ]);

test('a rollback whose answer was lost is not sent again when Swarm took it in', async () => {
  const host = lossyHost();
  const rolling = svc({
    image: 'r/web:1',
    taskSpec: 'old',
    update: { state: 'rollback_started', startedAt: '2026-01-01T00:01:00Z', completedAt: '', message: '' },
  });
  await rollbackServices(host, ['app_web'], {
    poll: async () => snap([rolling]),
    before: new Map([['app_web', BEFORE]]),
    stale: new Map([['app_web', STALE]]),
  });
  assert.equal(
    host.commands.filter((s) => s.includes('service rollback')).length,
    1,
    `a second rollback was sent: ${host.commands.join(' | ')}`,
  );
});

test('a rollback whose answer was lost is sent again only for the services Swarm has not taken it for', async () => {
  const host = lossyHost();
  const api = svc({
    id: 'id-api',
    name: 'app_api',
    update: { state: 'completed', startedAt: STALE, completedAt: '', message: '' },
  });
  const web = svc({ image: 'r/web:1', taskSpec: 'old' });
  await rollbackServices(host, ['app_web', 'app_api'], {
    poll: async () => snap([web, api]),
    before: new Map([
      ['app_web', BEFORE],
      ['app_api', svc({ name: 'app_api', taskSpec: 'old' })],
    ]),
    stale: new Map([
      ['app_web', STALE],
      ['app_api', STALE],
    ]),
  });
  assert.equal(host.commands.length, 2);
  assert.match(host.commands[1], /service rollback --detach app_api$/);
});

test('waiting for a rollback: a failed read is retried until the bound, not the end of the wait', async () => {
  let n = 0;
  const back = svc({
    image: 'r/web:1',
    update: { state: 'rollback_completed', startedAt: '2026-01-01T00:01:00Z', completedAt: '', message: '' },
  });
  const tasks = [
    {
      id: 't',
      serviceId: 'id-web',
      slot: 1,
      desired: 'running',
      state: 'running',
      at: 0,
      err: '',
      image: 'r/web:1',
      exitCode: null,
      message: '',
    },
  ];
  const r = await waitRolledBack({
    targets: new Map([['app_web', { image: 'r/web:1', staleStartedAt: STALE }]]),
    timeoutMs: 5000,
    pollMs: 10,
    poll: async () => {
      if (++n < 3) throw new Error('Lost the SSH connection to me@vps');
      return snap([back], tasks);
    },
  });
  assert.deepEqual(r.notBack, []);
  assert.equal(n, 3);
});

test('waiting for a rollback: back once the old spec runs on tasks started after the request, even when Swarm reports the older status again', async () => {
  const asked = 1_000_000;
  const flipped = svc({
    image: 'r/web:1',
    update: { state: 'completed', startedAt: STALE, completedAt: '', message: 'update completed' },
  });
  const task = (at: number) => ({
    id: `t${at}`,
    serviceId: 'id-web',
    slot: 1,
    desired: 'running',
    state: 'running',
    at,
    err: '',
    image: 'r/web:1',
    exitCode: null,
    message: '',
  });
  const wait = (at: number) =>
    waitRolledBack({
      targets: new Map([['app_web', { image: 'r/web:1', staleStartedAt: STALE, requestedAt: asked }]]),
      timeoutMs: 50,
      pollMs: 10,
      poll: async () => snap([flipped], [task(at)]),
    });
  assert.deepEqual((await wait(asked + 500)).notBack, []);
  // The same status with a task that ran before the request: not our rollback yet.
  assert.deepEqual((await wait(asked - 500)).notBack, ['app_web']);
});

test('waiting for a rollback: a service not back says what was last seen (image, replicas on it, update state)', async () => {
  const half = svc({
    image: 'r/web:1',
    replicas: 2,
    update: {
      state: 'rollback_started',
      startedAt: '2026-01-01T00:01:00Z',
      completedAt: '',
      message: 'rollback in progress',
    },
  });
  const tasks = [
    {
      id: 't1',
      serviceId: 'id-web',
      slot: 1,
      desired: 'running',
      state: 'running',
      at: 0,
      err: '',
      image: 'r/web:1',
      exitCode: null,
      message: '',
    },
    {
      id: 't2',
      serviceId: 'id-web',
      slot: 2,
      desired: 'running',
      state: 'starting',
      at: 0,
      err: '',
      image: 'r/web:1',
      exitCode: null,
      message: '',
    },
  ];
  const r = await waitRolledBack({
    targets: new Map([['app_web', { image: 'r/web:1', staleStartedAt: STALE }]]),
    timeoutMs: 30,
    pollMs: 10,
    poll: async () => snap([half], tasks),
  });
  assert.deepEqual(r.notBack, ['app_web']);
  assert.equal(
    r.lastSeen.get('app_web'),
    'r/web:1, 1/2 running on it (1 running, 1 starting), update rollback_started',
  );
});

// Seen on engine 26.1: a crashed task's restart raced the rollback, and Swarm showed a third task of
// the old spec for 2 replicas. The gate's rule holds here too: enough of them running, none of another.
test('waiting for a rollback: more running tasks of the old spec than replicas is back; one of the new spec still running is not', async () => {
  const back = svc({
    image: 'r/web:1',
    replicas: 2,
    update: { state: 'rollback_completed', startedAt: '2026-01-01T00:01:00Z', completedAt: '', message: '' },
  });
  const t = (id: string, image: string) => ({
    id,
    serviceId: 'id-web',
    slot: 1,
    desired: 'running',
    state: 'running',
    at: 0,
    err: '',
    image,
    exitCode: null,
    message: '',
  });
  const wait = (tasks: Snapshot['tasks']) =>
    waitRolledBack({
      targets: new Map([['app_web', { image: 'r/web:1', staleStartedAt: STALE }]]),
      timeoutMs: 30,
      pollMs: 10,
      poll: async () => snap([back], tasks),
    });
  assert.deepEqual((await wait([t('a', 'r/web:1'), t('b', 'r/web:1'), t('c', 'r/web:1')])).notBack, []);
  assert.deepEqual((await wait([t('a', 'r/web:1'), t('b', 'r/web:1'), t('c', 'r/web:2')])).notBack, ['app_web']);
});

test('waiting for a rollback: polled every pollMs up to the bound, then what each service not back looked like', async () => {
  const clock = fakeClock(0);
  let polls = 0;
  const stuck = svc({
    image: 'r/web:2',
    update: { state: 'rollback_started', startedAt: 'x', completedAt: '', message: '' },
  });
  const r = await waitRolledBack({
    targets: new Map([['app_web', { image: 'r/web:1', staleStartedAt: STALE }]]),
    timeoutMs: 3000,
    pollMs: 1000,
    poll: async () => (polls++, snap([stuck])),
    clock,
  });
  assert.equal(polls, 4);
  assert.deepEqual(clock.sleeps, [1000, 1000, 1000]);
  assert.deepEqual(r.notBack, ['app_web']);
  assert.equal(r.lastSeen.get('app_web'), 'r/web:2, 0/1 running on it, update rollback_started');
});
