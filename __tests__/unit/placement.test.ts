import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadComposeFile, resolveCompose, stackServices } from '../../src/compose';
import { meets, parseNodes, placementFindings } from '../../src/placement';
import { node } from '../helpers/nodes';

const MANAGER = node({ id: 'm1', hostname: 'mgr', role: 'manager' });
const A = node({ id: 'w1', hostname: 'w1', labels: { zone: 'a' } });
const B = node({ id: 'w2', hostname: 'w2', labels: { zone: 'b', ssd: 'true' } });

test("meets: Swarm's operators and attributes; values compare without case; a missing label matches only !=", () => {
  assert.equal(meets('node.labels.zone == a', A), true);
  assert.equal(meets('node.labels.zone==A', A), true);
  assert.equal(meets('node.labels.zone != a', A), false);
  assert.equal(meets('node.labels.zone == a', MANAGER), false);
  assert.equal(meets('node.labels.zone != a', MANAGER), true);
  assert.equal(meets('node.role == manager', MANAGER), true);
  assert.equal(meets('node.role==worker', MANAGER), false);
  assert.equal(meets('node.hostname != mgr', A), true);
  assert.equal(meets('node.platform.os == linux', A), true);
  assert.equal(meets('node.platform.arch == aarch64', A), false);
  assert.equal(meets('node.id == w2', B), true);
});

test("parseNodes: the Engine API's nodes; drained or down nodes are not schedulable", () => {
  const apiNode = (id: string, state: string, availability: string, labels: Record<string, string>) => ({
    ID: id,
    Spec: { Role: 'worker', Availability: availability, Labels: labels },
    Description: { Hostname: id, Platform: { OS: 'linux', Architecture: 'x86_64' }, Engine: { Labels: {} } },
    Status: { State: state },
  });
  const nodes = parseNodes([
    apiNode('a', 'ready', 'active', { zone: 'a' }),
    apiNode('b', 'ready', 'drain', {}),
    apiNode('c', 'down', 'active', {}),
  ]);
  assert.deepEqual(
    nodes.map((n) => [n.id, n.schedulable]),
    [
      ['a', true],
      ['b', false],
      ['c', false],
    ],
  );
  assert.deepEqual(nodes[0].labels, { zone: 'a' });
});

function stack(yaml: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'placement-'));
  fs.writeFileSync(path.join(dir, 'stack.yml'), yaml);
  const files = [loadComposeFile(path.join(dir, 'stack.yml'), 'stack.yml')];
  return { name: 'app', files, services: Object.values(stackServices(files.map((f) => resolveCompose(f, {})))) };
}

test('placementFindings: a constraint no node meets names the service, the constraint and what the nodes have', () => {
  const s = stack(`services:
  db:
    image: db:1
    deploy:
      placement:
        constraints: [node.labels.zone == c]
  ok:
    image: ok:1
    deploy:
      placement:
        constraints: [node.labels.zone == b, node.labels.ssd == true]
`);
  const f = placementFindings(s, s.services, [MANAGER, A, B]);
  assert.equal(f.length, 1);
  assert.equal(f[0].rule, 'placement');
  assert.equal(f[0].severity, 'error');
  assert.equal(f[0].service, 'db');
  assert.equal(f[0].file, 'stack.yml');
  assert.equal(f[0].line, 5);
  assert.match(f[0].message, /Service db: no node meets "node.labels.zone == c"/);
  assert.match(f[0].message, /w1 \(worker; labels zone=a\); w2 \(worker; labels zone=b, ssd=true\)/);
});

test('placementFindings: constraints each met by some node but never together; a drained node does not count', () => {
  const s = stack(`services:
  db:
    image: db:1
    deploy:
      placement:
        constraints: [node.labels.zone == a, node.labels.ssd == true]
`);
  assert.match(
    placementFindings(s, s.services, [A, B])[0].message,
    /no node meets all of "node.labels.zone == a", "node.labels.ssd == true" at once/,
  );
  const t = stack(`services:
  db:
    image: db:1
    deploy:
      placement:
        constraints: [node.labels.zone == b]
`);
  assert.equal(placementFindings(t, t.services, [A, B]).length, 0);
  assert.equal(placementFindings(t, t.services, [A, { ...B, schedulable: false }]).length, 1);
});

test('placementFindings: replicas that max_replicas_per_node cannot fit on the eligible nodes', () => {
  const s = stack(`services:
  web:
    image: web:1
    deploy:
      replicas: 3
      placement:
        max_replicas_per_node: 1
        constraints: [node.role == worker]
`);
  const f = placementFindings(s, s.services, [MANAGER, A, B]);
  assert.equal(f.length, 1);
  assert.match(f[0].message, /3 replicas cannot fit: max_replicas_per_node 1 on 2 eligible node\(s\)/);
  assert.equal(placementFindings(s, s.services, [MANAGER, A, B, node({ id: 'w3', hostname: 'w3' })]).length, 0);
});
