// Reliability and security under faults, attacks and bad input (issue 8), on the real lab, through
// dist/index.js as the runner runs it. Sequential; every wait is bounded and waits on real state.
// The lab is shared: this file only touches its own stacks (rel-*), networks (declared in its own
// stack files), image prefix, remote-dir, and its own sshd and registry instances on free ports.
// Figures of the last run: docs/reliability.md.
//
//   node --import tsx --test --test-reporter=spec __tests__/lab/reliability.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  LabEnv,
  REPO_ROOT,
  copyExample,
  docker,
  labInputs,
  dockerOk,
  removeStack,
  requireLab,
  run,
  setServiceMode,
  setServiceVersion,
  tempDir,
  uniqueName,
  waitFor,
} from '../helpers/lab';
import { onHost } from './common';
import {
  FinishedRun,
  LiveAction,
  OwnRegistry,
  OwnSshd,
  PROBE_SCRIPT,
  ProbeWindow,
  freePort,
  masked,
  probeWindow,
  readProbe,
  runLive,
  startAction,
} from './reliability-helpers';

let lab: LabEnv;
let hostHome = '';
let own: OwnSshd;
const PREFIX = uniqueName('rel');
const REMOTE_DIR = `.deploy-action-${uniqueName('rel')}`;
const REG_USER = uniqueName('rel-deployer');
const PASSWORD = `pw-${uniqueName('rel')}-never-printed`;
const PASSPHRASE = `pass phrase ${uniqueName('rel')}`;
const CANARY = `/tmp/pwned-${uniqueName('rel')}`;

const SERVE = uniqueName('rel-serve');
const INJ = uniqueName('rel-inj');
const LOGS = uniqueName('rel-logs');
const LOCK = uniqueName('rel-lock');
const SCALE = uniqueName('rel-scale');
const REGRESS = uniqueName('rel-regress');
const FULL = uniqueName('rel-full');
const MY_STACKS = [SERVE, INJ, LOGS, LOCK, SCALE, REGRESS, FULL];
// Scenario 12's remote-dir: a small tmpfs mounted on the host, filled up, then made read-only.
const SMALL_DIR = `.deploy-action-${uniqueName('rel-small')}`;

const tempDirs: string[] = [];
const dirs: Record<string, string> = {};
const passKey = { file: '', content: '' };
let strangerKey = '';
let registry: OwnRegistry | undefined;
let silentServer: net.Server | undefined;

// ------------------------------------------------------------------ figures and collected runs

interface Figure {
  n: string;
  scenario: string;
  happened: string;
  requests?: string;
  time: string;
}
const figures: Figure[] = [];
function figure(f: Figure) {
  figures.push(f);
}
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const failedReq = (w: ProbeWindow) => `${w.failed} / ${w.requests}`;

/** Every run of the file with the secrets it was given, for scenario 7. */
const runs: { label: string; run: FinishedRun; secrets: string[] }[] = [];

// ------------------------------------------------------------------ stack files

const BASE = () => `${lab.registry}/lab/base:1`;
const NET = `networks:\n  net:\n    driver: overlay\n    driver_opts:\n      com.docker.network.driver.mtu: "1450"\n`;
// Stops at once on TERM (sh as PID 1 would otherwise wait for the grace period).
const IDLE = `trap 'exit 0' TERM INT; while :; do sleep 1 & wait $$!; done`;

/** The tail the small services of this suite share: quick stop, the stack's network, one dnsrr task. */
const ONE_TASK = (restart = false) => `    stop_grace_period: 1s
    networks: [net]
    deploy:
      replicas: 1
      endpoint_mode: dnsrr
      update_config: {order: start-first, failure_action: rollback, monitor: 1s}
${restart ? '      restart_policy: {condition: any, delay: 1s}\n' : ''}`;

const SERVE_YML = `version: "3.8"
services:
  web:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/web:\${WEB_VERSION}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 2s
    stop_grace_period: 2s
    networks: [net]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: {parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s, delay: 0s}
      rollback_config: {parallelism: 0, order: start-first}
      restart_policy: {condition: any, delay: 1s}
  # Counts requests to web from inside the stack's network (no routing mesh on the lab).
  probe:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(PROBE_SCRIPT)}]
${ONE_TASK()}${NET}`;

const INJ_YML = `version: "3.8"
services:
  app:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(IDLE)}]
    environment:
      NOTE1: \${NOTE1}
      NOTE2: \${NOTE2}
      NOTE3: \${NOTE3}
      NOTE4: \${NOTE4}
      NOTE5: \${NOTE5}
${ONE_TASK()}${NET}`;

const NOISY_MARKER = `NOISY-END-${uniqueName('m')}`;
// About 1 MB of base64 lines, then a single line of about 1 MB, then the marker, then exit 1.
const NOISY = `head -c 750000 /dev/urandom | base64; yes xxxxxxxxxxxxxxxx | head -c 1100000 | tr -d '\\n'; echo; echo ${NOISY_MARKER}; exit 1`;
const LOGS_YML = `version: "3.8"
services:
  noisy:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(NOISY)}]
${ONE_TASK(true)}${NET}`;

const LOCK_YML = `version: "3.8"
services:
  idle:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(IDLE)}]
    environment:
      STAMP: \${STAMP}
${ONE_TASK()}${NET}`;

const SCALE_N = 30;
const SCALE_HEALTHY = 5;
function scaleYml(): string {
  // Each healthcheck is a docker exec: with 60 tasks checked even every 10 s, 2 loaded cores let checks
  // time out and tasks stay "starting" past any timeout (the machine measured, not the gate). A few
  // services keep one, so the gate still sees tasks move through "starting".
  const health = (i: number) =>
    i <= SCALE_HEALTHY
      ? `    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 10s
      timeout: 10s
      retries: 3
      start_period: 1s
`
      : '';
  const svc = (i: number) => `  s${String(i).padStart(2, '0')}:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(`touch /tmp/ready; ${IDLE}`)}]
${health(i)}    stop_grace_period: 1s
    networks: [net]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: {parallelism: 2, order: start-first, failure_action: rollback, monitor: 1s}
      restart_policy: {condition: any, delay: 1s}
`;
  return `version: "3.8"\nservices:\n${Array.from({ length: SCALE_N }, (_, i) => svc(i + 1)).join('')}${NET}`;
}

// Two new services: `fast` is healthy at once and exits 8 s later (then again, as Swarm restarts it);
// `slow` gets healthy after 14 s. The layer's gate is still open when `fast` fails.
const REGRESS_YML = `version: "3.8"
services:
  fast:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", "touch /tmp/ready; sleep 8 & wait $$!; echo 'fatal: fast exits after 8 s' >&2; exit 4"]
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/ready"], interval: 1s, timeout: 5s, retries: 3, start_period: 1s}
${ONE_TASK(true)}  slow:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(`sleep 14 & wait $$!; touch /tmp/ready; ${IDLE}`)}]
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/ready"], interval: 1s, timeout: 5s, retries: 3, start_period: 30s}
${ONE_TASK()}${NET}`;

