// The shared part of the reliability suite (faults, attacks and bad input), on the real lab, through
// dist/index.js as the runner runs it: stack files, inputs, runs, host and Swarm state, set-up and
// clean-up. The scenarios live in the reliability*.test.ts files (2c and 4b in engine26.test.ts); each file
// is its own suite: its own stacks (rel-*), networks (declared in its own stack files), image prefix,
// remote-dir, sshd and registry instances on free ports, so files can run at the same time.
// Figures of the last run: docs/reliability.md.
//
//   node --import tsx --test --test-reporter=spec __tests__/lab/reliability.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  LabEnv,
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
  WEB_HEALTHCHECK,
} from '../helpers/lab';
import { ActionProcess, ActionRun, PostStep, emptyRun, masked, runAction, startAction } from '../helpers/action';
import { onHost } from './common';
import { OwnSshd, PROBE_SCRIPT, ProbeWindow } from './reliability-helpers';

export let lab: LabEnv;
export let hostHome = '';
export let own: OwnSshd;
export const PREFIX = uniqueName('rel');
export const REMOTE_DIR = `.deploy-action-${uniqueName('rel')}`;
export const REG_USER = uniqueName('rel-deployer');
export const PASSWORD = `pw-${uniqueName('rel')}-never-printed`;
export const PASSPHRASE = `pass phrase ${uniqueName('rel')}`;
export const CANARY = `/tmp/pwned-${uniqueName('rel')}`;

export const SERVE = uniqueName('rel-serve');
export const INJ = uniqueName('rel-inj');
export const LOGS = uniqueName('rel-logs');
export const LOCK = uniqueName('rel-lock');
export const SCALE = uniqueName('rel-scale');
export const REGRESS = uniqueName('rel-regress');
export const FULL = uniqueName('rel-full');
export const MY_STACKS = [SERVE, INJ, LOGS, LOCK, SCALE, REGRESS, FULL];
// Scenario 12's remote-dir: a small tmpfs mounted on the host, filled up, then made read-only.
export const SMALL_DIR = `.deploy-action-${uniqueName('rel-small')}`;

export const tempDirs: string[] = [];
export const dirs: Record<string, string> = {};
export const passKey = { file: '', content: '' };
export let strangerKey = '';

// ------------------------------------------------------------------ figures and collected runs

export interface Figure {
  n: string;
  scenario: string;
  happened: string;
  requests?: string;
  time: string;
}
export const figures: Figure[] = [];
export function figure(f: Figure) {
  figures.push(f);
}
export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const failedReq = (w: ProbeWindow) => `${w.failed} / ${w.requests}`;

/** Every run of the file with the secrets it was given, for scenario 7. */
export const runs: { label: string; run: ActionRun; secrets: string[] }[] = [];

// ------------------------------------------------------------------ stack files

export const BASE = () => `${lab.registry}/lab/base:1`;
export const NET = `networks:\n  net:\n    driver: overlay\n    driver_opts:\n      com.docker.network.driver.mtu: "1450"\n`;
// Stops at once on TERM (sh as PID 1 would otherwise wait for the grace period).
export const IDLE = `trap 'exit 0' TERM INT; while :; do sleep 1 & wait $$!; done`;

/** The tail the small services of this suite share: quick stop, the stack's network, one dnsrr task. */
export const ONE_TASK = (restart = false) => `    stop_grace_period: 1s
    networks: [net]
    deploy:
      replicas: 1
      endpoint_mode: dnsrr
      update_config: {order: start-first, failure_action: rollback, monitor: 1s}
${restart ? '      restart_policy: {condition: any, delay: 1s}\n' : ''}`;

export const SERVE_YML = `version: "3.8"
services:
  web:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/web:\${WEB_VERSION}
${WEB_HEALTHCHECK}    stop_grace_period: 2s
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

export const INJ_YML = `version: "3.8"
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

