// On a multi-node swarm a failed task is explained with the node it ran on (tasks carry a node id;
// the job reads the nodes' hostnames once, at failure time), and nodes that take no new tasks are named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeTask, nodesNotTakingTasks } from '../../src/layer-failure';
import { node } from '../helpers/nodes';
import { TaskState, snapshotOf } from '../../src/swarm';

const NODES = new Map(
  [node({ id: 'n1', hostname: 'lab-worker1' }), node({ id: 'n2', hostname: 'lab-worker2' })].map((n) => [n.id, n]),
);
const task = (p: Partial<TaskState>): TaskState => ({
  id: 'abcdefabcdef0123456789',
  serviceId: 's',
  slot: 1,
  desired: 'shutdown',
  state: 'failed',
  at: 0,
  err: '',
  image: 'r/web:1',
  exitCode: null,
  message: '',
  ...p,
});

test('snapshotOf keeps the node each task was given (none while it is unscheduled)', () => {
  const snap = snapshotOf(
    [{ ID: 's', Spec: { Name: 'app_web', Mode: { Replicated: { Replicas: 2 } } } }],
    [
      { ID: 't1', ServiceID: 's', NodeID: 'n2', DesiredState: 'running', Status: { State: 'running' } },
      { ID: 't2', ServiceID: 's', DesiredState: 'running', Status: { State: 'pending', Err: 'no suitable node' } },
    ],
    1700000000000,
  );
  assert.deepEqual(
    snap.tasks.map((t) => [t.id, t.node]),
    [
      ['t1', 'n2'],
      ['t2', ''],
    ],
  );
  assert.equal(snap.now, 1700000000000);
});

test('describeTask names the node a task failed on, given the nodes of a multi-node swarm', () => {
  assert.equal(
    describeTask(task({ node: 'n1', exitCode: 3, err: 'task: non-zero exit (3)' }), NODES),
    'task abcdefabcdef (slot 1) on lab-worker1 failed, exit 3: task: non-zero exit (3)',
  );
  // A node the job could not name (it left the swarm) is shown by its id.
  assert.equal(
    describeTask(task({ node: 'zz9876543210abcdef', err: 'x' }), NODES),
    'task abcdefabcdef (slot 1) on node zz9876543210 failed: x',
  );
  // Never scheduled: no node to name.
  assert.equal(
    describeTask(task({ state: 'pending', err: 'no suitable node' }), NODES),
    'task abcdefabcdef (slot 1) pending: no suitable node',
  );
  // Without a node list (one node, or it could not be read): the task as before, no node.
  assert.equal(describeTask(task({ node: 'n1', err: 'x' })), 'task abcdefabcdef (slot 1) failed: x');
});

test('describeTask: "No such image" on a node means that node could not pull it', () => {
  const t = task({ node: 'n2', state: 'rejected', err: 'No such image: 10.213.1.1:5000/app/api:1.1.0@sha256:abc' });
  assert.equal(
    describeTask(t, NODES),
    'task abcdefabcdef (slot 1) on lab-worker2 rejected: No such image: 10.213.1.1:5000/app/api:1.1.0@sha256:abc (lab-worker2 could not pull the image: can it reach the registry, with the credentials?)',
  );
});

test('nodesNotTakingTasks: down, drained and paused nodes, by hostname', () => {
  const nodes = [
    node({ id: 'm', hostname: 'mgr' }),
    node({ id: 'a', hostname: 'w1', state: 'down', schedulable: false }),
    node({ id: 'b', hostname: 'w2', availability: 'drain', schedulable: false }),
    node({ id: 'c', hostname: 'w3', availability: 'pause', schedulable: false }),
  ];
  assert.equal(nodesNotTakingTasks(nodes), 'Swarm nodes not taking new tasks: w1 (down), w2 (drain), w3 (pause).');
  assert.equal(nodesNotTakingTasks([nodes[0]]), '');
});
