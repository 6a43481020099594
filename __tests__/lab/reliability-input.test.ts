// Reliability under faults, attacks and bad input, on the real lab, through dist/index.js as the
// runner runs it: unreachable host, injection, known_hosts and keys, megabytes of logs, a full or
// read-only deploy folder. Every wait is bounded and waits on real state; the shared set-up, stack
// files and helpers are in reliability-suite.ts.
//
//   node --import tsx --test --test-reporter=spec __tests__/lab/reliability-input.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { docker, dockerOk, removeStack, run, tempDir } from '../helpers/lab';
import { freePort } from './reliability-helpers';
import {
  lab,
  hostHome,
  own,
  PASSWORD,
  PASSPHRASE,
  CANARY,
  SERVE,
  INJ,
  LOGS,
  FULL,
  SMALL_DIR,
  tempDirs,
  dirs,
  passKey,
  strangerKey,
  figure,
  secs,
  BASE,
  NOISY_MARKER,
  NOISY,
  NASTY_COMPOSE,
  QUOTED_COMPOSE,
  workDir,
  common,
  viaOwn,
  act,
  actBounded,
  tail,
  lockPath,
  LedgerRec,
  ledger,
  svcState,
  canaries,
  useSuite,
  secretsScenario,
} from './reliability-suite';

let silentServer: net.Server | undefined;
useSuite(['1.0.0'], undefined, () => {
  silentServer?.close();
});

// ------------------------------------------------------------------ 5. unreachable host

const BLACK_HOLE = '127.0.0.77';
const DROP_RULE = (op: '-I' | '-D') => [
  op,
  'OUTPUT',
  '-d',
  `${BLACK_HOLE}/32`,
  '-p',
  'tcp',
  '--dport',
  '22',
  '-j',
  'DROP',
];

test('5. host unreachable or wrong port: a clear error within the connect timeout', { timeout: 120_000 }, async () => {
  const refused = await freePort();
  const silent = await freePort();
  silentServer = net.createServer(() => undefined); // accepts, never says a word
  await new Promise<void>((r) => silentServer!.listen(silent, '127.0.0.1', r));
  const hostKey = lab.knownHosts.trim().split(/\s+/).slice(1, 3).join(' ');
  const cases = [
    {
      what: 'wrong port (nothing listens)',
      host: '127.0.0.1',
      port: refused,
      error: /Connection refused by \[127\.0\.0\.1\]:\d+ \(no SSH server on that port\?\)/,
      maxMs: 10_000,
    },
    {
      what: 'port open, no SSH banner',
      host: '127.0.0.1',
      port: silent,
      error: /Timed out connecting to root@\[127\.0\.0\.1\]:\d+ after 20 s/,
      maxMs: 35_000,
    },
    // A host that never answers: SYNs to a loopback address dropped by an iptables rule (a real black
    // hole without sending anything off this machine).
    {
      what: `black-holed host ${BLACK_HOLE}:22 (iptables DROP)`,
      host: BLACK_HOLE,
      port: 22,
      error: new RegExp(`Timed out connecting to root@${BLACK_HOLE.replace(/[.]/g, '\\.')} after 20 s`),
      maxMs: 35_000,
    },
    {
      what: 'unknown host name',
      host: 'no-such-host.invalid',
      port: 22,
      error: /Cannot resolve host "no-such-host\.invalid"/,
      maxMs: 15_000,
    },
  ];
  const rule = await run('iptables', ['-w', ...DROP_RULE('-I')]);
  assert.equal(rule.code, 0, `iptables: ${rule.stderr}`);
  const results = await Promise.all(
    cases.map((c) => {
      const token = c.port === 22 ? c.host : `[${c.host}]:${c.port}`;
      const inputs = common({
        command: 'rollback',
        stacks: `${SERVE}=stacks/serve.yml`,
        host: c.host,
        port: String(c.port),
        'known-hosts': `${token} ${hostKey}`,
      });
      return act(`unreachable: ${c.what}`, inputs, dirs['1.0.0'], 60_000);
    }),
  ).finally(() => run('iptables', ['-w', ...DROP_RULE('-D')]));
  cases.forEach((c, i) => {
    const r = results[i];
    assert.notEqual(r.code, 0, c.what);
    assert.match(r.errors.join('\n'), c.error, `${c.what}: ${r.errors.join('\n')}`);
    assert.ok(r.durationMs < c.maxMs, `${c.what}: took ${r.durationMs} ms`);
    figure({ n: '5', scenario: c.what, happened: `"${r.errors[0].slice(0, 110)}"`, time: secs(r.durationMs) });
  });
});