export const NOISY_MARKER = `NOISY-END-${uniqueName('m')}`;
// About 1 MB of base64 lines, then a single line of about 1 MB, then the marker, then exit 1.
export const NOISY = `head -c 750000 /dev/urandom | base64; yes xxxxxxxxxxxxxxxx | head -c 1100000 | tr -d '\\n'; echo; echo ${NOISY_MARKER}; exit 1`;
export const LOGS_YML = `version: "3.8"
services:
  noisy:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(NOISY)}]
${ONE_TASK(true)}${NET}`;

export const LOCK_YML = `version: "3.8"
services:
  idle:
    image: \${BASE_IMAGE}
    command: ["sh", "-c", ${JSON.stringify(IDLE)}]
    environment:
      STAMP: \${STAMP}
${ONE_TASK()}${NET}`;

export const SCALE_N = 30;
export const SCALE_HEALTHY = 5;
export function scaleYml(): string {
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
export const REGRESS_YML = `version: "3.8"
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
export const NASTY_COMPOSE = `stacks/inj a;b$(touch ${CANARY}-f1)\`touch ${CANARY}-f2\`'q.yml`;
export const QUOTED_COMPOSE = `stacks/inj "q$(touch ${CANARY}-f3)".yml`;

/** A copy of the example with web at `version` (`mode`), and every stack file of this suite. */
export function workDir(version: string, mode: 'ok' | 'crash' = 'ok'): string {
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

export function common(extra: Record<string, string> = {}): Record<string, string> {
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
export function serve(extra: Record<string, string> = {}): Record<string, string> {
  return common({
    stacks: `${SERVE}=stacks/serve.yml`,
    'registry-username': REG_USER,
    'registry-password': PASSWORD,
    ...extra,
  });
}

/** Through the suite's own sshd instead of the lab's. */
export function viaOwn(): Record<string, string> {
  return { port: String(own.port), 'known-hosts': own.knownHostsLine() };
}

export function secretsOf(inputs: Record<string, string>): string[] {
  return [inputs['ssh-key'], inputs['registry-password'], inputs['ssh-passphrase']].filter((s): s is string => !!s);
}

export function keep(label: string, inputs: Record<string, string>, r: ActionRun): ActionRun {
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

export async function act(
  label: string,
  inputs: Record<string, string>,
  cwd: string,
  timeoutMs = 240_000,
): Promise<ActionRun> {
  return keep(label, inputs, await runAction({ inputs, cwd, timeoutMs }));
}

/**
 * A run that is expected to fail: once it printed its `::error::`, the main step must end. It gets
 * `graceMs` to do so; a step still running then is killed and reported as hung (the runner would
 * wait for the job's timeout).
 */
export async function actBounded(
  label: string,
  inputs: Record<string, string>,
  cwd: string,
  graceMs = 10_000,
): Promise<{ run: ActionRun; hung: boolean }> {
  const live = startAction({ inputs, cwd });
  const said = await live.waitLine(/^::error::/, 90_000).catch(() => null);
  const hung = await live.wait(said ? graceMs : 90_000).then(
    () => false,
    () => true,
  );
  return { run: keep(label, inputs, await live.finish(10_000)), hung };
}

/** A main step killed by a signal, and its post step: their logs go to scenario 7 too. */
export function keepCancelled(label: string, live: ActionProcess, post: PostStep): void {
  runs.push({
    label,
    secrets: secretsOf(serve()),
    run: emptyRun({
      code: null,
      signal: 'SIGTERM',
      log: live.log,
      maskedLog: masked(live.log),
      lines: live.lines,
      durationMs: Date.now() - live.started,
      peakRssKb: live.peakRssKb,
      postCode: post.code,
      postLog: post.log,
      postCommands: post.commands,
      postSummary: post.summary,
      postDurationMs: post.durationMs,
    }),
  });
  live.cleanup();
}

export const tail = (r: ActionRun) => r.maskedLog.slice(-4000);

// ------------------------------------------------------------------ host and swarm state

export const stackPath = (stack: string) => path.join(hostHome, REMOTE_DIR, 'stacks', stack);
export const lockPath = (stack: string) => path.join(stackPath(stack), 'lock');

export interface LedgerRec {
  release: string;
  versions: Record<string, string>;
  kind: string;
  result: string;
  time: string;
  runUrl: string;
}
export function ledger(stack: string): LedgerRec[] {
  const f = path.join(stackPath(stack), 'ledger.json');
  if (!fs.existsSync(f)) return [];
  return (JSON.parse(fs.readFileSync(f, 'utf8')) as { releases: LedgerRec[] }).releases;
}

export interface SvcState {
  image: string;
  update: string;
  replicas: number;
  tasks: { state: string; image: string }[];
}
export async function svcState(name: string): Promise<SvcState> {
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
export async function settled(name: string, timeoutMs = 90_000): Promise<SvcState> {
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

export const versionOf = (image: string) => /\/web:([^@]+)/.exec(image)?.[1] ?? image;
export const other = (v: string) => (v === '1.0.0' ? '1.1.0' : '1.0.0');
export async function webVersion(): Promise<string> {
  return versionOf((await settled(`${SERVE}_web`)).image);
}

/**
 * Canary files: none may exist, locally or on the host (the same machine here, asked both ways).
 * Payloads touch `<CANARY>-<letter><digit>`; the nasty compose file names of scenario 6 legitimately
 * create folders whose names start with the canary's, inside the release folder: exact names only.
 */
export async function canaries(): Promise<string[]> {
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
export function hostHasCredentials(): boolean {
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
export const runConfigsLeft = () => {
  const runs = path.join(hostHome, REMOTE_DIR, 'runs');
  return fs.existsSync(runs) ? fs.readdirSync(runs) : [];
};

// ------------------------------------------------------------------ set-up and clean-up

export async function build(
  label: string,
  dir: string,
  reg: string,
  creds = true,
  timeoutMs = 120_000,
): Promise<ActionRun> {
  const inputs = common({
    command: 'build',
    registry: reg,
    ...(creds ? { 'registry-username': REG_USER, 'registry-password': PASSWORD } : {}),
  });
  return act(label, inputs, dir, timeoutMs);
}

/**
 * Registers the suite's set-up (lab, keys, own sshd, work dirs; `versions` built and pushed, then
 * `ready`) and clean-up (the file's own `cleanup` first, then the suite's). One hook each: a second
 * top-level before() or after() starts without waiting for the first.
 */
export function useSuite(versions: string[], ready?: () => Promise<void>, cleanup?: () => Promise<void> | void): void {
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
    const built = await Promise.all(versions.map((v) => build(`build ${v}`, dirs[v], lab.registry)));
    for (const b of built) assert.equal(b.code, 0, tail(b));
    await ready?.();
  });

  after(async () => {
    try {
      await cleanup?.();
    } catch (e) {
      console.error(`cleanup of the file: ${(e as Error).message}`);
    }
    await Promise.all(
      MY_STACKS.map((s) =>
        removeStack(s, { timeoutMs: 90_000 }).catch((e) => console.error(`cleanup ${s}: ${e.message}`)),
      ),
    );
    if (lab) await onHost(lab, `umount ${SMALL_DIR} 2>/dev/null; rm -rf ${SMALL_DIR}`);
    await own?.dispose();
    if (lab) await onHost(lab, `rm -rf ${REMOTE_DIR}`);
    const imgs = (await docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout
      .split('\n')
      .filter((r) => r.includes(`/${PREFIX}/`) && !r.endsWith(':<none>'));
    if (imgs.length) await docker(['rmi', '--no-prune', '--force', ...imgs]);
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
}

// ------------------------------------------------------------------ 7. secrets

export function secretsScenario(minRuns: number): void {
  test(
    '7. secrets: SSH key, passphrase and registry password appear 0 times in logs, summaries, outputs, host files',
    { timeout: 60_000 },
    async () => {
      assert.ok(runs.length >= minRuns, `only ${runs.length} runs collected`);
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
}
