// The benchmark (issues 3 and 5): deploys stacks of 1, 5 and 10 tiny services on the lab, through
// plain `ssh … docker stack deploy --detach=false` and through the action (dist/index.js run as the
// runner runs it), and writes BENCHMARKS.md with what it measured in this run.
//
//   npm run bench                      # BENCH_RUNS=3 (median of 3)
//   BENCH_RUNS=1 npm run bench         # a quick validation run
//
// Environment: BENCH_RUNS (3), BENCH_SIZES ("1,5,10"; "none" for only the rows below), BENCH_REPLICAS (1), BENCH_SCALE (30 services
// × 2 replicas, first deploy; 0 skips it), BENCH_TWO_REPLICAS (1: the 1 service × 2 replicas row; 0
// skips it), BENCH_SETTLE_MS (2000, pause once a stack is quiet before the next measured run),
// BENCH_NOTE (a line for BENCHMARKS.md).
//
// The lab is shared: everything here is named bench-* (stacks bench-<n>svc with their own overlay
// network, images 127.0.0.1:5000/bench/sNN, remote-dir .deploy-action-bench, work files in .bench/),
// and only those are removed at the end. Nothing else on the engine is touched.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  LabEnv,
  REPO_ROOT,
  labInputs,
  dockerOk,
  removeStack,
  requireLab,
  run,
  waitFor,
} from '../__tests__/helpers/lab';
import {
  BENCHMARKS,
  Call,
  DOCKERFILE,
  GATE_LINE,
  GATE_START,
  GateCount,
  OWN_PARTS,
  SvcNow,
  Timed,
  buildImages,
  codeState,
  debugCalls,
  dockerVersions,
  envInt,
  exitAt,
  firstAt,
  gateCount,
  keepSections,
  lastAt,
  layerSpans,
  list,
  log,
  machineLine,
  median,
  mustSucceed as mustSucceedIn,
  nextSeq,
  ok,
  onHost,
  ownTime,
  parseGoTime,
  readBenchmarks,
  s1,
  s2,
  sleep,
  sshArgs,
  stackIds,
  stackServices,
  stampedAction,
  swarmDone,
  tagOf,
  x2,
} from './lib';

// ------------------------------------------------------------------ settings

const RUNS = envInt('BENCH_RUNS', 3, 1);
// "none": only the other rows (the 2-replica row, the scale run).
const SIZES =
  process.env.BENCH_SIZES === 'none'
    ? []
    : (process.env.BENCH_SIZES ?? '1,5,10').split(',').map((s) => Number(s.trim()));
if ((!SIZES.length && process.env.BENCH_SIZES !== 'none') || SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 99))
  throw new Error(`BENCH_SIZES must be a list of 1..99, got "${process.env.BENCH_SIZES}"`);
const REPLICAS = envInt('BENCH_REPLICAS', 1, 1);
// Issue 8: one stack of BENCH_SCALE services × 2 replicas, deployed and gated once (0: skip).
const SCALE = envInt('BENCH_SCALE', 30, 0);
const SCALE_REPLICAS = 2;
// A version bump of 1 service × 2 replicas, raw and action side by side (0: skip).
const TWO = envInt('BENCH_TWO_REPLICAS', 1, 0) > 0;
const SETTLE_MS = envInt('BENCH_SETTLE_MS', 2000, 0);
const NOTE = process.env.BENCH_NOTE ?? '';

const PREFIX = 'bench';
const REMOTE_DIR = '.deploy-action-bench';
const WORK = path.join(REPO_ROOT, '.bench');
const LOGS = path.join(WORK, 'logs');
const OUT = BENCHMARKS;
const CRASH = '9.9.9-crash';
const TARGET_FAIL_MS = 2000;

const stackName = (n: number) => `bench-${n}svc`;
const svc = (i: number) => `s${String(i).padStart(2, '0')}`;
const svcs = (n: number) => Array.from({ length: n }, (_, i) => svc(i + 1));
const ver = (k: number) => `1.0.${k}`;

// -------------------------------------------------------------------- images

const imageRef = (lab: LabEnv, service: string, version: string) => `${lab.registry}/${PREFIX}/${service}:${version}`;

/** One build per version, tagged and pushed for every service (the crash variant for s01 only). */
function buildAll(lab: LabEnv, versions: string[], maxServices: number): Promise<string[]> {
  return buildImages([], path.join(WORK, 'images'), [
    ...versions.map((v) => ({ version: v, refs: svcs(maxServices).map((s) => imageRef(lab, s, v)) })),
    { version: CRASH, crash: true, refs: [imageRef(lab, svc(1), CRASH)] },
  ]);
}

// --------------------------------------------------------------- stack files

/** The stack: n services, each its own image, healthcheck every 1 s, start-first updates, own overlay network. */
function stackYaml(
  n: number,
  image: (service: string) => string,
  replicas = REPLICAS,
  interval = '1s',
  timeout = '2s',
): string {
  const out = ['version: "3.8"', '', 'services:'];
  for (const s of svcs(n)) {
    out.push(
      `  ${s}:`,
      `    image: ${image(s)}`,
      '    healthcheck:',
      '      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]',
      `      interval: ${interval}`,
      `      timeout: ${timeout}`,
      '      retries: 2',
      '    stop_grace_period: 2s',
      '    networks: [net]',
      '    deploy:',
      `      replicas: ${replicas}`,
      '      endpoint_mode: dnsrr',
      '      update_config: {parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s, delay: 0s}',
      '      rollback_config: {parallelism: 0, order: start-first}',
      '      restart_policy: {condition: any, delay: 1s}',
    );
  }
  out.push(
    '',
    'networks:',
    '  net:',
    '    driver: overlay',
    '    driver_opts:',
    '      com.docker.network.driver.mtu: "1450"',
    '',
  );
  return out.join('\n');
}

