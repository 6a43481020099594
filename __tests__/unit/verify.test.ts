import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as http from 'node:http';
import { checksFor, judge, parseAnswer, parseVerify, requestScript, runVerify } from '../../src/verify';
import { hookScript, hookVariables, runningVersions } from '../../src/hooks';
import { fakeClock } from '../helpers/clock';
import { RecordingShell } from '../helpers/host';
import { captureStdout } from '../helpers/stdout';

test('parseVerify: stack prefix, options, defaults, last layer', () => {
  const c = parseVerify(
    `# comment\ninfra: http://127.0.0.1/ping\nhttps://1.2.3.4/v host=glasck.com status=200,3xx contains="a b" within=5\napp: 'http://x/?a=1&b=2' network=app_net image=alpine:3`,
    ['infra', 'app'],
  );
  assert.equal(c.length, 3);
  assert.deepEqual([c[0].stack, c[0].status, c[0].within], ['infra', ['2xx', '3xx'], 30]);
  assert.deepEqual(
    [c[1].stack, c[1].host, c[1].status, c[1].contains, c[1].within],
    [undefined, 'glasck.com', ['200', '3xx'], 'a b', 5],
  );
  assert.deepEqual([c[2].url, c[2].network, c[2].image], ['http://x/?a=1&b=2', 'app_net', 'alpine:3']);
  assert.deepEqual(
    checksFor(c, 'infra', false).map((x) => x.line),
    [2],
  );
  assert.deepEqual(
    checksFor(c, 'app', true).map((x) => x.line),
    [3, 4],
  );
});

test('parseVerify: one clear error naming the line', () => {
  const bad: [string, RegExp][] = [
    ['nope: http://x/', /line 1: "nope:" names no layer/],
    ['ftp://x/', /only http/],
    ['http://x/ status=20x', /status=20x/],
    ['http://x/ foo=1', /"foo=1" is not one of/],
    ['http://x/?a=1&b=2', /"&" outside quotes/],
    ['http://x/ image=alpine', /image= only applies with network=/],
    ['http://x/ host=a;b', /outside quotes|not a host name/],
    ['http://x/ within=0', /within=0/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseVerify(text, ['app']), re, text);
});

test('judge: status classes, contains, no answer', () => {
  const [c] = parseVerify('http://x/ contains=1.2.0', []);
  assert.equal(judge(c, { status: 200, error: '', body: 'v 1.2.0' }), undefined);
  assert.equal(judge(c, { status: 302, error: '', body: '1.2.0' }), undefined);
  assert.match(judge(c, { status: 500, error: '', body: 'boom' })!, /status 500, expected 2xx or 3xx/);
  assert.match(judge(c, { status: 200, error: '', body: '1.1.0' })!, /does not contain "1.2.0"/);
  assert.match(judge(c, { status: 0, error: 'curl: (7) refused', body: '' })!, /no answer: curl: \(7\) refused/);
});

test('requestScript: status, Host header and body start, from sh with curl', async () => {
  const server = http.createServer((req, res) => {
    res.statusCode = req.headers.host === 'site.example' ? 500 : 404;
    res.end(`host ${req.headers.host}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const [c] = parseVerify(`http://127.0.0.1:${port}/version host=site.example`, []);
    const out = await new Promise<string>((resolve, reject) => {
      execFile('sh', ['-c', requestScript(c, 5)], (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
    const a = parseAnswer(out)!;
    assert.deepEqual([a.status, a.body], [500, 'host site.example']);
  } finally {
    server.close();
  }
});

test('hookScript: variables reach the hook quoted, exit code and output come back', () => {
  const vars = hookVariables({
    hook: 'pre-deploy',
    stack: 'infra',
    layer: 1,
    layers: 2,
    release: "1.0.0'$(touch /tmp/x)",
    before: { infra_db: '1' },
    after: { infra_db: '2' },
    versions: {},
    result: 'pending',
  });
  let code = 0;
  let out = '';
  try {
    out = execFileSync(
      'sh',
      [
        '-c',
        hookScript(
          'echo "$DEPLOY_STACK $DEPLOY_LAYER/$DEPLOY_LAYERS $DEPLOY_RELEASE $DEPLOY_VERSIONS_AFTER"; exit 3',
          vars,
          5,
        ),
      ],
      { encoding: 'utf8' },
    );
  } catch (e) {
    code = (e as { status: number }).status;
    out = (e as { stdout: string }).stdout;
  }
  assert.equal(code, 3);
  assert.equal(out.trim(), `infra 1/2 1.0.0'$(touch /tmp/x) {"infra_db":"2"}`);
});

test('runVerify: one round a second per pending check; a check passing late passes, one out of time fails with its last answer', async () => {
  const clock = fakeClock(0);
  const checks = parseVerify('http://ok.example/\nhttp://late.example/ within=10\nhttp://down.example/ within=3', []);
  const answer = (status: number, body: string) => `@@verify ${status}\n\n${body}`;
  let lateTries = 0;
  const host = new RecordingShell([
    { sh: 'ok.example', reply: answer(200, 'fine') },
    { sh: 'late.example', reply: () => answer(++lateTries < 3 ? 503 : 200, '') },
    { sh: 'down.example', reply: answer(502, 'Bad Gateway from the proxy') },
  ]);
  const stop = captureStdout();
  let failures;
  try {
    failures = await runVerify(host, 'app', checks, clock);
  } finally {
    stop();
  }
  assert.equal(lateTries, 3);
  // Rounds at 0, 1, 2 and 3 s: down.example's last try is the one at its deadline.
  assert.deepEqual(clock.sleeps, [1000, 1000, 1000]);
  assert.deepEqual(
    failures.map((f) => [f.check.url, f.reason, f.attempts, f.seconds, f.bodyStart]),
    [['http://down.example/', 'status 502, expected 2xx or 3xx', 4, 3, 'Bad Gateway from the proxy']],
  );
  assert.ok(host.calls.every((c) => c.opts.retry && c.opts.silent));
});

test('runningVersions: the tag each service of the stack runs; a host that cannot answer is no versions, not an error', async () => {
  const host = new RecordingShell([
    {
      run: ['docker', 'service', 'ls'],
      times: 1,
      reply: 'app_web reg:5000/acme/web:1.2.0@sha256:abc\napp_db postgres:16\napp_raw busybox\n',
    },
    { run: ['docker', 'service', 'ls'], reply: new Error('Lost the SSH connection to me@vps') },
  ]);
  assert.deepEqual(await runningVersions(host, 'app'), { app_web: '1.2.0', app_db: '16', app_raw: 'busybox' });
  assert.deepEqual(host.calls[0].argv, [
    ...['docker', 'service', 'ls', '--filter', 'label=com.docker.stack.namespace=app'],
    ...['--format', '{{.Name}} {{.Image}}'],
  ]);
  assert.deepEqual(host.calls[0].opts, { retry: true, silent: true });
  assert.deepEqual(await runningVersions(host, 'app'), {});
});