// The nasty compose file names of scenario 6: they reach the host's shell as paths. A double quote
// gets its own file: docker stack deploy parses --compose-file values as CSV.
const NASTY_COMPOSE = `stacks/inj a;b$(touch ${CANARY}-f1)\`touch ${CANARY}-f2\`'q.yml`;
const QUOTED_COMPOSE = `stacks/inj "q$(touch ${CANARY}-f3)".yml`;

/** A copy of the example with web at `version` (`mode`), and every stack file of this suite. */
function workDir(version: string, mode: 'ok' | 'crash' = 'ok'): string {
  const dir = copyExample();
  tempDirs.push(dir);
  setServiceVersion(dir, 'web', version);
  setServiceMode(dir, 'web', mode);
  const files: Record<string, string> = {
    'stacks/serve.yml': SERVE_YML,
    'stacks/inj.yml': INJ_YML,
    'stacks/logs.yml': LOGS_YML,
    'stacks/lock.yml': LOCK_YML,
    'stacks/scale.yml': scaleYml(),
    'stacks/regress.yml': REGRESS_YML,
    [NASTY_COMPOSE]: INJ_YML,
    [QUOTED_COMPOSE]: INJ_YML,
  };
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

// ------------------------------------------------------------------ inputs and runs

function common(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...labInputs(lab, PREFIX, REMOTE_DIR),
    services: 'service/web',
    env: `BASE_IMAGE=${BASE()}`,
    stability: '2',
    timeout: '120',
    'lock-timeout': '120',
    ...extra,
  };
}

/** The serving stack, with registry credentials (the host logs in, deploys --with-registry-auth, logs out). */
function serve(extra: Record<string, string> = {}): Record<string, string> {
  return common({
    stacks: `${SERVE}=stacks/serve.yml`,
    'registry-username': REG_USER,
    'registry-password': PASSWORD,
    ...extra,
  });
}

/** Through the suite's own sshd instead of the lab's. */
function viaOwn(): Record<string, string> {
  return { port: String(own.port), 'known-hosts': own.knownHostsLine() };
}

function secretsOf(inputs: Record<string, string>): string[] {
  return [inputs['ssh-key'], inputs['registry-password'], inputs['ssh-passphrase']].filter((s): s is string => !!s);
}

function keep(label: string, inputs: Record<string, string>, r: FinishedRun): FinishedRun {
  runs.push({ label, run: r, secrets: secretsOf(inputs) });
  // REL_DEBUG=1: each run's lines with their time since the start (where the seconds go).
  if (process.env.REL_DEBUG) {
    const t0 = r.lines[0]?.t ?? 0;
    console.log(
      `--- ${label} (exit ${r.code}, ${r.durationMs} ms)\n${r.lines
        .filter((l) => !l.text.startsWith('::add-mask'))
        .map((l) => `${((l.t - t0) / 1000).toFixed(2).padStart(6)} ${l.text.slice(0, 200)}`)
        .join('\n')}`,
    );
  }
  return r;
}

async function act(
  label: string,
  inputs: Record<string, string>,
  cwd: string,
  timeoutMs = 240_000,
): Promise<FinishedRun> {
  return keep(label, inputs, await runLive({ inputs, cwd }, timeoutMs));
}

/**
 * A run that is expected to fail: once it printed its `::error::`, the main step must end. It gets
 * `graceMs` to do so; a step still running then is killed and reported as hung (the runner would
 * wait for the job's timeout).
 */
async function actBounded(
  label: string,
  inputs: Record<string, string>,
  cwd: string,
  graceMs = 10_000,
): Promise<{ run: FinishedRun; hung: boolean }> {
  const live = startAction({ inputs, cwd });
  const said = await live.waitLine(/^::error::/, 90_000).catch(() => null);
  const hung = await live.wait(said ? graceMs : 90_000).then(
    () => false,
    () => true,
  );
  return { run: keep(label, inputs, await live.finish(10_000)), hung };
}

/** A main step killed by a signal, and its post step: their logs go to scenario 7 too. */
function keepCancelled(
  label: string,
  live: LiveAction,
  post: { code: number | null; log: string; summary: string },
): void {
  runs.push({
    label,
    secrets: secretsOf(serve()),
    run: {
      code: null,
      signal: 'SIGTERM',
      log: live.log,
      maskedLog: masked(live.log),
      lines: live.lines,
      outputs: {},
      state: {},
      summary: '',
      errors: [],
      warnings: [],
      commands: [],
      durationMs: Date.now() - live.started,
      peakRssKb: live.peakRssKb,
      postCode: post.code,
      postLog: post.log,
      postSummary: post.summary,
    },
  });
  live.cleanup();
}

const tail = (r: FinishedRun) => r.maskedLog.slice(-4000);

// ------------------------------------------------------------------ host and swarm state

const stackPath = (stack: string) => path.join(hostHome, REMOTE_DIR, 'stacks', stack);
const lockPath = (stack: string) => path.join(stackPath(stack), 'lock');

interface LedgerRec {
  release: string;
  versions: Record<string, string>;
  kind: string;
  result: string;
  time: string;
  runUrl: string;
}
function ledger(stack: string): LedgerRec[] {
  const f = path.join(stackPath(stack), 'ledger.json');
  if (!fs.existsSync(f)) return [];
  return (JSON.parse(fs.readFileSync(f, 'utf8')) as { releases: LedgerRec[] }).releases;
}

interface SvcState {
  image: string;
  update: string;
  replicas: number;
  tasks: { state: string; image: string }[];
}
async function svcState(name: string): Promise<SvcState> {
  const [image, update, replicas] = (
    await dockerOk([
      'service',
      'inspect',
      name,
      '--format',
      '{{.Spec.TaskTemplate.ContainerSpec.Image}}|{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}|{{.Spec.Mode.Replicated.Replicas}}',
    ])
  )
    .trim()
    .split('|');
  const ids = (await dockerOk(['service', 'ps', '-q', '--no-trunc', '--filter', 'desired-state=running', name]))
    .trim()
    .split('\n')
    .filter(Boolean);
  const lines = ids.length
    ? (
        await dockerOk([
          'inspect',
          '--type',
          'task',
          '--format',
          '{{.Status.State}} {{.Spec.ContainerSpec.Image}}',
          ...ids,
        ])
      )
        .trim()
        .split('\n')
    : [];
  return {
    image,
    update,
    replicas: Number(replicas),
    tasks: lines.map((l) => ({ state: l.split(' ')[0], image: l.split(' ')[1] })),
  };
}

