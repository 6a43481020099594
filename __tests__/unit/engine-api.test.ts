import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import { after, test } from 'node:test';
import { Dialed, EngineApi } from '../../src/host/engine-api';
import { captureStdout } from '../helpers/stdout';

// A local HTTP server stands in for the engine; each dial is a TCP connection to it.
const server = http.createServer((req, res) => {
  if (req.url === '/silent') return; // never answers
  if (req.url?.startsWith('/refused')) {
    res.writeHead(503, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ message: 'This node is not a swarm manager.' }));
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ path: req.url }));
});
const listening = new Promise<number>((resolve) =>
  server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
);
after(() => server.close());

async function engine(offsetMs = 0, stderr = '') {
  const port = await listening;
  const dials: net.Socket[] = [];
  const api = new EngineApi(
    () =>
      new Promise<Dialed>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => resolve({ stream: s, offsetMs, stderr: () => stderr }));
        dials.push(s);
      }),
  );
  return { api, dials };
}

test('EngineApi: many requests over one connection, JSON answers', async () => {
  const { api, dials } = await engine();
  for (let i = 0; i < 20; i++) assert.deepEqual(await api.get(`/tasks?n=${i}`, 5000), { path: `/tasks?n=${i}` });
  assert.equal(dials.length, 1, 'one connection for every request');
  assert.equal(api.requests, 20);
  api.close();
});

test('EngineApi: requests sent at once, before the connection is open, still share one connection', async () => {
  const { api, dials } = await engine();
  const paths = ['/info', '/distribution/a', '/distribution/b', '/distribution/c', '/distribution/d'];
  const answers = await Promise.all(paths.map((p) => api.get(p, 5000)));
  assert.deepEqual(
    answers,
    paths.map((p) => ({ path: p })),
  );
  assert.equal(dials.length, 1, `${dials.length} connections for ${paths.length} requests sent at once`);
  assert.deepEqual(await api.get('/services', 5000), { path: '/services' });
  assert.equal(dials.length, 1);
  api.close();
});

test('EngineApi: a connection that closed is opened again at the next request', async () => {
  const { api, dials } = await engine();
  await api.get('/a', 5000);
  dials[0].destroy();
  await new Promise((r) => dials[0].once('close', r));
  assert.deepEqual(await api.get('/b', 5000), { path: '/b' });
  assert.equal(dials.length, 2);
  api.close();
});

test("EngineApi: a refusal throws the engine's message and the path, not the query", async () => {
  const { api } = await engine();
  await assert.rejects(
    api.get('/refused?filters=x', 5000),
    /refused \/refused \(HTTP 503\): This node is not a swarm manager\./,
  );
  api.close();
});

test('EngineApi: an engine that does not answer fails within the bound, and the next request works', async () => {
  const { api, dials } = await engine(0, 'dial-stdio: the engine is frozen\n');
  const t0 = Date.now();
  await assert.rejects(
    api.get('/silent', 300),
    /did not answer within 0 s \(GET \/silent\) \(dial-stdio: the engine is frozen\)/,
  );
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual(await api.get('/after', 5000), { path: '/after' });
  assert.equal(dials.length, 2, 'the wedged connection was dropped');
  api.close();
});

test("EngineApi: the host's clock is the runner's plus the offset measured at the dial", async () => {
  const { api } = await engine(-3_600_000);
  await api.get('/x', 5000);
  assert.ok(Math.abs(api.hostNow() - (Date.now() - 3_600_000)) < 1000);
  api.close();
});

test(
  'EngineApi: a wedged connection whose far end never confirms the close still fails in time, and is not reused',
  { timeout: 10_000 },
  async () => {
    // An SSH channel to a frozen engine: sshd confirms the close only once dial-stdio exits, which it does not.
    const port = await listening;
    let dials = 0;
    const api = new EngineApi(
      () =>
        new Promise<Dialed>((resolve) => {
          dials++;
          const sock = net.connect(port, '127.0.0.1', () => {
            const stream = new Duplex({
              read() {},
              write(chunk, _enc, cb) {
                sock.write(chunk, cb);
              },
              destroy() {
                // never calls back: no 'close'
              },
            });
            sock.on('data', (d) => stream.push(d));
            resolve({ stream, offsetMs: 0, stderr: () => '' });
          });
          after(() => sock.destroy());
        }),
    );
    await assert.rejects(api.get('/silent', 300), /did not answer within 0 s \(GET \/silent\)/);
    const next = await Promise.race([
      api.get('/after', 5000),
      new Promise((r) => setTimeout(() => r('the next request waited for the wedged connection'), 3000)),
    ]);
    assert.deepEqual(next, { path: '/after' });
    assert.equal(dials, 2);
    api.close();
  },
);

test(
  'EngineApi: drop() fails the requests in flight at once (their SSH connection closed) and the next one dials again',
  { timeout: 10_000 },
  async () => {
    const { api, dials } = await engine();
    const inFlight = api.get('/silent', 60_000);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    api.drop(new Error('Lost the SSH connection to root@host: it closed'));
    await assert.rejects(inFlight, /Lost the SSH connection to root@host: it closed/);
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual(await api.get('/after', 5000), { path: '/after' });
    assert.equal(dials.length, 2);
    api.close();
  },
);

test('EngineApi: with debug logging on, every request is logged with its path (no query) and duration', async () => {
  const { api } = await engine();
  const before = process.env.RUNNER_DEBUG;
  process.env.RUNNER_DEBUG = '1';
  const stop = captureStdout();
  let out = '';
  try {
    await api.get('/tasks?filters=x', 5000);
    await assert.rejects(api.get('/refused', 5000));
  } finally {
    out = stop();
    if (before === undefined) delete process.env.RUNNER_DEBUG;
    else process.env.RUNNER_DEBUG = before;
    api.close();
  }
  // The test runner's own messages share stdout: only the debug lines are read.
  const lines = out.match(/::debug::.*/g) ?? [];
  assert.equal(lines.length, 2, out);
  assert.match(lines[0], /^::debug::host Engine API GET \/tasks → ok \(\d+ ms\)$/);
  assert.match(lines[1], /^::debug::host Engine API GET \/refused → error \(\d+ ms\)$/);
});
