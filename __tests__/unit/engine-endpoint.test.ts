/**
 * Which engine the host's CLI uses decides where the Engine API connection goes (src/host/engine-endpoint.ts),
 * and a CLI older than Docker 26 gets `docker stack deploy` without --detach (src/stack.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import type { Client } from 'ssh2';
import { DEFAULT_SOCKET, EngineEndpoint, PROBE_SCRIPT, parseProbe } from '../../src/host/engine-endpoint';
import { stackDeploy } from '../../src/stack';
import { RecordingShell } from '../helpers/host';

const probe = (lines: string[]) => parseProbe(lines.join('\n') + '\n', 1000, 1010);

test('parseProbe: the socket the CLI uses, or none when only the CLI can reach its engine', () => {
  assert.equal(probe(['2000', '/home/deploy', '', '', '']).socket, DEFAULT_SOCKET);
  assert.equal(
    probe(['2000', '/home/deploy', 'unix:///run/user/1000/docker.sock', '', '']).socket,
    '/run/user/1000/docker.sock',
  );
  assert.equal(probe(['2000', '/home/deploy', 'tcp://10.0.0.2:2376', '', '']).socket, null);
  assert.equal(probe(['2000', '/home/deploy', 'ssh://swarm-a', '', '']).socket, null);
  assert.equal(probe(['2000', '/home/deploy', '', 'remote', '']).socket, null);
  assert.equal(probe(['2000', '/home/deploy', '', '', 'remote']).socket, null);
  assert.equal(probe(['2000', '/home/deploy', '', 'default', 'remote']).socket, DEFAULT_SOCKET, 'DOCKER_CONTEXT wins');
  assert.equal(probe(['2000', '/home/deploy', '', '', 'default']).socket, DEFAULT_SOCKET);
  // DOCKER_HOST wins over a context, as the CLI has it.
  assert.equal(probe(['2000', '/home/deploy', 'unix:///x.sock', 'remote', 'remote']).socket, '/x.sock');
});

test('parseProbe: the home, and the host clock against the middle of the round trip', () => {
  const f = probe(['2000', '/home/deploy', '', '', '']);
  assert.equal(f.home, '/home/deploy');
  assert.equal(f.offsetMs, 2000 - 1005);
  assert.equal(probe(['not a clock', '/root', '', '', '']).offsetMs, 0);
});

test('the probe script, run by sh: its five lines, the current context and never the credentials beside it', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-'));
  try {
    fs.mkdirSync(path.join(home, '.docker'));
    fs.writeFileSync(
      path.join(home, '.docker', 'config.json'),
      '{\n  "auths": { "ghcr.io": { "auth": "c2VjcmV0OnRva2Vu" } },\n  "currentContext": "prod-swarm"\n}\n',
    );
    const env = { PATH: process.env.PATH ?? '', HOME: home };
    const out = spawnSync('sh', ['-c', PROBE_SCRIPT], { env, encoding: 'utf8' }).stdout;
    const lines = out.split('\n');
    assert.match(lines[0], /^\d{13}$/);
    assert.deepEqual(lines.slice(1, 5), [home, '', '', 'prod-swarm']);
    assert.doesNotMatch(out, /c2VjcmV0|auths/);
    assert.equal(parseProbe(out, Date.now(), Date.now()).socket, null);
    // No config at all: the default socket.
    fs.rmSync(path.join(home, '.docker'), { recursive: true });
    const bare = spawnSync('sh', ['-c', PROBE_SCRIPT], {
      env: { ...env, DOCKER_HOST: 'unix:///a.sock' },
      encoding: 'utf8',
    });
    assert.equal(bare.status, 0);
    assert.equal(parseProbe(bare.stdout, Date.now(), Date.now()).socket, '/a.sock');
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('stackDeploy: a CLI older than Docker 26 refuses --detach; run again without, once, and told', async () => {
  const old = { code: 125, stdout: '', stderr: "unknown flag: --detach\nSee 'docker stack deploy --help'.\n" };
  const host = new RecordingShell([
    { sh: /--detach/, reply: old },
    { sh: /docker stack deploy/, reply: 'Updating service app_web (id: abc)\n' },
  ]);
  let told = 0;
  const out = await stackDeploy(host, 'rel', 'app', ['stacks/app.yml'], {
    withRegistryAuth: false,
    detachFlag: true,
    onNoDetach: () => told++,
  });
  assert.equal(out, 'Updating service app_web (id: abc)');
  assert.equal(told, 1);
  assert.deepEqual(
    host.calls.map((c) => c.text),
    [
      'cd rel && docker stack deploy --compose-file stacks/app.yml --detach\\=true app',
      'cd rel && docker stack deploy --compose-file stacks/app.yml app',
    ],
  );
});

test('stackDeploy: any other failure is not retried, whatever its flags', async () => {
  const host = new RecordingShell([
    { sh: /docker stack deploy/, reply: { code: 1, stdout: '', stderr: 'network edge not found' } },
  ]);
  let told = 0;
  await assert.rejects(
    stackDeploy(host, 'rel', 'app', ['stacks/app.yml'], {
      withRegistryAuth: false,
      detachFlag: true,
      onNoDetach: () => told++,
    }),
    /docker stack deploy app failed on me@vps \(exit 1\):\nnetwork edge not found/,
  );
  assert.equal(host.calls.length, 1);
  assert.equal(told, 0);
});

/** An SSH connection whose sshd forwards no socket, and whose exec channels answer a clock line (dial-stdio). */
function refusingConn() {
  const calls: string[] = [];
  const conn = {
    openssh_forwardOutStreamLocal(socket: string, cb: (err?: Error) => void) {
      calls.push(`forward ${socket}`);
      cb(Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 2 }));
    },
    exec(command: string, cb: (err: Error | undefined, ch: unknown) => void) {
      calls.push(`exec ${command}`);
      const ch = Object.assign(new PassThrough(), { stderr: new PassThrough(), close() {} });
      ch.push('1700000000000\n');
      cb(undefined, ch);
    },
  };
  return { conn: conn as unknown as Client, calls };
}