/** Waits until Swarm is done with the service: no update in flight, every replica running the spec's image. */
async function settled(name: string, timeoutMs = 90_000): Promise<SvcState> {
  return waitFor(
    async () => {
      const s = await svcState(name);
      const busy = ['updating', 'rollback_started'].includes(s.update);
      return !busy &&
        s.tasks.length === s.replicas &&
        s.tasks.every((t) => t.state === 'running' && t.image === s.image)
        ? s
        : null;
    },
    {
      timeoutMs,
      intervalMs: 300,
      what: `${name} to settle (no update in flight, every replica running the spec image)`,
    },
  );
}

const versionOf = (image: string) => /\/web:([^@]+)/.exec(image)?.[1] ?? image;
const other = (v: string) => (v === '1.0.0' ? '1.1.0' : '1.0.0');
async function webVersion(): Promise<string> {
  return versionOf((await settled(`${SERVE}_web`)).image);
}

/**
 * Canary files: none may exist, locally or on the host (the same machine here, asked both ways).
 * Payloads touch `<CANARY>-<letter><digit>`; the nasty compose file names of scenario 6 legitimately
 * create folders whose names start with the canary's, inside the release folder: exact names only.
 */
async function canaries(): Promise<string[]> {
  const base = path.basename(CANARY);
  const exact = new RegExp(`^${base}-[a-z][0-9]$`);
  const local = [
    ...fs
      .readdirSync('/tmp')
      .filter((f) => exact.test(f))
      .map((f) => `/tmp/${f}`),
    ...fs.readdirSync(hostHome).filter((f) => exact.test(f)),
  ];
  const host = await onHost(
    lab,
    `ls -d /tmp/${base}-?? ~/${base}-?? 2>/dev/null; find ${REMOTE_DIR} -name '${base}-[a-z][0-9]' 2>/dev/null; true`,
  );
  return [...local, ...host.stdout.split('\n').filter(Boolean)];
}

/** Whether the host holds this suite's registry credentials: ~/.docker, or a run's own config folder. */
function hostHasCredentials(): boolean {
  const runs = path.join(hostHome, REMOTE_DIR, 'runs');
  const files = [
    path.join(hostHome, '.docker', 'config.json'),
    ...(fs.existsSync(runs) ? fs.readdirSync(runs).map((d) => path.join(runs, d, 'config.json')) : []),
  ];
  return files.some((f) => {
    if (!fs.existsSync(f)) return false;
    const text = fs.readFileSync(f, 'utf8');
    return text.includes(Buffer.from(`${REG_USER}:${PASSWORD}`).toString('base64')) || text.includes(PASSWORD);
  });
}

/** The run config folders left on the host (each run's registry login lives in one). */
const runConfigsLeft = () => {
  const runs = path.join(hostHome, REMOTE_DIR, 'runs');
  return fs.existsSync(runs) ? fs.readdirSync(runs) : [];
};

// ------------------------------------------------------------------ set-up and clean-up

async function build(label: string, dir: string, reg: string, creds = true, timeoutMs = 120_000): Promise<FinishedRun> {
  const inputs = common({
    command: 'build',
    registry: reg,
    ...(creds ? { 'registry-username': REG_USER, 'registry-password': PASSWORD } : {}),
  });
  return act(label, inputs, dir, timeoutMs);
}

before(async () => {
  lab = await requireLab();
  hostHome = (await onHost(lab, 'printf %s "$HOME"')).stdout.trim();
  assert.ok(hostHome.startsWith('/'), 'cannot read the host user home');
  const keys = tempDir('rel-keys-');
  tempDirs.push(keys);
  passKey.file = path.join(keys, 'pass_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-C', 'rel-pass', '-f', passKey.file]);
  passKey.content = fs.readFileSync(passKey.file, 'utf8');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'rel-stranger', '-f', path.join(keys, 'stranger')]);
  strangerKey = fs.readFileSync(path.join(keys, 'stranger'), 'utf8');
  own = new OwnSshd(lab, path.join(path.dirname(lab.sshKeyFile), 'ssh_host_ed25519_key'), [
    fs.readFileSync(`${lab.sshKeyFile}.pub`, 'utf8'),
    fs.readFileSync(`${passKey.file}.pub`, 'utf8'),
  ]);
  await own.start();
  for (const [v, mode] of [
    ['1.0.0', 'ok'],
    ['1.1.0', 'ok'],
    ['1.2.0', 'crash'],
    ['1.3.0', 'ok'],
    ['1.4.0', 'ok'],
  ] as const)
    dirs[v] = workDir(v, mode);
  const built = await Promise.all(['1.0.0', '1.1.0', '1.2.0'].map((v) => build(`build ${v}`, dirs[v], lab.registry)));
  for (const b of built) assert.equal(b.code, 0, tail(b));
});