/** The action's working directory: service/sNN/{VERSION,Dockerfile} and stacks/bench.yml (with ${SNN_VERSION}). */
function makeWorkspace(n: number, replicas = REPLICAS, interval = '1s', timeout = '2s'): string {
  const ws = path.join(WORK, wsName(n, replicas));
  fs.rmSync(ws, { recursive: true, force: true });
  for (const s of svcs(n)) {
    fs.mkdirSync(path.join(ws, 'service', s), { recursive: true });
    fs.writeFileSync(path.join(ws, 'service', s, 'Dockerfile'), DOCKERFILE);
  }
  fs.mkdirSync(path.join(ws, 'stacks'), { recursive: true });
  fs.writeFileSync(
    path.join(ws, 'stacks', 'bench.yml'),
    stackYaml(
      n,
      (s) => `\${REGISTRY}/\${IMAGE_PREFIX}/${s}:\${${s.toUpperCase()}_VERSION}`,
      replicas,
      interval,
      timeout,
    ),
  );
  return ws;
}

const wsName = (n: number, replicas: number) => `ws-${n}svc${replicas === REPLICAS ? '' : `-${replicas}r`}`;

function setVersions(ws: string, n: number, version: string, overrides: Record<string, string> = {}): void {
  for (const s of svcs(n)) fs.writeFileSync(path.join(ws, 'service', s, 'VERSION'), `${overrides[s] ?? version}\n`);
}

/** The raw path deploys an already interpolated file that is on the host (the lab host is this machine). */
function rawFile(lab: LabEnv, n: number, version: string, replicas = REPLICAS, stack = stackName(n)): string {
  const f = path.join(WORK, 'raw', `${stack}-${version}.yml`);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(
    f,
    stackYaml(n, (s) => imageRef(lab, s, version), replicas),
  );
  return f;
}

/** Waits until the stack is quiet: every update finished, exactly the replicas running, all healthy; then a pause. */
async function settle(stack: string, n: number, replicas = REPLICAS): Promise<void> {
  await waitFor(
    async () => {
      const services = await stackServices(stack);
      if (services.length !== n) return false;
      if (services.some((s) => ['updating', 'rollback_started', 'paused', 'rollback_paused'].includes(s.state)))
        return false;
      const ps = (
        await dockerOk(['ps', '--filter', `label=com.docker.stack.namespace=${stack}`, '--format', '{{.Status}}'])
      )
        .trim()
        .split('\n')
        .filter(Boolean);
      return ps.length === n * replicas && ps.every((s) => s.includes('(healthy)'));
    },
    {
      timeoutMs: 240_000,
      intervalMs: 500,
      what: `stack ${stack} to settle (all updates done, ${n * replicas} healthy containers)`,
    },
  );
  await sleep(SETTLE_MS);
}

async function expectVersions(
  stack: string,
  n: number,
  want: (service: string) => string,
  what: string,
): Promise<SvcNow[]> {
  const services = await stackServices(stack);
  const bad = svcs(n).filter((s) => tagOf(services.find((x) => x.name === `${stack}_${s}`)?.image ?? '') !== want(s));
  if (bad.length)
    throw new Error(
      `${what}: ${bad.map((s) => `${stack}_${s} runs ${services.find((x) => x.name === `${stack}_${s}`)?.image ?? 'nothing'}, not ${want(s)}`).join('; ')}`,
    );
  return services;
}

// ---------------------------------------------------------- the action path

function baseInputs(lab: LabEnv, stack: string): Record<string, string> {
  return {
    ...labInputs(lab, PREFIX, REMOTE_DIR),
    stacks: `${stack}=stacks/bench.yml`,
    timeout: '240',
    'lock-timeout': '120',
  };
}

async function action(
  lab: LabEnv,
  ws: string,
  stack: string,
  label: string,
  inputs: Record<string, string>,
  env: Record<string, string> = {},
): Promise<Timed> {
  return stampedAction({
    inputs: { ...baseInputs(lab, stack), ...inputs },
    cwd: ws,
    label,
    logsDir: LOGS,
    env,
  });
}

interface Phases {
  connect: number | null;
  preDeploy: number | null;
  gate: number | null;
  after: number | null;
  /** The last "stable" line, ms after the start. */
  stableAt: number | null;
}

/** start → "Connected" → "Gate: watching" (docker stack deploy returned) → last "stable" → process exit. */
function phases(t: Timed): Phases {
  const connected = firstAt(t.main, /^Connected; host key matches/);
  const gate = firstAt(t.main, GATE_START);
  const stable = lastAt(t.main, GATE_LINE('stable'));
  const exit = exitAt(t.main);
  const d = (a: number | null, b: number | null) => (a !== null && b !== null ? b - a : null);
  return {
    connect: d(t.start, connected),
    preDeploy: d(connected, gate),
    gate: d(gate, stable),
    after: d(stable, exit),
    stableAt: d(t.start, stable),
  };
}

/** A scenario that failed: its error is kept for the report. */
function failed(stack: string, res: { error?: string }, e: Error): void {
  res.error = e.message;
  log(`${stack}: FAILED: ${res.error.split('\n')[0]}`);
}

/** Every scenario ends so: its stack removed, its time taken. */
async function closeScenario(
  stack: string,
  res: { seconds: number },
  t0: number,
  created: Set<string>,
  timeoutMs = 120_000,
): Promise<void> {
  log(`${stack}: removing the stack`);
  await removeStack(stack, { timeoutMs })
    .then(() => created.delete(stack))
    .catch((e: Error) => log(`could not remove ${stack}: ${e.message}`));
  res.seconds = Math.round((Date.now() - t0) / 1000);
}

