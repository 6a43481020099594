// A layer's deploy against a fake host (src/host/shell.ts `Host`): the shell records what is sent, the
// Engine API answers from a swarm the test changes when `docker stack deploy` runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/host/engine-api';
import type { Host } from '../../src/host/shell';
import type { Inputs } from '../../src/inputs';
import type { LayerPlan, RunContext } from '../../src/layer';
import { deployLayer } from '../../src/layer-deploy';
import type { ApiService } from '../../src/swarm';
import { RecordingShell, Row } from '../helpers/host';

const service = (name: string, image: string): ApiService => ({
  ID: `id-${name}`,
  Spec: {
    Name: name,
    TaskTemplate: { ContainerSpec: { Image: image } },
    Mode: { Replicated: { Replicas: 1 } },
  },
});

/** A host whose swarm is `services` (no tasks), and whose shell answers from `rows`. */
function fakeHost(services: ApiService[], rows: Row[]): { host: Host; shell: RecordingShell } {
  const shell = new RecordingShell(rows);
  let requests = 0;
  const engine: Engine = {
    get: async (path) => (requests++, path.startsWith('/services') ? structuredClone(services) : []),
    hostNow: () => Date.now(),
    get requests() {
      return requests;
    },
    close: () => undefined,
  };
  const host: Host = {
    where: shell.where,
    run: (argv, opts) => shell.run(argv, opts),
    sh: (script, opts) => shell.sh(script, opts),
    writeFile: (p, content, mode) => shell.writeFile(p, content, mode),
    engine: () => engine,
    commands: 0,
  };
  return { host, shell };
}

const plan: LayerPlan = {
  stack: 's',
  release: '2.0.0',
  kind: 'deploy',
  dir: '/srv/s/releases/2.0.0',
  composePaths: ['s.yml'],
  versions: {},
  watches: [
    { name: 's_web', expectedImage: 'reg/web:2.0.0', stabilityMs: 0 },
    { name: 's_new', expectedImage: 'reg/new:2.0.0', stabilityMs: 0 },
  ],
  timeoutS: 5,
};

const ctx = (remote: Host): RunContext => ({
  inputs: {} as Inputs,
  remote,
  sha: '',
  ref: '',
  actor: '',
  runUrl: '',
  withRegistryAuth: false,
  detachFlag: true,
  pollMs: 10,
});

const refused = { code: 1, stdout: '', stderr: 'port 8080 is already in use' };

test('a docker stack deploy refused before any change: its error is the layer’s, and nothing is undone', async () => {
  const { host, shell } = fakeHost(
    [service('s_web', 'reg/web:1.0.0')],
    [{ sh: 'docker stack deploy', reply: refused }],
  );
  let gated = 0;
  await assert.rejects(
    deployLayer(ctx(host), plan, () => gated++),
    /docker stack deploy s failed on me@vps \(exit 1\):\nport 8080/,
  );
  assert.equal(gated, 0, 'no gate, so nothing started beside it');
  assert.equal(shell.commands.length, 1);
  assert.match(shell.commands[0], /^cd \/srv\/s\/releases\/2\.0\.0 && docker stack deploy --compose-file s\.yml/);
});

test('a docker stack deploy that created a service, then failed: the service is removed, the layer rolled back', async () => {
  const services = [service('s_web', 'reg/web:1.0.0')];
  const deploy: Row = {
    sh: 'docker stack deploy',
    reply: () => (services.push(service('s_new', 'reg/new:2.0.0')), refused),
  };
  const { host, shell } = fakeHost(services, [deploy, { sh: /docker service rm s_new/ }]);
  const { outcome } = await deployLayer(ctx(host), plan);
  assert.equal(outcome.result, 'rolled-back');
  assert.match(outcome.error ?? '', /^Stack s failed to deploy\.\n {2}docker stack deploy s failed on me@vps/);
  assert.match(outcome.error ?? '', /Removed the service\(s\) this release created: s_new\.$/);
  assert.deepEqual(
    outcome.rows.map((r) => [r.service, r.state]),
    [
      ['s_web', 'pending'],
      ['s_new', 'removed'],
    ],
  );
  assert.equal(shell.commands.filter((c) => /docker service rm/.test(c)).length, 1);
});
