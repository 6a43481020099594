import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { Engine } from '../../src/host/engine-api';
import { readApiNodes, readConfigHashes, readInfo } from '../../src/host/engine-facts';

/** An engine that answers each path from a table and records what was asked. */
function fakeEngine(answers: Record<string, unknown>): Engine & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    requests: 0,
    hostNow: () => Date.now(),
    close() {},
    async get(path: string) {
      asked.push(path);
      if (!(path in answers)) throw new Error(`the engine refused ${path} (HTTP 404): page not found`);
      return answers[path];
    },
  };
}

test('readInfo: the engine version, the swarm state, the node answering and its address and name, from one GET /info', async () => {
  const e = fakeEngine({
    '/info': {
      ServerVersion: '26.1.5+dfsg1',
      Name: 'mgr-1',
      Swarm: { LocalNodeState: 'active', ControlAvailable: true, NodeID: 'n1', NodeAddr: '192.0.2.2' },
    },
  });
  assert.deepEqual(await readInfo(e), {
    version: '26.1.5+dfsg1',
    swarmState: 'active',
    manager: true,
    nodeId: 'n1',
    nodeAddr: '192.0.2.2',
    name: 'mgr-1',
  });
  const worker = fakeEngine({ '/info': { ServerVersion: '20.10.24', Swarm: { LocalNodeState: 'active' } } });
  assert.equal((await readInfo(worker)).manager, false);
  const none = fakeEngine({ '/info': { ServerVersion: '28.0.1', Swarm: { LocalNodeState: 'inactive' } } });
  assert.equal((await readInfo(none)).swarmState, 'inactive');
  assert.deepEqual(e.asked, ['/info']);
});

test('readConfigHashes: name → sha256 of the decoded content; readApiNodes: the list as the engine gives it', async () => {
  const e = fakeEngine({
    '/configs': [
      { ID: 'c1', Spec: { Name: 'app_nginx_1', Data: Buffer.from('server {}\n').toString('base64') } },
      { ID: 'c2', Spec: { Name: 'empty' } },
      { ID: 'c3' },
    ],
    '/nodes': [{ ID: 'n1' }, { ID: 'n2' }],
  });
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  assert.deepEqual(await readConfigHashes(e), { app_nginx_1: sha('server {}\n'), empty: sha('') });
  assert.deepEqual(await readApiNodes(e), [{ ID: 'n1' }, { ID: 'n2' }]);
  await assert.rejects(readInfo(e), /refused \/info/);
});