after(async () => {
  await Promise.all(
    MY_STACKS.map((s) =>
      removeStack(s, { timeoutMs: 90_000 }).catch((e) => console.error(`cleanup ${s}: ${e.message}`)),
    ),
  );
  if (lab) await onHost(lab, `umount ${SMALL_DIR} 2>/dev/null; rm -rf ${SMALL_DIR}`);
  await own?.dispose();
  await registry?.dispose();
  silentServer?.close();
  if (lab) await onHost(lab, `rm -rf ${REMOTE_DIR}`);
  const imgs = (await docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout
    .split('\n')
    .filter((r) => r.includes(`/${PREFIX}/`) && !r.endsWith(':<none>'));
  if (imgs.length) await docker(['rmi', '--force', ...imgs]);
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  // The figures of this run, for docs/reliability.md.
  const rows = figures.map(
    (f) => `| ${f.n} | ${f.scenario} | ${f.happened.replace(/\|/g, '\\|')} | ${f.requests ?? '—'} | ${f.time} |`,
  );
  console.log(
    [
      '',
      '| # | scenario | what happened | requests failed | time |',
      '| --- | --- | --- | --- | --- |',
      ...rows,
      '',
    ].join('\n'),
  );
});

// ------------------------------------------------------------------ 1. serving while deploying

test(
  '1. serving while deploying: 2 replicas, start-first, a probe inside the network counts failed requests',
  { timeout: 300_000 },
  async () => {
    const first = await act('serve 1.0.0', serve({ command: 'deploy', release: '1.0.0' }), dirs['1.0.0']);
    assert.equal(first.code, 0, tail(first));
    await waitFor(async () => (await readProbe(`${SERVE}_probe`)).counts.some((c) => c.ok > 0), {
      timeoutMs: 30_000,
      what: 'the probe to get answers',
    });

    const phases: {
      what: string;
      label: string;
      inputs: Record<string, string>;
      dir: string;
      code: number;
      result: string;
      runs: string;
    }[] = [
      {
        what: 'healthy update 1.0.0 → 1.1.0',
        label: 'serve 1.1.0',
        inputs: { command: 'deploy', release: '1.1.0' },
        dir: dirs['1.1.0'],
        code: 0,
        result: 'deployed',
        runs: '1.1.0',
      },
      {
        what: 'failed update 1.2.0 (crash at start), rolled back by Swarm',
        label: 'serve 1.2.0',
        inputs: { command: 'deploy', release: '1.2.0' },
        dir: dirs['1.2.0'],
        code: 1,
        result: 'rolled-back',
        runs: '1.1.0',
      },
      {
        what: 'manual rollback (`rollback-to: previous`) 1.1.0 → 1.0.0',
        label: 'rollback previous',
        inputs: { command: 'rollback', 'rollback-to': 'previous' },
        dir: dirs['1.1.0'],
        code: 0,
        result: 'rolled-back',
        runs: '1.0.0',
      },
    ];
    const windows: ProbeWindow[] = [];
    for (const p of phases) {
      const from = Date.now();
      const r = await act(p.label, serve(p.inputs), p.dir);
      const to = Date.now();
      assert.equal(r.code, p.code, `${p.what}:\n${tail(r)}`);
      assert.equal(r.outputs.result, p.result, `${p.what}:\n${tail(r)}`);
      assert.equal(await webVersion(), p.runs, p.what);
      const w = await probeWindow(`${SERVE}_probe`, from, to);
      windows.push(w);
      assert.ok(w.requests > 30, `${p.what}: the probe made only ${w.requests} requests`);
      figure({
        n: '1',
        scenario: `serving: ${p.what}`,
        happened: `${r.outputs.result}; web runs ${p.runs}${w.failed ? `; failures: ${[...new Set(w.failures.map((f) => f.replace(/^\S+ /, '')))].join('; ')}` : ''}`,
        requests: failedReq(w),
        time: secs(r.durationMs),
      });
    }
    assert.match(runs.find((x) => x.label === 'serve 1.2.0')!.run.log, /fatal: refusing to start \(MODE=crash\)/);
    // The target of issue 8: not one failed request with 2 replicas and start-first.
    assert.deepEqual(
      windows.map((w) => w.failed),
      [0, 0, 0],
      windows.map((w) => w.failures.join('\n')).join('\n---\n'),
    );
  },
);

// ------------------------------------------------------------------ 2. SSH drops during the gate

test(
  '2. SSH connection dropped during the gate: reconnects, right verdict, lock released',
  { timeout: 300_000 },
  async () => {
    // a) the sessions of our own sshd are killed (the listener stays)
    let from = await webVersion();
    let to = other(from);
    let t0 = Date.now();
    let live = startAction({
      inputs: serve({ ...viaOwn(), command: 'deploy', release: `ssh-drop-${to}`, stability: '5' }),
      cwd: dirs[to],
    });
    await live.waitLine(/Gate: watching/, 90_000);
    const killed = own.killSessions();
    let r = keep('ssh drop', serve(), await live.finish());
    let w = await probeWindow(`${SERVE}_probe`, t0, Date.now());
    assert.ok(killed.length > 0, 'no sshd session process to kill');
    assert.equal(r.code, 0, tail(r));
    assert.equal(r.outputs.result, 'deployed', tail(r));
    assert.match(r.log, /SSH connection to root@\[127\.0\.0\.1\]:\d+ dropped .*reconnecting/);
    assert.equal(await webVersion(), to);
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held');
    assert.deepEqual(
      ledger(SERVE)
        .slice(-1)
        .map((x) => [x.release, x.result]),
      [[`ssh-drop-${to}`, 'deployed']],
    );
    figure({
      n: '2',
      scenario: 'SSH sessions killed (sshd children) at "Gate: watching"',
      happened: `reconnected (${(r.log.match(/reconnecting \(attempt/g) ?? []).length} attempt(s)), gate finished: ${r.outputs.result}, web runs ${to}; lock released`,
      requests: failedReq(w),
      time: secs(r.durationMs),
    });

    // b) our own sshd is stopped until the gate itself gave up on a poll (after the reconnect attempts of
    // that command), then started again: the next poll reconnects
    from = to;
    to = other(from);
    t0 = Date.now();
    live = startAction({
      inputs: serve({ ...viaOwn(), command: 'deploy', release: `ssh-restart-${to}`, stability: '5' }),
      cwd: dirs[to],
    });
    await live.waitLine(/Gate: watching/, 90_000);
    await own.stop();
    const down = Date.now();
    await live.waitLine(/Cannot read the Swarm state/, 30_000);
    await own.start();
    const outage = Date.now() - down;
    r = keep('ssh restart', serve(), await live.finish());
    w = await probeWindow(`${SERVE}_probe`, t0, Date.now());
    assert.equal(r.code, 0, tail(r));
    assert.equal(r.outputs.result, 'deployed', tail(r));
    assert.match(r.log, /Reconnect failed: Connection refused/);
    assert.match(r.log, /Cannot read the Swarm state \(1×\): Lost the SSH connection/);
    assert.equal(await webVersion(), to);
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held');
    assert.equal(ledger(SERVE).slice(-1)[0].release, `ssh-restart-${to}`);
    figure({
      n: '2',
      scenario: `sshd stopped at "Gate: watching", restarted after ${secs(outage)}`,
      happened: `${(r.log.match(/Reconnect failed/g) ?? []).length} failed reconnects, a poll lost ("Cannot read the Swarm state"), then reconnected; ${r.outputs.result}, web runs ${to}; lock released`,
      requests: failedReq(w),
      time: secs(r.durationMs),
    });
  },
);

// ------------------------------------------------------------------ 3. cancel

test(
  '3. cancel (SIGTERM) mid-deploy: the post step releases the lock, the stack is whole, the next deploy works',
  { timeout: 300_000 },
  async () => {
    // a) as soon as the lock is taken
    let from = await webVersion();
    let to = other(from);
    const a = startAction({ inputs: serve({ command: 'deploy', release: `cancel-lock-${to}` }), cwd: dirs[to] });
    await waitFor(() => fs.existsSync(lockPath(SERVE)), {
      timeoutMs: 60_000,
      intervalMs: 10,
      what: 'the deploy lock to be taken',
    });
    const t0 = Date.now();
    a.signal('SIGTERM');
    const endA = await a.wait(30_000);
    const postA = await a.post();
    keepCancelled('cancel at lock', a, postA);
    assert.equal(endA.signal, 'SIGTERM');
    assert.match(postA.log, /Released the deploy lock .*left by the main step/);
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held after the post step');
    let s = await settled(`${SERVE}_web`);
    assert.ok([from, to].includes(versionOf(s.image)), `web runs ${s.image}`);
    // Whether or not the main step got as far as the host's login, no credentials and no run config folder stay.
    const loggedIn = /Removed the run's Docker config folder/.test(postA.log);
    assert.equal(hostHasCredentials(), false, 'the registry credentials of the cancelled run are still on the host');
    assert.deepEqual(runConfigsLeft(), [], 'a run config folder is left on the host');
    figure({
      n: '3',
      scenario: 'SIGTERM once the lock is taken, then the post step',
      happened: `post: "Released the deploy lock"${loggedIn ? ', "Removed the run\'s Docker config folder"' : ' (killed before the host login)'}; no credentials left on the host; web runs ${versionOf(s.image)} (${versionOf(s.image) === from ? 'old' : 'new'}) on every replica`,
      time: `${secs(Date.now() - t0)} to a released lock`,
    });

    // b) in the middle of the gate: Swarm goes on with the update it was given
    from = versionOf(s.image);
    to = other(from);
    const b = startAction({ inputs: serve({ command: 'deploy', release: `cancel-gate-${to}` }), cwd: dirs[to] });
    await b.waitLine(/Gate: watching/, 90_000);
    b.signal('SIGTERM');
    const endB = await b.wait(30_000);
    const postB = await b.post();
    keepCancelled('cancel at gate', b, postB);
    assert.equal(endB.signal, 'SIGTERM');
    assert.match(postB.log, /Released the deploy lock/);
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held after the post step');
    s = await settled(`${SERVE}_web`);
    assert.ok([from, to].includes(versionOf(s.image)), `web runs ${s.image}`);
    // The ledger knows the interrupted release: its newest deployed-or-started record is what runs.
    const current = [...ledger(SERVE)].reverse().find((x) => x.result === 'deployed' || x.result === 'started');
    assert.equal(
      current?.release,
      `cancel-gate-${to}`,
      `ledger: ${ledger(SERVE)
        .map((x) => `${x.release}:${x.result}`)
        .join(', ')}`,
    );
    assert.equal(current?.result, 'started');
    assert.equal(current?.versions.web, versionOf(s.image), 'the ledger does not name the version that runs');
    figure({
      n: '3',
      scenario: 'SIGTERM at "Gate: watching", then the post step',
      happened: `lock released; Swarm finished the update alone: web runs ${versionOf(s.image)} on every replica; the ledger's newest record is ${current?.release} (${current?.result})`,
      time: '—',
    });

    // c) the next deploy works
    const next = other(versionOf(s.image));
    const c = await act('after cancel', serve({ command: 'deploy', release: `after-cancel-${next}` }), dirs[next]);
    assert.equal(c.code, 0, tail(c));
    assert.equal(c.outputs.result, 'deployed');
    assert.equal(await webVersion(), next);
    figure({
      n: '3',
      scenario: 'next deploy after the cancels',
      happened: `${c.outputs.result}, web runs ${next}`,
      time: secs(c.durationMs),
    });
  },
);

// ------------------------------------------------------------------ 4. registry down

test(
  '4. registry down: push fails after bounded retries naming the image; host pull fails and the old version keeps running',
  { timeout: 300_000 },
  async () => {
    registry = new OwnRegistry();
    await registry.start();
    const ok = await build('build 1.3.0 (own registry)', dirs['1.3.0'], registry.address);
    assert.equal(ok.code, 0, tail(ok));
    await registry.stop();
    const fingerprint = await svcState(`${SERVE}_web`);

    // a) push with the registry down
    const b = await build('build 1.4.0 (registry down)', dirs['1.4.0'], registry.address, false);
    const image = `${registry.address}/${PREFIX}/web:1.4.0`;
    assert.notEqual(b.code, 0);
    assert.equal(b.outputs.result, 'failed');
    assert.match(b.errors.join('\n'), new RegExp(`Could not push ${image.replace(/[.]/g, '\\.')} after 3 attempts`));
    assert.equal(b.warnings.filter((x) => x.includes(`docker push ${image} failed`)).length, 2, b.warnings.join('\n'));
    assert.ok(b.durationMs < 60_000, `took ${b.durationMs} ms`);
    assert.equal((await svcState(`${SERVE}_web`)).image, fingerprint.image, 'something was deployed');
    figure({
      n: '4',
      scenario: 'registry down while pushing (`command: build`)',
      happened: `failed after 3 attempts: "${b.errors[0].split('\n')[0].slice(0, 140)}"; nothing deployed`,
      time: secs(b.durationMs),
    });

    // b) the host pulls from the registry that is down. With credentials the host's login fails first,
    // before anything is deployed.
    const imgs = (await dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}}']))
      .split('\n')
      .filter((x) => x.startsWith(`${registry!.address}/`));
    if (imgs.length) await dockerOk(['rmi', '--force', ...imgs]);
    const loginInputs = serve({ command: 'deploy', release: 'pull-down-login', registry: registry.address });
    const la = startAction({ inputs: loginInputs, cwd: dirs['1.3.0'] });
    const said = await la.waitLine(/::error::The host could not log in/, 60_000);
    // The main step ends right after its error (it once hung on the SSH connection left open).
    const loginExitMs = await la.wait(10_000).then(
      (e) => e.durationMs - (said.t - la.started),
      () => null,
    );
    const login = keep('deploy, registry down, with login', loginInputs, await la.finish(10_000));
    assert.match(
      login.errors.join('\n'),
      new RegExp(`The host could not log in to ${registry.address.replace(/[.]/g, '\\.')}`),
    );
    assert.equal((await svcState(`${SERVE}_web`)).image, fingerprint.image, 'something was deployed');
    figure({
      n: '4',
      scenario: 'registry down, deploy with registry credentials',
      happened: `"${login.errors[0]
        .split('\n')[0]
        .replace(/: Error response.*/, '')
        .slice(
          0,
          100,
        )}", nothing deployed; ${loginExitMs === null ? '**the main step did not exit (killed after 10 s)**' : `the step exited ${secs(loginExitMs)} after the error`}`,
      time: secs(said.t - la.started),
    });
    assert.notEqual(loginExitMs, null, 'the main step printed its error and then hung (killed after 10 s)');

    // ... and without credentials the tasks cannot pull: Swarm rolls back, the old version keeps serving.
    const noLogin = serve({ command: 'deploy', release: 'pull-down', registry: registry.address });
    delete noLogin['registry-username'];
    delete noLogin['registry-password'];
    const t0 = Date.now();
    const d = await act('deploy, registry down', noLogin, dirs['1.3.0']);
    const w = await probeWindow(`${SERVE}_probe`, t0, Date.now());
    assert.notEqual(d.code, 0, tail(d));
    assert.equal(d.outputs.result, 'rolled-back', tail(d));
    const why = /No such image[^\n]*|pull access denied[^\n]*|manifest unknown[^\n]*/.exec(d.log)?.[0];
    assert.ok(why, `no pull error in the job log:\n${tail(d)}`);
    assert.ok(why.includes(`${registry.address}/${PREFIX}/web:1.3.0`), why);
    const s = await settled(`${SERVE}_web`);
    assert.equal(versionOf(s.image), versionOf(fingerprint.image));
    figure({
      n: '4',
      scenario: 'registry down while the host pulls (no credentials)',
      happened: `${d.outputs.result}; job log: "${why.slice(0, 110)}"; web still runs ${versionOf(s.image)}`,
      requests: failedReq(w),
      time: secs(d.durationMs),
    });
  },
);

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
  const rule = await run('iptables', DROP_RULE('-I'));
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
  ).finally(() => run('iptables', DROP_RULE('-D')));
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
  const rule = await run('iptables', DROP_RULE('-I'));
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