// ------------------------------------------------------------------ 6. injection

test(
  '6. injection in every input that reaches the host: rejected or passed safely; no canary',
  { timeout: 240_000 },
  async () => {
    const C = CANARY;
    // `;`, `$()`, backticks, quotes with spaces, a newline and `../`.
    const payloads = (tag: string) => [
      `1;touch ${C}-${tag}1`,
      `$(touch ${C}-${tag}2)`,
      `\`touch ${C}-${tag}3\``,
      `it's "q" a b`,
      `../x\ntouch ${C}-${tag}4`,
    ];
    // Every variable of inj.yml is set: an input that passed validation would reach the host.
    const okEnv = [`BASE_IMAGE=${BASE()}`, ...[1, 2, 3, 4, 5].map((i) => `NOTE${i}=x`)].join('\n');
    const cases: { what: string; inputs?: Record<string, string>; version?: string; error: RegExp }[] = [];
    for (const p of payloads('s'))
      cases.push({
        what: `stack name ${JSON.stringify(p)}`,
        inputs: { stacks: `${p}=stacks/inj.yml` },
        error: /Input `stacks` line \d/,
      });
    cases.push({
      what: 'compose file ../../etc/passwd',
      inputs: { stacks: `${INJ}=../../etc/passwd` },
      error: /must be a path inside working-directory/,
    });
    for (const p of payloads('r'))
      cases.push({ what: `release ${JSON.stringify(p)}`, inputs: { release: p }, error: /Input `release`/ });
    // A leading "-" would reach mkdir, stat and rm on the host as an option.
    for (const p of [...payloads('d'), '-rf', '--help'])
      cases.push({ what: `remote-dir ${JSON.stringify(p)}`, inputs: { 'remote-dir': p }, error: /Input `remote-dir`/ });
    for (const p of payloads('v'))
      cases.push({
        what: `VERSION ${JSON.stringify(p)}`,
        version: p,
        error: /service\/web\/VERSION: .*not a valid image tag/s,
      });
    cases.push({ what: 'user', inputs: { user: `root;touch ${C}-u0` }, error: /Input `user`/ });
    cases.push({ what: 'host', inputs: { host: `127.0.0.1;touch ${C}-h0` }, error: /Input `host`/ });
    // Inputs that reach the host's command lines or the stack file as parts of names.
    for (const p of payloads('g'))
      cases.push({ what: `registry ${JSON.stringify(p)}`, inputs: { registry: p }, error: /Input `registry`/ });
    for (const p of payloads('i'))
      cases.push({
        what: `image-prefix ${JSON.stringify(p)}`,
        inputs: { 'image-prefix': p },
        error: /Input `image-prefix`/,
      });
    for (const p of payloads('k'))
      cases.push({
        what: `generate-secrets ${JSON.stringify(p)}`,
        inputs: { 'generate-secrets': p },
        error: /Input `generate-secrets`/,
      });
    for (const p of payloads('c'))
      cases.push({
        what: `skip-checks ${JSON.stringify(p)}`,
        inputs: { 'skip-checks': p },
        error: /Input `skip-checks`/,
      });

    const unclear: string[] = [];
    // Six at a time: each fails within about a second.
    for (let i = 0; i < cases.length; i += 6) {
      await Promise.all(
        cases.slice(i, i + 6).map(async (c) => {
          let cwd = dirs['1.0.0'];
          if (c.version !== undefined) {
            cwd = workDir('1.0.0');
            fs.writeFileSync(path.join(cwd, 'service', 'web', 'VERSION'), c.version);
          }
          const inputs = common({
            command: 'deploy',
            stacks: `${INJ}=stacks/inj.yml`,
            release: 'inj',
            env: okEnv,
            'lock-timeout': '0',
            ...c.inputs,
          });
          const r = await act(`injection: ${c.what}`, inputs, cwd, 60_000);
          assert.notEqual(r.code, 0, `${c.what}: should be rejected`);
          const error = r.errors.join(' | ');
          if (!c.error.test(error) || /::group::Connect to/.test(r.log))
            unclear.push(`${c.what}: ${/Connected/.test(r.log) ? '(reached the host) ' : ''}${error.slice(0, 300)}`);
        }),
      );
    }
    assert.deepEqual(await canaries(), [], 'an injected command ran');
    assert.deepEqual(unclear, [], 'not rejected before connecting, with a clear error naming the input');
    figure({
      n: '6',
      scenario:
        'injection: stack names, compose path, release, remote-dir (also `-rf`, `--help`), VERSION, user, host, registry, image-prefix, generate-secrets, skip-checks',
      happened: `${cases.length} of ${cases.length} rejected before connecting, each error naming the input or file; no canary`,
      time: '—',
    });

    // Passed safely: env values (into the stack file, then the container), a compose file name full of
    // shell syntax (a path on the host's command lines), a registry user name (the host's docker login).
    const notes = [
      `; touch ${C}-e1`,
      `$(touch ${C}-e2)`,
      `\`touch ${C}-e3\``,
      `it's "quoted" \\ back\\slash`,
      `../../etc/passwd \${HOME} $$ $HOME  two  spaces`,
    ];
    const env = [`BASE_IMAGE=${BASE()}`, ...notes.map((n, i) => `NOTE${i + 1}=${n}`)].join('\n');
    const t0 = Date.now();
    const d = await act(
      'injection: deploy',
      common({ command: 'deploy', stacks: `${INJ}=${NASTY_COMPOSE}`, release: 'inj-1', env, stability: '1' }),
      dirs['1.0.0'],
    );
    assert.equal(d.code, 0, tail(d));
    const envs = JSON.parse(
      await dockerOk(['service', 'inspect', `${INJ}_app`, '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}']),
    ) as string[];
    notes.forEach((n, i) => assert.ok(envs.includes(`NOTE${i + 1}=${n}`), `NOTE${i + 1}: ${JSON.stringify(envs)}`));
    const rel = ledger(INJ).slice(-1)[0] as LedgerRec & { dir: string };
    assert.ok(
      fs.existsSync(path.join(hostHome, rel.dir, NASTY_COMPOSE)),
      'the compose file is not in the release folder under its own name',
    );

    // A double quote in a compose file name: docker reads --compose-file as CSV, so it is refused up front.
    const q = await act(
      'injection: compose file with a double quote',
      common({ command: 'deploy', stacks: `${INJ}=${QUOTED_COMPOSE}`, release: 'inj-q', env, stability: '1' }),
      dirs['1.0.0'],
    );
    assert.notEqual(q.code, 0);
    assert.match(
      q.errors.join('\n'),
      /Input `stacks`: compose file "stacks\/inj "q\$\(touch .* contains a double quote/s,
    );
    assert.doesNotMatch(q.log, /::group::(Build|Connect)/, 'the refused input got past input validation');
    assert.ok(!fs.existsSync(lockPath(INJ)), 'the lock is still held');
    const running = (await svcState(`${INJ}_app`)).image;

    const before = ledger(INJ).length;
    const nasty = [`u';touch ${C}-n1;'`, `$(touch ${C}-n2)`, `\`touch ${C}-n3\``, `a "b" c`, '../x'];
    const rb = await Promise.all(
      [...payloads('b'), 'previous'].map((p, i) => {
        const inputs = common({
          command: 'rollback',
          stacks: `${INJ}=stacks/inj.yml`,
          'rollback-to': p,
          'registry-username': nasty[i % nasty.length],
          'registry-password': PASSWORD,
        });
        return act(`injection: rollback-to ${JSON.stringify(p)}`, inputs, dirs['1.0.0'], 60_000);
      }),
    );
    for (const r of rb) {
      assert.notEqual(r.code, 0);
      assert.match(
        r.errors.join('\n'),
        /has no successful release .* on record|has no release before inj-1|could not log in/s,
        r.errors.join('\n'),
      );
    }
    const loginRefused = rb.filter((r) => /could not log in/.test(r.errors.join('\n'))).length;
    assert.deepEqual(await canaries(), [], 'an injected command ran');
    assert.equal(ledger(INJ).length, before, 'a refused rollback changed the ledger');
    assert.equal((await svcState(`${INJ}_app`)).image, running);
    figure({
      n: '6',
      scenario: 'injection passed safely: env values, compose file names, registry-username, rollback-to',
      happened: `deployed; the 5 env values reach the container byte for byte; the compose file keeps its name on the host; a \`"\` in a compose file name is refused as an input error before connecting (docker reads -c as CSV); ${rb.length} rollback-to × registry-username payloads: clear error (${loginRefused} refused by docker login), nothing changed; no canary`,
      time: secs(Date.now() - t0),
    });
  },
);

// ------------------------------------------------------------------ 8. known_hosts

const keyHangs: string[] = [];

test('8. known_hosts and key edge cases: right verdict, clear message', { timeout: 120_000 }, async () => {
  const right = own.knownHostsLine();
  const token = right.split(' ')[0];
  const wrongKey = `${token} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`;
  const otherHost = `other.example.com ${right.split(' ').slice(1).join(' ')}`;
  const hash = async (lines: string[]) => {
    const d = tempDir('rel-kh-');
    tempDirs.push(d);
    const f = path.join(d, 'known_hosts');
    fs.writeFileSync(f, lines.join('\n') + '\n');
    const r = await run('ssh-keygen', ['-H', '-f', f]);
    assert.equal(r.code, 0, r.stderr);
    return fs.readFileSync(f, 'utf8');
  };
  const hashed = await hash([otherHost, right]);
  assert.match(hashed, /^\|1\|/m);
  const hashedOtherPort = await hash([right.replace(token, '[127.0.0.1]:2222')]);
  const CONNECTED = /No deploy history for stack/;
  const cases: { what: string; kh: string; key?: string; passphrase?: string; error: RegExp; connects: boolean }[] = [
    {
      what: 'several entries, one right',
      kh: [wrongKey, otherHost, right].join('\n'),
      error: CONNECTED,
      connects: true,
    },
    { what: 'hashed entries (ssh-keygen -H)', kh: hashed, error: CONNECTED, connects: true },
    {
      what: 'hashed entry for another port only',
      kh: hashedOtherPort,
      error: /Input `known-hosts` has no entry for \[127\.0\.0\.1\]:\d+/,
      connects: false,
    },
    {
      what: 'several entries, none right',
      kh: [wrongKey, otherHost].join('\n'),
      error:
        /Host key verification failed for root@\[127\.0\.0\.1\]:\d+: the server presented SHA256:\S+ which is not pinned/,
      connects: false,
    },
    {
      what: 'the right key marked @revoked',
      kh: [`@revoked ${right}`, right].join('\n'),
      error: /Host key verification failed/,
      connects: false,
    },
    {
      what: 'key with a passphrase, none given',
      kh: right,
      key: passKey.content,
      error: /Cannot use `ssh-key` .*Give `ssh-passphrase`/,
      connects: false,
    },
    {
      what: 'key with a passphrase, wrong one given',
      kh: right,
      key: passKey.content,
      passphrase: 'not it',
      error: /Cannot use `ssh-key`.*passphrase|cannot decrypt|Bad passphrase/i,
      connects: false,
    },
    {
      what: 'key with a passphrase, right one given',
      kh: right,
      key: passKey.content,
      passphrase: PASSPHRASE,
      error: CONNECTED,
      connects: true,
    },
    {
      what: 'a key the host does not know',
      kh: right,
      key: strangerKey,
      error: /SSH authentication failed for root@\[127\.0\.0\.1\]:\d+: the server refused the key/,
      connects: false,
    },
  ];
  const rule = await run('iptables', ['-w', ...DROP_RULE('-I')]);
  assert.equal(rule.code, 0, `iptables: ${rule.stderr}`);
  const results = await Promise.all(
    cases.map((c) => {
      const inputs = common({
        ...viaOwn(),
        command: 'rollback',
        stacks: `rel-kh-none=stacks/serve.yml`,
        'known-hosts': c.kh,
        ...(c.key ? { 'ssh-key': c.key } : {}),
        ...(c.passphrase ? { 'ssh-passphrase': c.passphrase } : {}),
      });
      return actBounded(`known_hosts: ${c.what}`, inputs, dirs['1.0.0']);
    }),
  );
  cases.forEach((c, i) => {
    const { run: r, hung } = results[i];
    if (hung) keyHangs.push(c.what);
    assert.notEqual(r.code, 0);
    assert.match(r.errors.join('\n'), c.error, `${c.what}: ${r.errors.join('\n')}`);
    assert.equal(/Connected; host key matches/.test(r.log), c.connects, `${c.what}: connected?`);
    const verdict = c.connects
      ? 'connected (then "No deploy history", as expected)'
      : `refused: "${r.errors[0].slice(0, 120)}"`;
    figure({
      n: '8',
      scenario: `known_hosts/key: ${c.what}`,
      happened: `${verdict}${hung ? '; **the main step did not exit after its error (killed after 10 s)**' : ''}`,
      time: secs(r.durationMs),
    });
  });
  // A key ssh2 cannot use once left the TCP socket open: the step printed its error and never exited.
  assert.deepEqual(keyHangs, [], 'these runs printed their error and then hung');
});

// ------------------------------------------------------------------ 9. megabytes of logs

test(
  '9. a failing task that prints megabytes: a bounded tail in the job log, sane memory',
  { timeout: 180_000 },
  async () => {
    const r = await act(
      'noisy logs',
      common({ command: 'deploy', stacks: `${LOGS}=stacks/logs.yml`, release: 'noisy', stability: '1', timeout: '90' }),
      dirs['1.0.0'],
    );
    assert.notEqual(r.code, 0);
    // A new service of a failed release is removed: nothing to roll back, and nothing left crash-looping.
    assert.equal(r.outputs.result, 'rolled-back', tail(r));
    assert.match(r.log, new RegExp(`Removed the service\\(s\\) this release created: ${LOGS}_noisy`));
    assert.match(r.log, new RegExp(NOISY_MARKER), 'the tail shows the last line the task printed');
    // What one task prints: the same command in a container of the same image (the service's are gone).
    const printed = await docker(['run', '--rm', lab.baseImage, 'sh', '-c', NOISY], { timeoutMs: 60_000 });
    const taskBytes = printed.stdout.length + printed.stderr.length;
    assert.ok(taskBytes > 2_000_000, `a task printed only ${taskBytes} bytes`);
    const jobBytes = Buffer.byteLength(r.log + r.postLog);
    assert.ok(jobBytes < 64_000, `the job log is ${jobBytes} bytes`);
    assert.ok(Buffer.byteLength(r.summary) < 16_000, `the summary is ${Buffer.byteLength(r.summary)} bytes`);
    assert.ok(r.peakRssKb > 0 && r.peakRssKb < 200_000, `peak RSS ${r.peakRssKb} kB`);
    figure({
      n: '9',
      scenario: 'a crash-looping new service printing ~2 MB per task (1 MB of lines, then one 1 MB line)',
      happened: `rolled-back (3 failed tasks; the new service removed); each task printed ${(taskBytes / 1e6).toFixed(1)} MB, job log ${(jobBytes / 1000).toFixed(1)} kB with the last lines, summary ${(Buffer.byteLength(r.summary) / 1000).toFixed(1)} kB; action peak RSS ${Math.round(r.peakRssKb / 1024)} MB`,
      time: secs(r.durationMs),
    });
    await removeStack(LOGS, { timeoutMs: 60_000 });
  },
);

// ------------------------------------------------------------------ 12. deploy folder full or read-only

test(
  "12. the host's deploy folder full, then read-only: a clear error, the ledger intact, nothing deployed",
  { timeout: 180_000 },
  async () => {
    const small = path.join(hostHome, SMALL_DIR);
    fs.mkdirSync(small, { recursive: true });
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    assert.equal(mounted.code, 0, `mount: ${mounted.stderr}`);
    const inputs = (release: string) =>
      common({
        command: 'deploy',
        stacks: `${FULL}=stacks/lock.yml`,
        release,
        env: `BASE_IMAGE=${BASE()}\nSTAMP=${release}`,
        stability: '0',
        'remote-dir': SMALL_DIR,
      });
    const stamp = async () =>
      (
        await dockerOk([
          'service',
          'inspect',
          `${FULL}_idle`,
          '--format',
          '{{json .Spec.TaskTemplate.ContainerSpec.Env}}',
        ])
      ).trim();
    const ledgerFile = path.join(small, 'stacks', FULL, 'ledger.json');
    try {
      const first = await act('small folder: first deploy', inputs('full-1'), dirs['1.0.0']);
      assert.equal(first.code, 0, tail(first));
      const ledgerBefore = fs.readFileSync(ledgerFile, 'utf8');
      const running = await stamp();
      assert.match(running, /STAMP=full-1/);

      // Full: fill what is left (dd stops at ENOSPC and says so).
      await run('sh', [
        '-c',
        `dd if=/dev/zero of=${path.join(small, 'filler')} bs=4k 2>/dev/null; df -k ${small} | tail -1`,
      ]).catch(() => undefined);
      const full = await act('small folder: full', inputs('full-2'), dirs['1.0.0']);
      assert.notEqual(full.code, 0);
      const fullError = full.errors.join('\n');
      assert.match(fullError, /No space left on device|cannot write its holder file: 0 kB free on /, fullError);
      assert.ok(fullError.includes(SMALL_DIR), `the error does not name the folder: ${fullError}`);
      assert.equal(fs.readFileSync(ledgerFile, 'utf8'), ledgerBefore, 'the ledger changed');
      assert.equal(await stamp(), running, 'something was deployed');
      assert.ok(!fs.existsSync(path.join(small, 'stacks', FULL, 'lock')), 'the lock is still held');

      // Read-only: the same folder, filler gone, remounted ro.
      fs.rmSync(path.join(small, 'filler'));
      const remounted = await run('mount', ['-o', 'remount,ro', small]);
      assert.equal(remounted.code, 0, `remount: ${remounted.stderr}`);
      const ro = await act('small folder: read-only', inputs('full-3'), dirs['1.0.0']);
      assert.notEqual(ro.code, 0);
      const roError = ro.errors.join('\n');
      assert.match(roError, /Read-only file system/, roError);
      assert.equal(fs.readFileSync(ledgerFile, 'utf8'), ledgerBefore, 'the ledger changed');
      assert.equal(await stamp(), running, 'something was deployed');
      figure({
        n: '12',
        scenario: 'deploy folder full (2 MB tmpfs filled up)',
        happened: `failed before docker stack deploy: "${fullError.replace(/\s*\n\s*/g, ' / ').slice(0, 260)}"; ledger byte for byte the same, the service still on full-1, lock released`,
        time: secs(full.durationMs),
      });
      figure({
        n: '12',
        scenario: 'deploy folder read-only (the same tmpfs remounted ro)',
        happened: `failed before docker stack deploy: "${roError.replace(/\s*\n\s*/g, ' / ').slice(0, 260)}"; ledger the same, the service still on full-1`,
        time: secs(ro.durationMs),
      });
    } finally {
      await run('umount', [small]).catch(() => undefined);
    }
    await removeStack(FULL, { timeoutMs: 60_000 });
  },
);

secretsScenario(20);