/** The raw side: one `ssh … docker stack deploy --detach=false`, timed, its output kept in the logs. */
async function rawDeploy(lab: LabEnv, stack: string, file: string, v: string) {
  log(`${stack}: raw ssh docker stack deploy --detach=false → ${v}`);
  const load = os.loadavg()[0];
  const start = Date.now();
  const r = await run('ssh', [...sshArgs(lab), 'docker', 'stack', 'deploy', '--detach=false', '-c', file, stack], {
    timeoutMs: 600_000,
  });
  const ms = Date.now() - start;
  fs.writeFileSync(path.join(LOGS, `${nextSeq()}-${stack}-raw-${v}.log`), `${r.stdout}\n--- stderr\n${r.stderr}`);
  if (r.code !== 0) throw new Error(`raw deploy ${stack} ${v}: exit ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return { ms, load, start };
}

const mustSucceed = (t: Timed, result: string) => mustSucceedIn(t, result, LOGS);

// ------------------------------------------------------------ the debug log

/** What a run with RUNNER_DEBUG=1 lists: every remote command and Engine API request, with its duration. */
interface Counted {
  commands: Call[];
  requests: Call[];
  gate: GateCount;
  /** From the gate's closing line: the job's remote commands so far; and the commands the debug log lists by then. */
  commandsSoFar: number | null;
  listedSoFar: number;
  totalMs: number;
}

const DEBUG_ENV = { RUNNER_DEBUG: '1' };

/** What a one-layer run with RUNNER_DEBUG=1 did, from its own lines. */
function counted(t: Timed, stack: string): Counted {
  const calls = debugCalls(t.main);
  const [span] = layerSpans(t.main, [stack]);
  if (span.gateStart === null || span.gateEnd === null) throw new Error(`${t.label}: no gate lines in the log`);
  return {
    ...calls,
    gate: gateCount(span, calls),
    commandsSoFar: span.commandsSoFar,
    listedSoFar: calls.commands.filter((c) => c.t < (span.gateEnd as number)).length,
    totalMs: t.ms,
  };
}

/** The action (`stability: 0`) with RUNNER_DEBUG=1, as a job with debug logging on runs it. */
async function debugDeploy(lab: LabEnv, ws: string, stack: string, release: string, label: string): Promise<Counted> {
  const t = await action(lab, ws, stack, label, { release, stability: '0' }, DEBUG_ENV);
  mustSucceed(t, 'deployed');
  return counted(t, stack);
}

// ------------------------------------------------------------------ results

interface PairRun {
  raw: { ms: number; swarmDone: number | null; load: number };
  act: { ms: number; swarmDone: number | null; load: number; phases: Phases; postMs: number };
}

interface FailRun {
  /** Host ms of UpdateStatus.CompletedAt of rollback_completed. */
  swarmAt: number | null;
  state: string;
  gateSawAt: number | null;
  errorAt: number | null;
  exitAt: number | null;
  ms: number;
  result: string;
  load: number;
}

interface SizeResult {
  n: number;
  pairs: PairRun[];
  rollbacks: { ms: number; swarmDone: number | null; load: number; phases: Phases }[];
  auto?: { ms: number; swarmDone: number | null; phases: Phases; stability: string };
  /** One deploy with RUNNER_DEBUG=1: every remote command and Engine API request. */
  counted?: Counted;
  fails: FailRun[];
  error?: string;
  seconds: number;
}

async function benchSize(lab: LabEnv, n: number, created: Set<string>): Promise<SizeResult> {
  const t0 = Date.now();
  const res: SizeResult = { n, pairs: [], rollbacks: [], fails: [], seconds: 0 };
  const stack = stackName(n);
  const ws = makeWorkspace(n);
  let k = 0;
  const forward: number[] = []; // versions deployed forward by the action, in order
  try {
    log(`${stack}: first deploy (not measured)`);
    created.add(stack);
    setVersions(ws, n, ver(k));
    mustSucceed(await action(lab, ws, stack, `${stack}-setup`, { release: ver(k), stability: '0' }), 'deployed');
    forward.push(k++);

    const doRaw = async (): Promise<PairRun['raw']> => {
      const v = ver(k++);
      const file = rawFile(lab, n, v);
      await settle(stack, n);
      const { ms, load, start } = await rawDeploy(lab, stack, file, v);
      await settle(stack, n);
      const services = await expectVersions(stack, n, () => v, `raw deploy ${v}`);
      return { ms, swarmDone: swarmDone(services, start), load };
    };
    const doAction = async (): Promise<PairRun['act']> => {
      const v = ver(k++);
      setVersions(ws, n, v);
      await settle(stack, n);
      log(`${stack}: action deploy (stability 0) → ${v}`);
      const t = await action(lab, ws, stack, `${stack}-deploy-${v}`, { release: v, stability: '0' });
      mustSucceed(t, 'deployed');
      forward.push(Number(v.split('.')[2]));
      await settle(stack, n);
      const services = await expectVersions(stack, n, () => v, `action deploy ${v}`);
      return { ms: t.ms, swarmDone: swarmDone(services, t.start), load: t.load, phases: phases(t), postMs: t.postMs };
    };
    const doRollback = async (): Promise<void> => {
      const target = ver(forward[forward.length - 2]);
      await settle(stack, n);
      log(`${stack}: action rollback-to previous → ${target}`);
      const t = await action(lab, ws, stack, `${stack}-rollback-${target}`, {
        command: 'rollback',
        'rollback-to': 'previous',
      });
      mustSucceed(t, 'rolled-back');
      await settle(stack, n);
      const services = await expectVersions(stack, n, () => target, `rollback to ${target}`);
      res.rollbacks.push({ ms: t.ms, swarmDone: swarmDone(services, t.start), load: t.load, phases: phases(t) });
    };

    for (let i = 1; i <= RUNS; i++) {
      // Alternate which goes first, so that a drift in the machine's load does not favour one side.
      if (i % 2 === 1) {
        const raw = await doRaw();
        const act = await doAction();
        res.pairs.push({ raw, act });
        await doRollback();
      } else {
        const act = await doAction();
        await doRollback();
        const raw = await doRaw();
        res.pairs.push({ raw, act });
      }
    }

    // Every remote command and Engine API request, from the action's own debug log.
    {
      const v = ver(k++);
      setVersions(ws, n, v);
      await settle(stack, n);
      log(`${stack}: action deploy with RUNNER_DEBUG=1 (remote commands and Engine API requests listed) → ${v}`);
      res.counted = await debugDeploy(lab, ws, stack, v, `${stack}-debug-${v}`);
      forward.push(Number(v.split('.')[2]));
    }
    // The default stability window, once.
    {
      const v = ver(k++);
      setVersions(ws, n, v);
      await settle(stack, n);
      log(`${stack}: action deploy (stability auto) → ${v}`);
      const t = await action(lab, ws, stack, `${stack}-auto-${v}`, { release: v, stability: 'auto' });
      mustSucceed(t, 'deployed');
      forward.push(Number(v.split('.')[2]));
      await settle(stack, n);
      const services = await expectVersions(stack, n, () => v, `action deploy ${v} (auto)`);
      const stab = /stable for (\d+) s/.exec(t.run.log)?.[1];
      res.auto = {
        ms: t.ms,
        swarmDone: swarmDone(services, t.start),
        phases: phases(t),
        stability: stab ? `${stab} s` : '?',
      };
    }
    // Failure reporting: s01 crashes (exit 3), Swarm rolls it back; the others are unchanged.
    const current = ver(forward[forward.length - 1]);
    for (let i = 1; i <= RUNS; i++) {
      setVersions(ws, n, current, { s01: CRASH });
      await settle(stack, n);
      log(`${stack}: crashing release ${i}/${RUNS} (s01 → ${CRASH})`);
      const t = await action(lab, ws, stack, `${stack}-crash-${i}`, { release: `crash-${i}`, stability: '0' });
      const services = await stackServices(stack);
      const s01 = services.find((s) => s.name === `${stack}_s01`);
      if (t.run.code === 0) throw new Error(`crashing release ${i} of ${stack}: the action reported success`);
      res.fails.push({
        swarmAt: s01?.state === 'rollback_completed' ? parseGoTime(s01.completedAt) : null,
        state: s01?.state ?? 'missing',
        gateSawAt: firstAt(t.main, /^ {2}\S+_s01: failed: /),
        errorAt: firstAt(t.main, /^::error/),
        exitAt: exitAt(t.main),
        ms: t.ms,
        result: t.run.outputs.result ?? '',
        load: t.load,
      });
      await settle(stack, n);
      await expectVersions(stack, n, () => current, `after crashing release ${i}`);
    }
    setVersions(ws, n, current);
  } catch (e) {
    failed(stack, res, e as Error);
  } finally {
    await closeScenario(stack, res, t0, created);
  }
  return res;
}

// -------------------------------------------------------------------- scale

interface ScaleResult {
  n: number;
  replicas: number;
  /** The first deploy, with RUNNER_DEBUG=1. */
  bump?: Counted;
  error?: string;
  seconds: number;
}

const scaleStack = (n: number) => `bench-scale-${n}svc`;

/**
 * A first deploy of n services × 2 replicas, with RUNNER_DEBUG=1 (its remote commands and Engine API
 * requests listed). Not a
 * version bump: 30 × 2 start-first updates with healthchecks on 2 cores drove the load average past 50
 * here, healthchecks timed out and Swarm rolled most services back. The healthcheck is every 10 s
 * (timeout 10 s), as in reliability scenario 11: each check is a process started in a container, and
 * 60 tasks checked every 2 s asked more than the 2 cores have (a check timed out, and the gate rightly
 * rolled the first deploy back, in the runs of 2026-12-04 and 2026-12-05).
 */
async function benchScale(lab: LabEnv, n: number, created: Set<string>): Promise<ScaleResult> {
  const t0 = Date.now();
  const res: ScaleResult = { n, replicas: SCALE_REPLICAS, seconds: 0 };
  const stack = scaleStack(n);
  const ws = makeWorkspace(n, SCALE_REPLICAS, '10s', '10s');
  try {
    created.add(stack);
    setVersions(ws, n, ver(0));
    log(`${stack}: first deploy with RUNNER_DEBUG=1, ${n} services × ${SCALE_REPLICAS} replicas`);
    res.bump = await debugDeploy(lab, ws, stack, ver(0), `${stack}-first-${ver(0)}`);
    await settle(stack, n, SCALE_REPLICAS);
    await expectVersions(stack, n, () => ver(0), 'scale first deploy');
  } catch (e) {
    failed(stack, res, e as Error);
  } finally {
    await closeScenario(stack, res, t0, created, 180_000);
  }
  return res;
}

// ------------------------------------------------------------ 2 replicas

interface TwoResult {
  pairs: { raw: number; act: number; post: number; load: number }[];
  /** The RUNNER_DEBUG=1 runs: the main step cut into parts (ownTime), and the post step. */
  debug: { ms: number; post: number; own: Record<string, number> | null }[];
  error?: string;
  seconds: number;
}

const TWO_STACK = 'bench-1svc-2r';

/**
 * A version bump of 1 service × 2 replicas (start-first, parallelism 1, the same healthcheck): raw
 * `docker stack deploy --detach=false` and the action (`stability: 0`) side by side, alternating; then
 * the same bump with RUNNER_DEBUG=1, whose remote commands cut the action's own time into parts.
 */
async function benchTwo(lab: LabEnv, created: Set<string>, versions: string[]): Promise<TwoResult> {
  const t0 = Date.now();
  const res: TwoResult = { pairs: [], debug: [], seconds: 0 };
  const stack = TWO_STACK;
  const ws = makeWorkspace(1, 2);
  const quiet = () => settle(stack, 1, 2);
  let k = 0;
  try {
    log(`${stack}: first deploy (not measured)`);
    created.add(stack);
    setVersions(ws, 1, versions[k]);
    mustSucceed(await action(lab, ws, stack, `${stack}-setup`, { release: versions[k++], stability: '0' }), 'deployed');
    const raw = async () => {
      const v = versions[k++];
      const file = rawFile(lab, 1, v, 2, stack);
      await quiet();
      const { ms, load } = await rawDeploy(lab, stack, file, v);
      await quiet();
      await expectVersions(stack, 1, () => v, `raw deploy ${v}`);
      return { ms, load };
    };
    const act = async (env: Record<string, string>, what: string) => {
      const v = versions[k++];
      setVersions(ws, 1, v);
      await quiet();
      log(`${stack}: action deploy (stability 0${what}) → ${v}`);
      const t = await action(
        lab,
        ws,
        stack,
        `${stack}-deploy-${v}${what ? '-debug' : ''}`,
        { release: v, stability: '0' },
        env,
      );
      mustSucceed(t, 'deployed');
      await quiet();
      await expectVersions(stack, 1, () => v, `action deploy ${v}`);
      return t;
    };
    for (let i = 1; i <= RUNS; i++) {
      // Alternate which goes first, so that a drift in the machine's load does not favour one side.
      const r = i % 2 === 1 ? await raw() : undefined;
      const a = await act({}, '');
      const r2 = r ?? (await raw());
      res.pairs.push({ raw: r2.ms, act: a.ms, post: a.postMs, load: r2.load });
      const d = await act(DEBUG_ENV, ', RUNNER_DEBUG=1');
      res.debug.push({ ms: d.ms, post: d.postMs, own: ownTime(d, stack) });
    }
  } catch (e) {
    failed(stack, res, e as Error);
  } finally {
    await closeScenario(stack, res, t0, created);
  }
  return res;
}

function twoReplicaSection(two: TwoResult): string[] {
  const out: string[] = ['## A version bump of 1 service × 2 replicas', ''];
  const raw = median(two.pairs.map((p) => p.raw));
  const act = median(two.pairs.map((p) => p.act));
  out.push(
    `The stack above with 1 service and 2 replicas (\`parallelism: 1\`, \`order: start-first\`, the same healthcheck), every run a version bump. Raw and the action (\`stability: 0\`) side by side in this run, alternating, median of ${two.pairs.length}; then the same bump through the action with \`RUNNER_DEBUG=1\`, whose debug log times every remote command. Seconds.`,
    '',
    '| raw `ssh … docker stack deploy --detach=false` | action, `stability: 0` | ratio action/raw (median of the pairs) | every pair (raw / action) | action with `RUNNER_DEBUG=1` | post step (separate) |',
    '| ---: | ---: | ---: | --- | ---: | ---: |',
    `| ${s2(raw)} | ${s2(act)} | ${x2(median(two.pairs.map((p) => p.act / p.raw)))} | ${two.pairs.map((p) => `${s1(p.raw)} / ${s1(p.act)}`).join(', ') || '—'} | ${s2(median(two.debug.map((d) => d.ms)))} | ${s2(median(two.pairs.map((p) => p.post)))} |`,
    '',
  );
  out.push(
    "### The action's own time (the `RUNNER_DEBUG=1` runs, median, s)",
    '',
    'The main step cut into parts by its lines: start → the `Connected` line, then the remote commands outside the gate by what they do (their durations as the action logs them), the gate, and the rest (work in the node process between commands: reading the files, rendering, the summary; and exit). The parts add up to the main step.',
    '',
    '| part | s |',
    '| --- | ---: |',
  );
  const owns = two.debug.map((d) => d.own).filter((o): o is Record<string, number> => o !== null);
  for (const part of OWN_PARTS) out.push(`| ${part} | ${s2(median(owns.map((o) => o[part])))} |`);
  const gatePart = OWN_PARTS[7];
  out.push(
    `| **main step** | ${s2(median(two.debug.map((d) => d.ms)))} |`,
    `| **main step outside the gate** | ${s2(median(owns.map((o) => Object.values(o).reduce((a, x) => a + x, 0) - o[gatePart])))} |`,
    `| post step (a separate process) | ${s2(median(two.debug.map((d) => d.post)))} |`,
    `| raw, the whole \`ssh\` command (for scale) | ${s2(raw)} |`,
    '',
  );
  if (two.error) out.push(`Failed: ${two.error.split('\n')[0]}`, '');
  return out;
}

function gateCells(g: GateCount | undefined): string {
  if (!g) return '— | — | — | — | — | —';
  const pm = g.pollMs;
  const poll = pm.length ? `${s2(median(pm))} (${s2(Math.min(...pm))}–${s2(Math.max(...pm))})` : '—';
  const perPoll = g.polls ? (g.requests / g.polls).toFixed(2) : '—';
  const cmds = g.commands ? `${g.commands} (${g.commandKinds.join(', ')})` : '0';
  return `${g.polls ?? '—'} | ${g.requests} | ${perPoll} | ${cmds} | ${poll} | ${s2(g.gateMs)}`;
}

// ------------------------------------------------------------------- report

function report(
  results: SizeResult[],
  meta: {
    started: Date;
    seconds: number;
    loads: number[];
    docker: string;
    lab: LabEnv;
    errors: string[];
    code: string;
    scale?: ScaleResult;
    two?: TwoResult;
  },
): string {
  const validation = RUNS < 3;
  const out: string[] = [];
  const loadMin = Math.min(...meta.loads);
  const loadMax = Math.max(...meta.loads);
  out.push('# Benchmarks', '');
  out.push(`Written by \`npm run bench\` (\`bench/bench.ts\`) from figures measured on the lab in this run.`, '');
  if (validation) {
    out.push(
      `> **Validation run** (BENCH_RUNS=${RUNS}): one run per figure, on the shared 2-core lab while other jobs were running (1-minute load average ${loadMin.toFixed(1)}–${loadMax.toFixed(1)} before the measured runs). It proves the script; the reference figures come from \`npm run bench\` (median of 3) on a quiet machine.`,
      '',
    );
  }
  if (NOTE) out.push(`> ${NOTE}`, '');
  out.push(
    `- Date: ${meta.started.toISOString().replace(/\.\d+Z$/, 'Z')}; this run took ${Math.round(meta.seconds / 60)} min ${meta.seconds % 60} s (BENCH_RUNS=${RUNS}, sizes ${SIZES.join(', ')}).`,
    `- Machine: ${machineLine()}.`,
    `- Docker: ${meta.docker}. Lab: engine, registry (${meta.lab.registry}) and sshd (${meta.lab.user}@${meta.lab.host}:${meta.lab.port}) on this machine.`,
    `- Code: ${meta.code}.`,
    `- Load average (1 min) before the measured runs: ${loadMin.toFixed(2)}–${loadMax.toFixed(2)}.`,
    `- Stacks: n services (\`s01\`…), ${REPLICAS} replica${REPLICAS > 1 ? 's' : ''} each, image \`FROM lab/base:1\` (busybox httpd serving /health), healthcheck every 1 s (timeout 2 s, retries 2), \`update_config: {parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s}\`, \`rollback_config: {parallelism: 0, order: start-first}\`, \`endpoint_mode: dnsrr\`, own overlay network (MTU 1450). Every measured deploy changes the version of every service.`,
    '',
  );

  out.push('## Healthy deploy: the action against raw `docker stack deploy`', '');
  out.push(
    `Median of ${RUNS} run${RUNS > 1 ? 's' : ''}; raw and action runs alternate, each starts from the same state (the stack converged, all containers healthy, ${SETTLE_MS / 1000} s pause). Times in seconds, from starting the command to its exit.`,
    '',
  );
  out.push(
    '| services | raw `ssh … docker stack deploy --detach=false` | action, `stability: 0` | ratio action/raw | Swarm `completed` (raw run / action run) | action, `stability: auto` |',
  );
  out.push('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const raw = median(r.pairs.map((p) => p.raw.ms));
    const act = median(r.pairs.map((p) => p.act.ms));
    const ratio = median(r.pairs.map((p) => p.act.ms / p.raw.ms));
    const auto = r.auto ? `${s1(r.auto.ms)} (window ${r.auto.stability})` : '—';
    out.push(
      `| ${r.n} | ${s1(raw)} | ${s1(act)} | ${x2(ratio)} | ${s1(median(r.pairs.map((p) => p.raw.swarmDone)))} / ${s1(median(r.pairs.map((p) => p.act.swarmDone)))} | ${auto} |`,
    );
  }
  out.push('');
  out.push(
    '"Swarm `completed`": when Swarm marked the last service\'s update `completed` (`UpdateStatus.CompletedAt`), counted from the start of the command. Target (issue 3): ratio ≤ 1.05.',
    '',
  );
  if (RUNS > 1) {
    out.push(
      '<details><summary>Every run (s)</summary>',
      '',
      '| services | raw | action | ratio |',
      '| ---: | --- | --- | --- |',
    );
    for (const r of results)
      out.push(
        `| ${r.n} | ${list(
          r.pairs.map((p) => p.raw.ms),
          s1,
        )} | ${list(
          r.pairs.map((p) => p.act.ms),
          s1,
        )} | ${r.pairs.map((p) => x2(p.act.ms / p.raw.ms)).join(', ')} |`,
      );
    out.push('', '</details>', '');
  }

  out.push("### Where the action's time goes (`stability: 0`, median, s)", '');
  out.push(
    'From the wall-clock time of each line the action printed, as the runner emulation (`__tests__/helpers/action.ts`) received it.',
    '',
  );
  out.push(
    '| services | start → SSH connected | connected → `docker stack deploy` returned | gate (deploy returned → last service stable) | stable → process exit | total | post step (separate) |',
  );
  out.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const p = r.pairs.map((x) => x.act.phases);
    out.push(
      `| ${r.n} | ${s2(median(p.map((x) => x.connect)))} | ${s2(median(p.map((x) => x.preDeploy)))} | ${s2(median(p.map((x) => x.gate)))} | ${s2(median(p.map((x) => x.after)))} | ${s2(median(r.pairs.map((x) => x.act.ms)))} | ${s2(median(r.pairs.map((x) => x.act.postMs)))} |`,
    );
  }
  out.push('');
  out.push('Measured from the moment Swarm marked the last update `completed` (median, s; negative: before it):', '');
  out.push(
    "| services | raw: Swarm `completed` → `ssh` exits | action: Swarm `completed` → the gate's last `stable` line | action: → process exit | action: start → Swarm `completed`, minus the same for raw |",
  );
  out.push('| ---: | ---: | ---: | ---: | ---: |');
  const lag = (a: number | null, b: number | null) => (a !== null && b !== null ? a - b : null);
  for (const r of results) {
    out.push(
      `| ${r.n} | ${s2(median(r.pairs.map((x) => lag(x.raw.ms, x.raw.swarmDone))))} | ${s2(median(r.pairs.map((x) => lag(x.act.phases.stableAt, x.act.swarmDone))))} | ${s2(median(r.pairs.map((x) => lag(x.act.ms, x.act.swarmDone))))} | ${s2(median(r.pairs.map((x) => lag(x.act.swarmDone, x.raw.swarmDone))))} |`,
    );
  }
  out.push('');

  out.push('### Remote commands of one deploy (from the debug log)', '');
  out.push(
    'One more deploy (`stability: 0`) through the runner emulation with `RUNNER_DEBUG=1` (what `ACTIONS_STEP_DEBUG` turns on): the action logs every remote command with its exit code and duration, and every Engine API request; the benchmark classifies those lines.',
    '',
  );
  const kinds = [...new Set(results.flatMap((r) => r.counted?.commands.map((c) => c.kind) ?? []))];
  out.push(`| remote command | ${results.map((r) => `${r.n} svc: count, total s`).join(' | ')} |`);
  out.push(`| --- | ${results.map(() => '---:').join(' | ')} |`);
  const countAndTime = (cs: Call[]) => (cs.length ? `${cs.length}, ${s2(cs.reduce((a, x) => a + x.ms, 0))}` : '—');
  for (const kind of kinds)
    out.push(
      `| ${kind} | ${results.map((r) => countAndTime(r.counted?.commands.filter((x) => x.kind === kind) ?? [])).join(' | ')} |`,
    );
  out.push(`| **all remote commands** | ${results.map((r) => countAndTime(r.counted?.commands ?? [])).join(' | ')} |`);
  out.push(
    `| Engine API requests (over the one connection) | ${results.map((r) => countAndTime(r.counted?.requests ?? [])).join(' | ')} |`,
  );
  out.push(
    `| remote commands by the gate's closing line: its count / the debug log's | ${results.map((r) => (r.counted ? `${r.counted.commandsSoFar ?? '—'} / ${r.counted.listedSoFar}` : '—')).join(' | ')} |`,
  );
  out.push(`| main step, wall clock | ${results.map((r) => s2(r.counted?.totalMs)).join(' | ')} |`);
  out.push('');

  out.push('## Engine API requests per poll', '');
  out.push(
    "| services | polls (the gate's closing line) | Engine API requests during the gate | requests per poll | remote commands during the gate | one poll, median (min–max), s | gate, s |",
  );
  out.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) out.push(`| ${r.n} | ${gateCells(r.counted?.gate)} |`);
  out.push('');
  out.push(
    "From the same debug run. The gate keeps one HTTP/1.1 connection to the host's Docker Engine API (the engine's socket, forwarded by sshd on the SSH connection and opened once per job: the debug log's `Engine API socket … → open` line; `docker system dial-stdio` where sshd forwards no socket) and reads the stack with two GET requests per poll (`/services`, `/tasks`); no process is started on the host per poll. \"During the gate\": started between the `Gate: watching` line and the gate's closing line (`Gate: <n> polls in <s> s (<c> remote commands and <r> Engine API requests so far in this job)`). One poll: from the start of its `/services` request to the end of its `/tasks` request, as the action logs them.",
    '',
  );
  if (meta.two) out.push(...twoReplicaSection(meta.two));

  out.push('## Failure reporting latency', '');
  out.push(
    `A release in which \`s01\` exits 3 at start (the other services unchanged), through the action (\`stability: 0\`). Swarm rolls \`s01\` back itself (\`failure_action: rollback\`). Times from Swarm's \`UpdateStatus.CompletedAt\` of the \`rollback_completed\` state (engine clock, same machine) to: the gate's \`failed\` line, the first \`::error::\` line, the action's process exit. Median of ${RUNS}; target (issue 3): \`::error::\` ≤ 2 s.`,
    '',
  );
  out.push('| services | → gate sees it | → `::error::` | → process exit | ≤ 2 s | whole run | result |');
  out.push('| ---: | ---: | ---: | ---: | :---: | ---: | --- |');
  for (const r of results) {
    const d = (f: (x: FailRun) => number | null) =>
      median(r.fails.map((x) => (x.swarmAt !== null && f(x) !== null ? (f(x) as number) - x.swarmAt : null)));
    const err = d((x) => x.errorAt);
    const states = [...new Set(r.fails.map((x) => x.state))].join(', ');
    out.push(
      `| ${r.n} | ${s2(d((x) => x.gateSawAt))} | ${s2(err)} | ${s2(d((x) => x.exitAt))} | ${ok(err === null ? null : err <= TARGET_FAIL_MS)} | ${s1(median(r.fails.map((x) => x.ms)))} | ${[...new Set(r.fails.map((x) => x.result))].join(', ') || '—'}${states && states !== 'rollback_completed' ? ` (s01 state: ${states})` : ''} |`,
    );
  }
  out.push('');

  out.push('## Rollback (issue 5)', '');
  out.push(
    `\`command: rollback\`, \`rollback-to: previous\` right after a forward deploy through the action: every service goes back to the release before (re-deployed from the stack files stored on the host, through the same gate; that release was deployed with \`stability: 0\`, so its gate has no window either). Against the forward deploys of the same runs. Median of ${RUNS}, s. Targets: ≤ 1.2× a forward deploy, ≤ 30 s for 10 services.`,
    '',
  );
  out.push('| services | rollback | forward deploy (action, `stability: 0`) | ratio | ≤ 1.2× | ≤ 30 s |');
  out.push('| ---: | ---: | ---: | ---: | :---: | :---: |');
  for (const r of results) {
    const rb = median(r.rollbacks.map((x) => x.ms));
    const fw = median(r.pairs.map((x) => x.act.ms));
    const ratio = rb !== null && fw !== null ? rb / fw : null;
    out.push(
      `| ${r.n} | ${s1(rb)} | ${s1(fw)} | ${x2(ratio)} | ${ok(ratio === null ? null : ratio <= 1.2)} | ${ok(rb === null ? null : rb <= 30_000)} |`,
    );
  }
  out.push('');

  const sc = meta.scale;
  if (sc) {
    out.push(`## Scale: ${sc.n} services × ${sc.replicas} replicas (issue 8)`, '');
    out.push(
      `One stack of ${sc.n} services like the one above but with ${sc.replicas} replicas each and a healthcheck every 10 s (timeout 10 s): a first deploy (\`stability: 0\`) with \`RUNNER_DEBUG=1\`, counted as in "Engine API requests per poll". One run. Not a version bump of all ${sc.n} × ${sc.replicas} at once: on a 2-core machine that overloads the engine (the comment of \`benchScale\` in \`bench/bench.ts\`).`,
      '',
    );
    out.push(
      "| services × replicas | first deploy, s | polls (the gate's closing line) | Engine API requests during the gate | requests per poll | remote commands during the gate | one poll, median (min–max), s | gate, s |",
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    out.push(`| ${sc.n} × ${sc.replicas} | ${s1(sc.bump?.totalMs)} | ${gateCells(sc.bump?.gate)} |`, '');
    if (sc.error) out.push(`Failed: ${sc.error.split('\n')[0]}`, '');
  }

  out.push('## What the ratio includes', '');
  out.push(
    '- **Raw** is one `ssh` process: connect (key auth, pinned host key), then `docker stack deploy --detach=false -c FILE STACK`, whose CLI returns once every service converged and its `monitor` passed. The stack file is already interpolated and already on the host (the lab host is this machine); a user gluing ssh-action to it would also upload the file first. Raw checks nothing: it exits 0 and prints "converged" even when Swarm rolled the release back (lab/README.md).',
    "- **The action** is a whole `node dist/index.js` step: node start and bundle load, inputs, VERSION files, pre-flight checks and interpolation, SSH connect, the engine's `GET /info` and one shell command (the host's clock, home and which engine its CLI uses), the registry look-up of each image (`GET /distribution/…` on the engine; `docker manifest inspect` for any answer but \"there\"), a read of the Swarm configs and nodes, the host MTU, the host lock (take and release), a read and an atomic write of the ledger, a listing of the stack's Docker secrets (to prune old ones), the upload of the stack files into a release folder, a snapshot of the stack before deploying, `docker stack deploy --detach=true`, then the gate (every 0.1 s while the update is under way, 0.25 s in a stability window, a poll of two Engine API requests over one HTTP/1.1 connection kept open for the job: the engine's socket, forwarded by sshd) until Swarm reports every update `completed` and every task runs the new image, and the job summary. The post step (a separate process; here it has nothing to do) is not counted.",
    '- With `stability: auto` the gate also watches every service for its window after `completed` (here max(10 s, monitor 2 s + 1 s × 2 retries) = 10 s): that is time raw does not spend, because raw does not watch at all.',
    '- The images are on the registry on loopback and their layers already on the engine, so pulls are cheap for both sides.',
    '',
  );

  out.push('## Rerun', '');
  out.push(
    '```sh',
    'bash lab/lab.sh up          # if the lab is not running',
    'npm run bench               # BENCH_RUNS=3; writes BENCHMARKS.md',
    'BENCH_RUNS=5 BENCH_SIZES=1,5,10 npm run bench',
    '```',
    '',
  );
  out.push(
    `This run (BENCH_RUNS=${RUNS}, sizes ${SIZES.join(', ')}${SCALE ? `, scale ${SCALE}` : ''}${TWO ? ', the 2-replica row' : ''}) took ${Math.round(meta.seconds / 60)} min ${meta.seconds % 60} s; each further run adds raw, action and rollback runs for every size, a crashing release for each, and three runs of the 2-replica row.`,
    '',
  );
  out.push(
    `Stacks \`bench-<n>svc\`, images \`127.0.0.1:5000/${PREFIX}/sNN\`, remote-dir \`${REMOTE_DIR}\`; the stacks, the remote-dir and the local image tags are removed at the end. Logs of every run are kept in \`.bench/logs/\` (gitignored). Run it on a quiet machine: the figures are wall-clock times on 2 cores.`,
    '',
  );

  if (meta.errors.length) {
    out.push('## Errors in this run', '', '```text', ...meta.errors, '```', '');
  }
  return out.join('\n');
}