// ------------------------------------------------------------------ 10. concurrent deploys

test(
  '10. two deploys of one stack at the same instant, 10 times in a row: never interleaved',
  { timeout: 400_000 },
  async () => {
    const ROUNDS = 10;
    const lockInputs = (release: string, stamp: string, extra: Record<string, string> = {}) =>
      common({
        command: 'deploy',
        stacks: `${LOCK}=stacks/lock.yml`,
        release,
        env: `BASE_IMAGE=${BASE()}\nSTAMP=${stamp}`,
        stability: '0',
        'keep-releases': '30',
        ...extra,
      });
    const startedAt = Date.now();
    const waits: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      const ia = lockInputs(`lock-${i}a`, `${i}a`);
      const ib = lockInputs(`lock-${i}b`, `${i}b`);
      const A = startAction({ inputs: ia, cwd: dirs['1.0.0'] });
      const B = startAction({ inputs: ib, cwd: dirs['1.0.0'] });
      const [ra, rb] = await Promise.all([A.finish(120_000), B.finish(120_000)]);
      keep(`lock ${i}a`, ia, ra);
      keep(`lock ${i}b`, ib, rb);
      for (const r of [ra, rb]) assert.equal(r.code, 0, tail(r));
      const waited = [ra, rb].filter((r) => /Waiting for the deploy lock/.test(r.log));
      assert.equal(waited.length, 1, `round ${i}: ${waited.length} run(s) logged "Waiting for the deploy lock"`);
      const second = waited[0];
      const first = second === ra ? rb : ra;
      // The first run's gate ended (its last gate line) before the second one's docker stack deploy printed anything.
      const firstGateEnd = [...first.lines].reverse().find((l) => /^\s+\S+: stable:/.test(l.text))!;
      const secondDeploy = second.lines.find((l) => /^(Updating|Creating) service/.test(l.text))!;
      assert.ok(firstGateEnd && secondDeploy, `round ${i}: lines not found`);
      assert.ok(
        secondDeploy.t > firstGateEnd.t,
        `round ${i}: the second deploy started before the first one's gate ended`,
      );
      const wait = second.lines.find((l) => /Waiting for the deploy lock/.test(l.text))!;
      waits.push(secondDeploy.t - wait.t);
    }
    const rec = ledger(LOCK);
    assert.equal(rec.length, 2 * ROUNDS);
    for (let i = 1; i < rec.length; i++) assert.ok(rec[i].time > rec[i - 1].time, 'ledger records out of order');
    for (let i = 0; i < ROUNDS; i++) {
      const pair = rec
        .slice(2 * i, 2 * i + 2)
        .map((x) => x.release)
        .sort();
      assert.deepEqual(
        pair,
        [`lock-${i + 1}a`, `lock-${i + 1}b`],
        `round ${i + 1}: ledger ${rec.map((x) => x.release).join(', ')}`,
      );
    }
    figure({
      n: '10',
      scenario: `two deploys of one stack at the same instant, ${ROUNDS} rounds (lock-timeout 120)`,
      happened: `${2 * ROUNDS}/${2 * ROUNDS} deployed; in each round one logged "Waiting for the deploy lock" and started its docker stack deploy after the other's gate ended (waited ${secs(Math.min(...waits))}–${secs(Math.max(...waits))}); ledger: ${2 * ROUNDS} records, one after the other`,
      time: secs(Date.now() - startedAt),
    });

    // lock-timeout 0, both at the same instant: exactly one deploys, the other fails at once naming the holder.
    const i0 = lockInputs('lock-0a', '0a', { 'lock-timeout': '0' });
    const j0 = lockInputs('lock-0b', '0b', { 'lock-timeout': '0' });
    const A = startAction({ inputs: i0, cwd: dirs['1.0.0'] });
    const B = startAction({ inputs: j0, cwd: dirs['1.0.0'] });
    const [ra, rb] = await Promise.all([A.finish(120_000), B.finish(120_000)]);
    keep('lock 0a', i0, ra);
    keep('lock 0b', j0, rb);
    const winners = [ra, rb].filter((r) => r.code === 0);
    const losers = [ra, rb].filter((r) => r.code !== 0);
    assert.equal(winners.length, 1, `${winners.length} of 2 deployed:\n${tail(ra)}\n---\n${tail(rb)}`);
    assert.match(
      losers[0].errors.join('\n'),
      /Another deploy holds the lock .*\/lock on root@\[127\.0\.0\.1\]:\d+: glasck \(https:\/\/github\.com\/glasck\/example\/actions\/runs\/\d+, release lock-0[ab], since .*\)\. Waited 0 s \(input lock-timeout\)/,
    );
    assert.ok(losers[0].durationMs < winners[0].durationMs, 'the loser did not fail at once');
    assert.doesNotMatch(losers[0].postLog, /Released the deploy lock/);
    assert.equal(ledger(LOCK).length, 2 * ROUNDS + 1);
    figure({
      n: '10',
      scenario: 'the same with lock-timeout 0',
      happened: `one deployed; the other failed in ${secs(losers[0].durationMs)}: "${losers[0].errors[0].replace(/https:\/\/\S+/, '<run url>').slice(0, 150)}"; its post step left the winner's lock alone`,
      time: secs(winners[0].durationMs),
    });
  },
);

