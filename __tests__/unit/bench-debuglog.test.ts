// The benchmark reads the remote commands and Engine API requests from the action's own debug log
// (RUNNER_DEBUG=1): the lines src/remote.ts prints, as the runner emulation times them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActionRun } from '../../__tests__/helpers/action';
import { OWN_PARTS, Stamp, Timed, debugCalls, gateCount, layerSpans, ownTime } from '../../bench/lib';

const at = (t: number, line: string): Stamp => ({ t, line });

const STAMPS: Stamp[] = [
  { t: 0, ev: 'start' },
  at(400, 'Connected; host key matches the pinned known-hosts entry.'),
  at(450, '::debug::root@127.0.0.1:2222$ docker version --format x%0Adocker info → 0 (40 ms)'),
  at(
    520,
    '::debug::root@127.0.0.1:2222$ [ -d d ] || mkdir -p d%0Aif err=$(LC_ALL=C mkdir d/lock 2>&1); then → 0 (20 ms)',
  ),
  at(560, '::debug::root@127.0.0.1:2222$ cat d/ledger.json → 0 (10 ms)'),
  at(600, '::debug::root@127.0.0.1:2222$ umask 077 && mkdir -p r && base64 -d > r/a.yml.tmp → 0 (30 ms)'),
  at(620, '::group::Layer app (deploy 1.0.1)'),
  at(700, '::debug::root@127.0.0.1:2222$ date +%s%3N && exec docker system dial-stdio → open (70 ms)'),
  // The connection opens inside the first request: 640-710, overlapping the dial's 630-700.
  at(710, '::debug::root@127.0.0.1 Engine API GET /services → ok (70 ms)'),
  at(716, '::debug::root@127.0.0.1 Engine API GET /tasks → ok (4 ms)'),
  at(1000, '::debug::root@127.0.0.1:2222$ docker stack deploy -c a.yml app → 0 (280 ms)'),
  at(1001, 'Gate: watching 1 service(s) of app; timeout 240 s; poll 250 ms.'),
  at(1010, '::debug::root@127.0.0.1 Engine API GET /services → ok (6 ms)'),
  at(1020, '::debug::root@127.0.0.1 Engine API GET /tasks → ok (8 ms)'),
  at(1270, '::debug::root@127.0.0.1 Engine API GET /services → ok (4 ms)'),
  at(1276, '::debug::root@127.0.0.1 Engine API GET /tasks → ok (5 ms)'),
  at(1300, 'Gate: 2 polls in 1.3 s (6 remote commands and 6 Engine API requests so far in this job).'),
  // Arrived with the closing line (one chunk of the pipe): still after the gate.
  at(1300, '::debug::root@127.0.0.1:2222$ umask 077 && mkdir -p d && base64 -d > d/ledger.json.tmp.1 → 0 (25 ms)'),
  at(1360, '::debug::root@127.0.0.1:2222$ grep -qF tok d/holder.json 2>/dev/null && rm -rf d → 0 (15 ms)'),
  at(1380, '::endgroup::'),
  { t: 1500, ev: 'exit' },
];

test('the debug log: every remote command (unescaped, classified) and Engine API request, by start', () => {
  const { commands, requests } = debugCalls(STAMPS);
  assert.deepEqual(
    commands.map((c) => [c.t, c.ms, c.kind, c.end]),
    [
      [410, 40, 'docker version + info', '0'],
      [500, 20, 'lock: take', '0'],
      [550, 10, 'ledger: read', '0'],
      [570, 30, 'upload a file (here-document)', '0'],
      [630, 70, 'Engine API connection (`docker system dial-stdio`, the polls use it)', 'open'],
      [720, 280, 'docker stack deploy', '0'],
      [1275, 25, 'ledger: write', '0'],
      [1345, 15, 'lock: release', '0'],
    ],
  );
  assert.equal(requests.length, 6);
  assert.deepEqual(requests[0], { t: 640, ms: 70, kind: 'GET /services', end: 'ok', i: 8 });
});

test("the gate: its own count, the requests and commands in its window, one poll's time", () => {
  const [span] = layerSpans(STAMPS, ['app']);
  const g = gateCount(span, debugCalls(STAMPS));
  assert.equal(g.polls, 2);
  assert.equal(span.commandsSoFar, 6);
  assert.equal(span.requestsSoFar, 6);
  assert.equal(g.requests, 4);
  assert.equal(g.commands, 0);
  assert.equal(g.gateMs, 299);
  // services 1004 → tasks ends 1020; services 1266 → tasks ends 1276.
  assert.deepEqual(g.pollMs, [16, 10]);
});

test("the action's own time: the parts add up to the main step", () => {
  const t: Timed = {
    label: 'x',
    start: 0,
    ms: 1500,
    postMs: 300,
    run: {} as ActionRun,
    main: STAMPS,
    load: 0,
  };
  const own = ownTime(t, 'app');
  assert.ok(own);
  assert.equal(own[OWN_PARTS[0]], 400);
  assert.equal(own['host checks (engine facts, configs, MTU, registry)'], 40);
  assert.equal(own['lock (take, release)'], 35);
  assert.equal(own['ledger (read, write)'], 35);
  assert.equal(own['files (upload into the release folder)'], 30);
  // 630-710 and 712-716.
  assert.equal(own['Engine API: connection and the snapshot before the deploy'], 84);
  assert.equal(own['`docker stack deploy --detach=true`'], 280);
  assert.equal(own['gate (`Gate: watching` → its closing line)'], 299);
  assert.equal(
    Object.values(own).reduce((a, x) => a + x, 0),
    1500,
  );
});

test("the Engine API on the engine's socket (forwarded by sshd) and the host probe are classified too", () => {
  const { commands } = debugCalls([
    { t: 0, ev: 'start' },
    at(420, '::debug::root@[127.0.0.1]:2222 Engine API socket /var/run/docker.sock → open (9 ms)'),
    at(
      440,
      '::debug::root@[127.0.0.1]:2222$ date +%25s%253N; printf \'%25s\\n\' "$HOME"; sed -n \'s/.*"currentContext".*/\\1/p\' x → 0 (12 ms)',
    ),
  ]);
  assert.deepEqual(
    commands.map((c) => [c.t, c.ms, c.kind, c.end]),
    [
      [411, 9, "Engine API connection (the engine's socket, forwarded by sshd)", 'open'],
      [428, 12, 'host facts (clock, home, which engine the CLI uses)', '0'],
    ],
  );
});