const facts = (socket: string | null) => ({ home: '/root', offsetMs: 0, socket });

test('EngineEndpoint: sshd forwards no socket, and the probe names the default after that dial failed: no move', async () => {
  const { conn, calls } = refusingConn();
  const ep = new EngineEndpoint();
  await ep.open(conn, '', 'me@vps', 1000);
  assert.deepEqual(calls, [`forward ${DEFAULT_SOCKET}`, 'exec date +%s%3N && exec docker system dial-stdio']);
  assert.equal(ep.learn(facts(DEFAULT_SOCKET)), false, 'dialed again on a socket sshd just refused');
  await ep.open(conn, '', 'me@vps', 1000);
  assert.equal(calls.filter((c) => c.startsWith('forward')).length, 1, calls.join('\n'));
});

test('EngineEndpoint: the probe answers before the dial on the default socket fails: alike', async () => {
  const { conn, calls } = refusingConn();
  const ep = new EngineEndpoint();
  assert.equal(ep.learn(facts(DEFAULT_SOCKET)), false);
  await ep.open(conn, '', 'me@vps', 1000);
  assert.deepEqual(calls, [`forward ${DEFAULT_SOCKET}`, 'exec date +%s%3N && exec docker system dial-stdio']);
  assert.equal(ep.learn(facts(DEFAULT_SOCKET)), false);
});

test('EngineEndpoint: the CLI uses another socket or another engine: the connection moves, once', () => {
  const ep = new EngineEndpoint();
  assert.equal(ep.learn(facts('/run/user/1000/docker.sock')), true);
  assert.equal(ep.learn(facts('/run/user/1000/docker.sock')), false);
  assert.equal(ep.learn(facts(null)), true);
  assert.equal(ep.learn(facts(null)), false);
});