// ------------------------------------------------------------------ 11. scale

/** The commands the persistent shell received (own sshd's tee), split at the marker trailer, shell quoting removed. */
function shellCommands(): string[] {
  const text = fs.existsSync(own.shellLog) ? fs.readFileSync(own.shellLog, 'utf8') : '';
  return text
    .split(/; printf '\\n%s\\n' \S+ >&2\n/)
    .filter((c) => c.trim())
    .map((c) => c.replace(/\\/g, ''));
}
const isPoll = (c: string) => c.includes('@@deploy-action:tasks@@');

test(
  `11. scale: ${SCALE_N} services × 2 replicas deploy and gate; one remote command per poll`,
  { timeout: 360_000 },
  async () => {
    fs.writeFileSync(own.shellLog, '');
    const r = await act(
      'scale',
      common({
        ...viaOwn(),
        command: 'deploy',
        stacks: `${SCALE}=stacks/scale.yml`,
        release: 'scale',
        stability: '2',
        timeout: '240',
      }),
      dirs['1.0.0'],
      320_000,
    );
    assert.equal(r.code, 0, tail(r));
    assert.equal(r.outputs.result, 'deployed');
    // The gate's verdict, with the replicas of its last snapshot.
    const rows = r.summary.split('\n').filter((l) => l.startsWith(`| ${SCALE} |`));
    assert.equal(rows.length, SCALE_N, r.summary);
    assert.ok(
      rows.every((l) => /\| \d\/2 \| healthy \|/.test(l)),
      rows.join('\n'),
    );
    const short = rows.filter((l) => !/\| 2\/2 \|/.test(l)).length;
    // Tasks that ended since (a healthcheck timing out under this load, for one) are counted, not hidden.
    // (docker stack ps exits 1 when the filter matches nothing.)
    const endedIds = (
      await docker(['stack', 'ps', SCALE, '-q', '--no-trunc', '--filter', 'desired-state=shutdown'])
    ).stdout
      .trim()
      .split('\n')
      .filter(Boolean);
    const ended = endedIds.length
      ? (
          await dockerOk([
            'inspect',
            '--type',
            'task',
            '--format',
            '{{.Status.State}}|{{.Status.Timestamp}}|{{.Status.Err}}',
            ...endedIds,
          ])
        )
          .trim()
          .split('\n')
      : [];
    const cmds = shellCommands();
    const deployAt = cmds.findIndex((c) => c.includes('docker stack deploy'));
    const lastPoll = cmds.map(isPoll).lastIndexOf(true);
    assert.ok(deployAt >= 0 && lastPoll > deployAt, 'stack deploy / polls not found in the shell log');
    // From docker stack deploy to the gate's last poll, the shell received polls and nothing else.
    const gate = cmds.slice(deployAt + 1, lastPoll + 1);
    const polls = gate.filter(isPoll);
    assert.equal(
      gate.length,
      polls.length,
      `commands during the gate that are not polls:\n${gate
        .filter((c) => !isPoll(c))
        .join('\n---\n')
        .slice(0, 2000)}`,
    );
    const logged = /Gate: (\d+) polls in/.exec(r.log);
    if (logged)
      assert.equal(
        Number(logged[1]),
        polls.length,
        'the polls the action logged and the polls the host received differ',
      );
    const calls = (c: string) => (c.match(/\bdocker (service|inspect|stack|system dial-stdio)/g) ?? []).length;
    const dockerCalls = calls(polls[0]);
    assert.ok(dockerCalls > 0 && polls.every((c) => calls(c) === dockerCalls), 'the polls differ in docker calls');
    const gateLine = r.lines.find((l) => /Gate: watching/.test(l.text))!;
    const stableLine = [...r.lines].reverse().find((l) => /: stable:/.test(l.text))!;
    figure({
      n: '11',
      scenario: `scale: ${SCALE_N} services × 2 replicas (busybox, ${SCALE_HEALTHY} of them with a healthcheck every 10 s), first deploy`,
      happened: `deployed, ${SCALE_N - short}/${SCALE_N} services 2/2 in the gate's last snapshot${short ? ` (${short} at 1/2 yet "healthy": see 11b)` : ''}; gate ${secs(stableLine.t - gateLine.t)} (stability 2 s), ${polls.length} polls (${((stableLine.t - gateLine.t) / polls.length / 1000).toFixed(1)} s each on average), ${gate.length} remote commands during the gate = ${(gate.length / polls.length).toFixed(2)} per poll, ${dockerCalls} docker CLI calls inside each poll${ended.length ? `; then ${ended.length} task(s) ended ${ended.map((e) => secs(Date.parse(e.split('|')[1]) - stableLine.t)).join(', ')} after the verdict (${[...new Set(ended.map((e) => `${e.split('|')[0]}: ${e.split('|')[2]}`))].join('; ').slice(0, 120)})` : ''}`,
      time: secs(r.durationMs),
    });
    const t0 = Date.now();
    await removeStack(SCALE, { timeoutMs: 120_000 });
    figure({
      n: '11',
      scenario: `scale: docker stack rm of the ${SCALE_N * 2} tasks (clean-up)`,
      happened: 'removed',
      time: secs(Date.now() - t0),
    });
  },
);