// --------------------------------------------------------------------- main

async function cleanup(lab: LabEnv | undefined, created: Set<string>, images: string[]): Promise<void> {
  for (const stack of [...created]) {
    await removeStack(stack, { timeoutMs: 120_000 })
      .then(() => created.delete(stack))
      .catch((e: Error) => log(`could not remove ${stack}: ${e.message}`));
  }
  if (lab)
    await onHost(lab, `rm -rf ${REMOTE_DIR}`).catch((e: Error) =>
      log(`could not remove ~/${REMOTE_DIR}: ${e.message}`),
    );
  for (let i = 0; i < images.length; i += 50)
    await dockerOk(['rmi', ...images.slice(i, i + 50)]).catch(() => undefined);
  for (const d of [
    'images',
    'raw',
    ...SIZES.map((n) => wsName(n, REPLICAS)),
    wsName(SCALE, SCALE_REPLICAS),
    wsName(1, 2),
  ])
    fs.rmSync(path.join(WORK, d), { recursive: true, force: true });
}

async function main(): Promise<void> {
  const started = new Date();
  const lab = await requireLab();
  const created = new Set<string>();
  let images: string[] = [];
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    log('interrupted: removing the bench stacks');
    void cleanup(lab, created, images).finally(() => process.exit(130));
  });

  fs.mkdirSync(LOGS, { recursive: true });
  for (const f of fs.readdirSync(LOGS)) fs.rmSync(path.join(LOGS, f), { force: true });

  // Leftovers of an interrupted run are ours by name.
  for (const stack of [...SIZES.map(stackName), ...(SCALE ? [scaleStack(SCALE)] : []), TWO_STACK]) {
    if ((await stackIds(stack)).length) {
      log(`removing a leftover ${stack}`);
      await removeStack(stack, { timeoutMs: 120_000 });
    }
  }
  await onHost(lab, `rm -rf ${REMOTE_DIR}`);

  const code = codeState();
  const docker = dockerVersions();
  const results: SizeResult[] = [];
  const errors: string[] = [];
  let scale: ScaleResult | undefined;
  let two: TwoResult | undefined;
  try {
    const versions = Array.from({ length: 3 * RUNS + 4 }, (_, i) => ver(i));
    const most = Math.max(...SIZES, SCALE, TWO ? 1 : 0);
    log(`building and pushing ${versions.length + 1} versions × up to ${most} services`);
    const t = Date.now();
    images = await buildAll(lab, versions, most);
    log(`images ready in ${Math.round((Date.now() - t) / 1000)} s`);
    for (const n of SIZES) {
      if (interrupted) break;
      const r = await benchSize(lab, n, created);
      results.push(r);
      if (r.error) errors.push(`${stackName(n)}: ${r.error}`);
      log(`${stackName(n)} done in ${r.seconds} s`);
    }
    if (TWO && !interrupted) {
      two = await benchTwo(lab, created, versions);
      if (two.error) errors.push(`${TWO_STACK}: ${two.error}`);
      log(`${TWO_STACK} done in ${two.seconds} s`);
    }
    if (SCALE && !interrupted) {
      scale = await benchScale(lab, SCALE, created);
      if (scale.error) errors.push(`${scaleStack(SCALE)}: ${scale.error}`);
      log(`${scaleStack(SCALE)} done in ${scale.seconds} s`);
    }
  } finally {
    if (!interrupted) await cleanup(lab, created, images);
  }
  if (interrupted) return;
  const seconds = Math.round((Date.now() - started.getTime()) / 1000);
  const loads = results.flatMap((r) => [
    ...r.pairs.flatMap((p) => [p.raw.load, p.act.load]),
    ...r.fails.map((f) => f.load),
  ]);
  if (two) loads.push(...two.pairs.map((p) => p.load));
  // The sections other benchmarks own (bench/multinode.ts: <!-- bench:nodes -->) are kept.
  fs.writeFileSync(
    OUT,
    keepSections(
      readBenchmarks(),
      report(results, {
        started,
        seconds,
        loads: loads.length ? loads : [os.loadavg()[0]],
        docker,
        lab,
        errors,
        code,
        scale,
        two,
      }),
    ),
  );
  fs.writeFileSync(path.join(WORK, 'results.json'), JSON.stringify({ started, seconds, runs: RUNS, results }, null, 1));
  log(
    `wrote ${path.relative(process.cwd(), OUT)} in ${seconds} s${errors.length ? ` with ${errors.length} error(s)` : ''}`,
  );
  if (errors.length) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((e: Error) => {
    log(`failed: ${e.stack ?? e.message}`);
    process.exitCode = 1;
  });
}