test(
  '11b. a service that fails after its own stability window while the layer gate is still open',
  { timeout: 120_000 },
  async () => {
    const r = await act(
      'regress',
      common({
        command: 'deploy',
        stacks: `${REGRESS}=stacks/regress.yml`,
        release: 'regress',
        stability: '2',
        timeout: '60',
      }),
      dirs['1.0.0'],
    );
    // The scenario did what it says: fast was stable, then failed while the gate was still open.
    const stableAt = r.lines.find((l) => new RegExp(`${REGRESS}_fast: stable:`).test(l.text));
    const failedAt = r.lines.find((l) => new RegExp(`${REGRESS}_fast: failed:`).test(l.text));
    assert.ok(stableAt, `fast never became stable:\n${tail(r)}`);
    assert.ok(failedAt && failedAt.t > stableAt.t, 'fast did not fail after it was stable');
    // The layer verdict covers services already declared stable: fast's crash fails the deploy, with
    // the task that failed; the new services of the failed layer are removed.
    assert.notEqual(r.code, 0);
    assert.equal(
      r.outputs.result,
      'rolled-back',
      `the layer was reported ${r.outputs.result} although fast failed while its gate was open`,
    );
    assert.match(r.log, new RegExp(`${REGRESS}_fast: [^\\n]*failed[^\\n]*%0A    task \\w+ \\(slot \\d+\\) failed`));
    assert.match(r.log, new RegExp(`Removed the service\\(s\\) this release created: .*${REGRESS}_fast`));
    const failedDuringGate = ((failedAt.t - stableAt.t) / 1000).toFixed(1);
    figure({
      n: '11b',
      scenario: 'one service stable, then crashing, while another one of the layer is still starting (new stack)',
      happened: `${r.outputs.result}; \`fast\` failed ${failedDuringGate} s after it was declared stable, before the layer's verdict; both new services removed`,
      time: secs(r.durationMs),
    });
    await removeStack(REGRESS, { timeoutMs: 60_000 });
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

// ------------------------------------------------------------------ 2c. engine restart

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The pid of the dockerd this checkout's lab started, or 0 with the test skipped. */
function ownEngine(t: { skip: (why: string) => void }): number {
  const pidFile = path.join(REPO_ROOT, 'lab', '.state', 'dockerd.pid');
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : 0;
  if (pid && alive(pid)) return pid;
  // Stopping an engine this checkout's lab did not start would pull it from under whoever did.
  t.skip("dockerd was not started by this checkout's lab (lab/.state/dockerd.pid)");
  return 0;
}

test(
  '2c. the Docker engine restarts during the gate: no success it did not see, lock released, the stack whole',
  { timeout: 400_000 },
  async (t) => {
    const pid = ownEngine(t);
    if (!pid) return;
    const from = await webVersion();
    const to = other(from);
    const inputs = serve({ command: 'deploy', release: `engine-restart-${to}`, stability: '5', timeout: '75' });
    const live = startAction({ inputs, cwd: dirs[to] });
    await live.waitLine(/Gate: watching/, 90_000);
    const down = Date.now();
    process.kill(pid, 'SIGTERM');
    await waitFor(async () => !alive(pid), { timeoutMs: 90_000, intervalMs: 200, what: 'dockerd to exit' });
    const stopped = Date.now() - down;
    const up = await run('bash', [path.join(REPO_ROOT, 'lab', 'lab.sh'), 'up'], { timeoutMs: 180_000 });
    assert.equal(up.code, 0, `lab.sh up after the restart: ${up.stderr.slice(-2000)}`);
    const outage = Date.now() - down;
    const r = keep('engine restart', inputs, await live.finish(300_000));
    // Whatever the verdict, Swarm must end whole, and the verdict must match what runs.
    const version = versionOf((await settled(`${SERVE}_web`, 180_000)).image);
    const last = ledger(SERVE).slice(-1)[0];
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held');
    assert.match(r.log, /Cannot read the Swarm state/, 'the gate did not notice the engine going away');
    if (r.outputs.result === 'deployed') {
      assert.equal(r.code, 0, tail(r));
      assert.equal(version, to, 'reported deployed, but the old version runs');
    } else {
      assert.notEqual(r.code, 0);
      assert.ok(r.errors.length > 0, 'failed without an error message');
      if (r.outputs.result === 'rolled-back')
        assert.equal(version, from, 'reported rolled back, but the new version runs');
    }
    assert.equal(last.release, `engine-restart-${to}`);
    assert.equal(last.result, r.outputs.result, 'the ledger disagrees with the outputs');
    const why = r.outputs.result === 'deployed' ? '' : `: "${r.errors[0].replace(/\s*\n\s*/g, ' / ').slice(0, 200)}"`;
    figure({
      n: '2c',
      scenario: `Docker engine stopped (SIGTERM) at "Gate: watching" and started again (down ${secs(stopped)} to exit, ${secs(outage)} until it answered)`,
      happened: `${r.outputs.result}${why}; web runs ${version} on every replica; lock released; ledger says ${last.result}`,
      time: secs(r.durationMs),
    });
  },
);

// ------------------------------------------------------------------ 4b. engine frozen

test(
  "4b. the Docker engine freezes (SIGSTOP) during the gate: the gate's timeout still fires, the lock is released, the stack whole",
  { timeout: 300_000 },
  async (t) => {
    const pid = ownEngine(t);
    if (!pid) return;
    const from = await webVersion();
    const to = other(from);
    const inputs = serve({ command: 'deploy', release: `engine-frozen-${to}`, stability: '5', timeout: '20' });
    const live = startAction({ inputs, cwd: dirs[to] });
    await live.waitLine(/Gate: watching/, 90_000);
    const frozen = Date.now();
    process.kill(pid, 'SIGSTOP');
    let verdictAfter = 0;
    try {
      // Without a bound on each remote command the poll waits for the engine forever and this never comes.
      await live.waitLine(/could not read the Swarm state before the timeout|not healthy within the timeout/, 90_000);
      verdictAfter = Date.now() - frozen;
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const r = keep('engine frozen', inputs, await live.finish(300_000));
    const version = versionOf((await settled(`${SERVE}_web`, 180_000)).image);
    const last = ledger(SERVE).slice(-1)[0];
    assert.notEqual(r.code, 0);
    assert.ok(['rolled-back', 'failed'].includes(r.outputs.result), r.outputs.result);
    assert.match(r.log, /did not answer within/);
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held');
    if (r.outputs.result === 'rolled-back')
      assert.equal(version, from, 'reported rolled back, but the new version runs');
    assert.equal(last.result, r.outputs.result, 'the ledger disagrees with the outputs');
    figure({
      n: '4b',
      scenario:
        'Docker engine frozen (SIGSTOP) at "Gate: watching", gate timeout 20 s; resumed (SIGCONT) once the gate gave its verdict',
      happened: `gate verdict ${secs(verdictAfter)} after the freeze (polls bounded, "did not answer within"); ${r.outputs.result}; web runs ${version}; lock released; ledger says ${last.result}`,
      time: secs(r.durationMs),
    });
  },
);

// ------------------------------------------------------------------ 7. secrets

test(
  '7. secrets: SSH key, passphrase and registry password appear 0 times in logs, summaries, outputs, host files',
  { timeout: 60_000 },
  async () => {
    assert.ok(runs.length > 20, `only ${runs.length} runs collected`);
    const pieces = (s: string) => [
      s,
      ...s
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 20),
    ];
    const leaks: string[] = [];
    for (const { label, run: r, secrets } of runs) {
      const log = (r.log + '\n' + r.postLog)
        .split('\n')
        .filter((l) => !l.startsWith('::add-mask::'))
        .join('\n');
      const where: Record<string, string> = {
        log,
        summary: r.summary + r.postSummary,
        outputs: JSON.stringify(r.outputs),
      };
      for (const s of secrets) {
        for (const p of pieces(s)) {
          for (const [k, text] of Object.entries(where)) {
            if (text.includes(p)) leaks.push(`${label}: ${k}`);
          }
        }
      }
      if (secrets.includes(PASSWORD))
        assert.ok(r.log.includes(`::add-mask::${PASSWORD}`), `${label}: the registry password was not masked`);
    }
    // On the host: every file under the remote-dir, and ~/.docker (raw and as docker login stores it).
    const hostSecrets = [
      PASSWORD,
      Buffer.from(`${REG_USER}:${PASSWORD}`).toString('base64'),
      PASSPHRASE,
      ...pieces(lab.sshKey).slice(1),
      ...pieces(passKey.content).slice(1),
    ];
    const files: string[] = [];
    const walk = (d: string) => {
      if (!fs.existsSync(d)) return;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) files.push(p);
      }
    };
    walk(path.join(hostHome, REMOTE_DIR));
    walk(path.join(hostHome, '.docker'));
    for (const f of files) {
      const text = fs.readFileSync(f, 'latin1');
      for (const s of hostSecrets) if (text.includes(s)) leaks.push(`host file ${f}`);
    }
    figure({
      n: '7',
      scenario: 'secrets in everything the suite collected',
      happened: `${runs.length} runs (log, post log, summary, outputs) and ${files.length} host files under remote-dir and ~/.docker: ${leaks.length} occurrence(s)`,
      time: '—',
    });
    assert.deepEqual(leaks, []);
  },
);
