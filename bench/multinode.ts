// The 3-node benchmark (issue 15): a Sprocket-sized deploy, three layers (ingress 2 services,
// infra 5, platform 8) on the 3-node lab (lab/multinode.sh: a manager and two workers, each a
// dockerd in its own network namespace; the registry on the bridge; the sshd in the manager's
// namespace), through plain `ssh … docker stack deploy --detach=false` one layer after the other
// and through the action (dist/index.js run as the runner runs it) deploying the three layers in
// one run, alternating, every service's version changed each time. The gate's Engine API requests and
// remote commands are counted per layer on one more such deploy with RUNNER_DEBUG=1, from the
// action's own debug log. The figures go into BENCHMARKS.md
// between `<!-- bench:nodes -->` and `<!-- /bench:nodes -->` (bench/bench.ts keeps that section).
//
//   npm run bench:nodes                 # BENCH_RUNS=3 (median of 3)
//   BENCH_RUNS=1 npm run bench:nodes    # a quick validation run
//
// Environment: BENCH_RUNS (3), BENCH_SETTLE_MS (2000, pause once the stacks are quiet before the next
// measured run), BENCH_HEALTH_INTERVAL (2s), BENCH_NOTE (a line for BENCHMARKS.md), BENCH_NODES_KEEP=1
// (keep a 3-node lab this script brought up).
//
// The 3-node lab is brought up if it is not (`bash lab/lab.sh up --nodes 3`) and then taken down
// at the end; a lab that was up is left up. Everything here is named bench-* (stacks bench-ingress,
// bench-infra, bench-platform, network bench-mesh, images <registry>/bench/<service>, remote-dir
// .deploy-action-bench-nodes, work files in .bench-nodes/) and removed at the end.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  LAB_SCRIPT,
  LabEnv,
  REPO_ROOT,
  docker,
  dockerOk,
  labInputs,
  parseExports,
  run,
  waitFor,
} from '../__tests__/helpers/lab';
import {
  Call,
  DOCKERFILE,
  SvcNow,
  Timed,
  buildImages,
  codeState,
  debugCalls,
  dockerVersions,
  duration,
  envInt,
  exitAt,
  gateCount,
  GateCount,
  layerSpans,
  list,
  log,
  machineLine,
  median,
  mustSucceed,
  nextSeq,
  onHost,
  putSection,
  readBenchmarks,
  BENCHMARKS,
  s1,
  s2,
  setLogTag,
  sleep,
  sshArgs,
  stackIds,
  stackServices,
  stampedAction,
  swarmDone,
  tagOf,
  x2,
} from './lib';

setLogTag('bench:nodes');

// ------------------------------------------------------------------ settings

const RUNS = envInt('BENCH_RUNS', 3, 1);
const SETTLE_MS = envInt('BENCH_SETTLE_MS', 3000, 0);
// Every 5 s, timeout 5 s, 3 retries: with checks every 2 s (timeout 2 s) the first run on this shared
// 2-core machine (load average past 50 with other jobs) saw steady containers turn unhealthy and
// crash-loop, and Swarm roll a raw release back (which raw reported as converged).
const HEALTH_INTERVAL = process.env.BENCH_HEALTH_INTERVAL || '5s';
if (!/^\d+(ms|s)$/.test(HEALTH_INTERVAL))
  throw new Error(`BENCH_HEALTH_INTERVAL must be like 2s or 500ms, got "${HEALTH_INTERVAL}"`);
const NOTE = process.env.BENCH_NOTE ?? '';
const KEEP = process.env.BENCH_NODES_KEEP === '1';

const PREFIX = 'bench';
const REMOTE_DIR = '.deploy-action-bench-nodes';
const NETWORK = 'bench-mesh';
const WORK = path.join(REPO_ROOT, '.bench-nodes');
const LOGS = path.join(WORK, 'logs');
const SECTION = 'nodes';

interface Svc {
  name: string;
  /** A placement constraint, as Sprocket pins its stateful services to a zone. */
  place?: string;
}
interface Layer {
  stack: string;
  file: string;
  services: Svc[];
}

const zone = (z: string) => `node.labels.zone == ${z}`;
const LAYERS: Layer[] = [
  {
    stack: 'bench-ingress',
    file: 'ingress.yml',
    services: [
      { name: 'proxy', place: zone('a') },
      { name: 'edge', place: zone('b') },
    ],
  },
  {
    stack: 'bench-infra',
    file: 'infra.yml',
    services: [
      { name: 'redis', place: zone('c') },
      { name: 'postgres', place: zone('c') },
      { name: 'nats', place: zone('b') },
      { name: 'minio', place: zone('a') },
      { name: 'mailer' },
    ],
  },
  {
    stack: 'bench-platform',
    file: 'platform.yml',
    services: [
      { name: 'api', place: zone('a') },
      { name: 'web', place: zone('b') },
      { name: 'orders', place: zone('c') },
      { name: 'billing', place: 'node.role == worker' },
      { name: 'jobs', place: 'node.role == worker' },
      { name: 'scheduler' },
      { name: 'notify' },
      { name: 'search' },
    ],
  },
];
const STACKS = LAYERS.map((l) => l.stack);
const ALL = LAYERS.flatMap((l) => l.services.map((s) => s.name));
const ver = (k: number) => `1.0.${k}`;

// ------------------------------------------------------------------ the lab

interface Nodes {
  lab: LabEnv;
  /** Each node's engine, for the docker CLI (`-H`). */
  hosts: Record<'manager' | 'worker1' | 'worker2', string>;
  env: Record<string, string>;
}

const labCmd = (...args: string[]) => run('bash', [LAB_SCRIPT, ...args, '--nodes', '3'], { timeoutMs: 300_000 });

/** Every component of the 3-node lab answers (`status --nodes 3`: five lines, all up). */
async function labIsUp(): Promise<boolean> {
  const st = await labCmd('status');
  const lines = st.stdout.trim().split('\n').filter(Boolean);
  return st.code === 0 && lines.length === 5 && lines.every((l) => /^\S+\s+up\b/.test(l));
}

async function nodesEnv(): Promise<Nodes> {
  const r = await labCmd('env');
  if (r.code !== 0) throw new Error(`bash lab/lab.sh env --nodes 3: ${r.stderr.trim()}`);
  const env = parseExports(r.stdout);
  const need = (k: string) => {
    if (!env[k]) throw new Error(`bash lab/lab.sh env --nodes 3 printed no ${k}`);
    return env[k];
  };
  const lab: LabEnv = {
    host: need('LAB_HOST'),
    port: Number(need('LAB_PORT')),
    user: need('LAB_USER'),
    sshKeyFile: need('LAB_SSH_KEY_FILE'),
    knownHostsFile: need('LAB_KNOWN_HOSTS_FILE'),
    sshKey: fs.readFileSync(need('LAB_SSH_KEY_FILE'), 'utf8'),
    knownHosts: fs.readFileSync(need('LAB_KNOWN_HOSTS_FILE'), 'utf8'),
    registry: need('LAB_REGISTRY'),
    baseImage: need('LAB_BASE_IMAGE'),
  };
  return {
    lab,
    env,
    hosts: {
      manager: need('LAB_MANAGER_DOCKER_HOST'),
      worker1: need('LAB_WORKER1_DOCKER_HOST'),
      worker2: need('LAB_WORKER2_DOCKER_HOST'),
    },
  };
}

let N: Nodes;
/** The docker CLI's leading arguments for the manager's engine. */
const M = () => ['-H', N.hosts.manager];

// -------------------------------------------------------------- stack files

/** One layer's stack file: every service its own image, a healthcheck, start-first updates, dnsrr, the shared overlay network. */
function stackYaml(layer: Layer, image: (service: string) => string): string {
  const out = ['version: "3.8"', '', 'services:'];
  for (const s of layer.services) {
    out.push(
      `  ${s.name}:`,
      `    image: ${image(s.name)}`,
      '    healthcheck:',
      '      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]',
      `      interval: ${HEALTH_INTERVAL}`,
      '      timeout: 5s',
      '      retries: 3',
      '    stop_grace_period: 2s',
      '    networks: [mesh]',
      '    deploy:',
      '      replicas: 1',
      '      endpoint_mode: dnsrr',
      ...(s.place ? ['      placement:', `        constraints: ["${s.place}"]`] : []),
      '      update_config: {parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s, delay: 0s}',
      '      rollback_config: {parallelism: 0, order: start-first}',
      '      restart_policy: {condition: any, delay: 1s}',
    );
  }
  // The ingress layer creates the overlay network the later layers join (as Sprocket's proxy stack does).
  if (layer === LAYERS[0]) {
    out.push(
      '',
      'networks:',
      '  mesh:',
      `    name: ${NETWORK}`,
      '    driver: overlay',
      '    attachable: true',
      '    driver_opts:',
      '      com.docker.network.driver.mtu: "1450"',
      '',
    );
  } else {
    out.push('', 'networks:', '  mesh:', `    name: ${NETWORK}`, '    external: true', '');
  }
  return out.join('\n');
}

const imageRef = (service: string, version: string) => `${N.lab.registry}/${PREFIX}/${service}:${version}`;

/** The action's working directory: service/<name>/{VERSION,Dockerfile} and stacks/<layer>.yml (with ${<NAME>_VERSION}). */
function makeWorkspace(): string {
  const ws = path.join(WORK, 'ws');
  fs.rmSync(ws, { recursive: true, force: true });
  for (const s of ALL) {
    fs.mkdirSync(path.join(ws, 'service', s), { recursive: true });
    fs.writeFileSync(path.join(ws, 'service', s, 'Dockerfile'), DOCKERFILE);
  }
  fs.mkdirSync(path.join(ws, 'stacks'), { recursive: true });
  for (const l of LAYERS)
    fs.writeFileSync(
      path.join(ws, 'stacks', l.file),
      stackYaml(l, (s) => `\${REGISTRY}/\${IMAGE_PREFIX}/${s}:\${${s.toUpperCase()}_VERSION}`),
    );
  return ws;
}

function setVersions(ws: string, version: string): void {
  for (const s of ALL) fs.writeFileSync(path.join(ws, 'service', s, 'VERSION'), `${version}\n`);
}

/** The raw path deploys an already interpolated file that is on the host (the lab's nodes are on this machine). */
function rawFile(layer: Layer, version: string): string {
  const f = path.join(WORK, 'raw', `${layer.stack}-${version}.yml`);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(
    f,
    stackYaml(layer, (s) => imageRef(s, version)),
  );
  return f;
}

// -------------------------------------------------------------- swarm state

const NS_LABEL = 'com.docker.stack.namespace';

/** Running containers of the bench stacks on every node, with their health: stack → statuses. */
async function containers(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const lists = await Promise.all(
    Object.values(N.hosts).map((h) =>
      dockerOk(['-H', h, 'ps', '--filter', `label=${NS_LABEL}`, '--format', `{{.Label "${NS_LABEL}"}} {{.Status}}`]),
    ),
  );
  for (const line of lists.join('\n').split('\n').filter(Boolean)) {
    const [stack, ...status] = line.split(' ');
    out.set(stack, [...(out.get(stack) ?? []), status.join(' ')]);
  }
  return out;
}

/** Every service of the bench stacks (one `service ls`, one `service inspect`). */
async function benchServices(): Promise<SvcNow[]> {
  const ids = (await dockerOk([...M(), 'service', 'ls', '-q', '--filter', `label=${NS_LABEL}`]))
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  if (!ids.length) return [];
  const text = await dockerOk([
    ...M(),
    'service',
    'inspect',
    '--format',
    '[{{json .Spec.Name}},{{json .Spec.TaskTemplate.ContainerSpec.Image}},{{json .UpdateStatus}}]',
    ...ids,
  ]);
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name, image, upd] = JSON.parse(l) as [string, string, { State?: string; CompletedAt?: string } | null];
      return { name, image, state: upd?.State ?? '', completedAt: upd?.CompletedAt ?? '' };
    })
    .filter((s) => STACKS.some((st) => s.name.startsWith(`${st}_`)));
}

/** Waits until the three stacks are quiet: every update finished, one container per service over the nodes, all healthy; then a pause. */
async function settle(): Promise<void> {
  // Polled every 2 s, the manager first: every docker CLI call costs this 2-core machine.
  await waitFor(
    async () => {
      const services = await benchServices();
      if (services.length !== ALL.length) return false;
      if (services.some((s) => ['updating', 'rollback_started', 'paused', 'rollback_paused'].includes(s.state)))
        return false;
      const ps = await containers();
      return LAYERS.every(
        (l) =>
          (ps.get(l.stack) ?? []).length === l.services.length &&
          (ps.get(l.stack) ?? []).every((s) => s.includes('(healthy)')),
      );
    },
    {
      timeoutMs: 300_000,
      intervalMs: 2000,
      what: `stacks ${STACKS.join(', ')} to settle (all updates done, ${ALL.length} healthy containers over the nodes)`,
    },
  );
  await sleep(SETTLE_MS);
}

async function expectVersion(layer: Layer, version: string, what: string): Promise<SvcNow[]> {
  const services = await stackServices(layer.stack, M());
  const runs = (s: Svc) => services.find((x) => x.name === `${layer.stack}_${s.name}`)?.image ?? 'nothing';
  const bad = layer.services.filter((s) => tagOf(runs(s)) !== version);
  if (bad.length)
    throw new Error(
      `${what}: ${bad.map((s) => `${layer.stack}_${s.name} runs ${runs(s)}, not ${version}`).join('; ')}`,
    );
  return services;
}

/** Which node each service's task runs on (hostname), for the report. */
async function placement(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const stack of STACKS) {
    const text = await dockerOk([
      ...M(),
      'stack',
      'ps',
      stack,
      '--filter',
      'desired-state=running',
      '--format',
      '{{.Name}} {{.Node}} {{.CurrentState}}',
    ]);
    for (const l of text
      .trim()
      .split('\n')
      .filter((x) => / Running /.test(x))) {
      const [name, node] = l.split(' ');
      out.set(name.replace(/\.\d+$/, ''), node);
    }
  }
  return out;
}

// ------------------------------------------------------------------ the runs

interface LayerFig {
  ms: number | null;
  /** Swarm's last `completed` of the layer, ms after the layer started. */
  swarmDone: number | null;
}
interface RawRun {
  layers: LayerFig[];
  ms: number;
  load: number;
}
interface ActLayer extends LayerFig {
  /** Layer start → `Gate: watching` (ledger, upload, snapshot, `docker stack deploy`), the gate, gate end → layer end. */
  before: number | null;
  gate: number | null;
  after: number | null;
  polls: number | null;
}
interface ActRun {
  layers: ActLayer[];
  ms: number;
  /** Start → first layer (connect, checks, the registry look-ups, lock) and last layer → exit. */
  head: number | null;
  tail: number | null;
  postMs: number;
  load: number;
}
interface LayerCount extends GateCount {
  stack: string;
}
interface Counted {
  layers: LayerCount[];
  calls: Call[];
  requests: Call[];
  totalMs: number;
}

function baseInputs(): Record<string, string> {
  return {
    ...labInputs(N.lab, PREFIX, REMOTE_DIR),
    stacks: LAYERS.map((l) => `${l.stack}=stacks/${l.file}`).join('\n'),
    timeout: '240',
    'lock-timeout': '120',
  };
}

async function rawRun(version: string): Promise<RawRun> {
  await settle();
  log(`raw: ssh docker stack deploy --detach=false, layer by layer → ${version}`);
  const load = os.loadavg()[0];
  const t0 = Date.now();
  const starts: number[] = [];
  const layers: LayerFig[] = [];
  for (const l of LAYERS) {
    const file = rawFile(l, version);
    const start = Date.now();
    starts.push(start);
    const r = await run(
      'ssh',
      [...sshArgs(N.lab), 'docker', 'stack', 'deploy', '--detach=false', '-c', file, l.stack],
      { timeoutMs: 600_000 },
    );
    const ms = Date.now() - start;
    fs.writeFileSync(
      path.join(LOGS, `${nextSeq()}-raw-${l.stack}-${version}.log`),
      `${r.stdout}\n--- stderr\n${r.stderr}`,
    );
    if (r.code !== 0)
      throw new Error(`raw deploy ${l.stack} ${version}: exit ${r.code}: ${r.stderr.trim().slice(-2000)}`);
    layers.push({ ms, swarmDone: null });
  }
  const ms = Date.now() - t0;
  await settle();
  for (const [i, l] of LAYERS.entries())
    layers[i].swarmDone = swarmDone(await expectVersion(l, version, `raw deploy ${version}`), starts[i]);
  return { layers, ms, load };
}

async function actionRun(ws: string, version: string): Promise<ActRun> {
  setVersions(ws, version);
  await settle();
  log(`action: three layers in one run (stability 0) → ${version}`);
  const t: Timed = await stampedAction({
    inputs: { ...baseInputs(), release: version, stability: '0' },
    cwd: ws,
    label: `action-${version}`,
    logsDir: LOGS,
  });
  mustSucceed(t, 'deployed', LOGS);
  const spans = layerSpans(t.main, STACKS);
  await settle();
  const layers: ActLayer[] = [];
  for (const [i, l] of LAYERS.entries()) {
    const s = spans[i];
    const d = (a: number | null, b: number | null) => (a !== null && b !== null ? b - a : null);
    const services = await expectVersion(l, version, `action deploy ${version}`);
    layers.push({
      ms: d(s.start, s.end),
      swarmDone: s.start === null ? null : swarmDone(services, s.start),
      before: d(s.start, s.gateStart),
      gate: d(s.gateStart, s.gateEnd),
      after: d(s.gateEnd, s.end),
      polls: s.polls,
    });
  }
  const exit = exitAt(t.main);
  return {
    layers,
    ms: t.ms,
    head: spans[0].start === null ? null : spans[0].start - t.start,
    tail: exit !== null && spans[spans.length - 1].end !== null ? exit - (spans[spans.length - 1].end as number) : null,
    postMs: t.postMs,
    load: t.load,
  };
}

/** The same three-layer deploy with RUNNER_DEBUG=1: its remote commands and Engine API requests, each layer's gate from its own lines. */
async function countedRun(ws: string, version: string): Promise<Counted> {
  setVersions(ws, version);
  await settle();
  log(`action with RUNNER_DEBUG=1 (remote commands and Engine API requests listed) → ${version}`);
  const t = await stampedAction({
    inputs: { ...baseInputs(), release: version, stability: '0' },
    cwd: ws,
    label: `debug-${version}`,
    logsDir: LOGS,
    env: { RUNNER_DEBUG: '1' },
  });
  mustSucceed(t, 'deployed', LOGS);
  const calls = debugCalls(t.main);
  const spans = layerSpans(t.main, STACKS);
  const layers = LAYERS.map((l, i): LayerCount => {
    const s = spans[i];
    if (s.gateStart === null || s.gateEnd === null)
      throw new Error(`debug deploy ${version}: no gate lines for ${l.stack}`);
    return { stack: l.stack, ...gateCount(s, calls) };
  });
  await settle();
  for (const l of LAYERS) await expectVersion(l, version, `debug deploy ${version}`);
  return { layers, calls: calls.commands, requests: calls.requests, totalMs: t.ms };
}

// ------------------------------------------------------------------- report

interface Results {
  raw: RawRun[];
  act: ActRun[];
  counted?: Counted;
  placed: Map<string, string>;
}

function report(
  r: Results,
  meta: {
    lab: LabEnv;
    started: Date;
    seconds: number;
    loads: number[];
    dockerHost: string;
    dockerNodes: string;
    code: string;
    errors: string[];
    labUp: string;
  },
): string {
  const out: string[] = [];
  const loadMin = Math.min(...meta.loads);
  const loadMax = Math.max(...meta.loads);
  out.push('## 3-node Swarm: a Sprocket-sized layered deploy (issue 15)', '');
  out.push(
    'Written by `npm run bench:nodes` (`bench/multinode.ts`) from figures measured on the 3-node lab in this run; `npm run bench` keeps this section.',
    '',
  );
  if (RUNS < 3)
    out.push(
      `> **Validation run** (BENCH_RUNS=${RUNS}): one run per figure. It proves the script; reference figures are a median of 3 (\`npm run bench:nodes\`).`,
      '',
    );
  if (NOTE) out.push(`> ${NOTE}`, '');
  out.push(
    `- Date: ${meta.started.toISOString().replace(/\.\d+Z$/, 'Z')}; this run took ${duration(meta.seconds)} (BENCH_RUNS=${RUNS}; ${meta.labUp}).`,
    `- Machine: ${machineLine()}.`,
    `- Docker: ${meta.dockerHost} on this machine (the CLI of both sides); the nodes: ${meta.dockerNodes}. Lab: \`bash lab/lab.sh up --nodes 3\` (lab/multinode.sh): a manager (zone a) and two workers (zones b, c), each a dockerd in its own network namespace on one bridge, the registry on the bridge address (${meta.lab.registry}), the sshd both sides go through in the manager's namespace (${meta.lab.user}@${meta.lab.host}:${meta.lab.port}).`,
    `- Code: ${meta.code}.`,
    `- Load average (1 min) before the measured runs: ${loadMin.toFixed(2)}–${loadMax.toFixed(2)}.`,
    `- Stacks: three layers deployed in order, ${LAYERS.map((l) => `\`${l.stack}\` (${l.services.length})`).join(', ')}, ${ALL.length} services, 1 replica each, every one its own image \`FROM lab/base:1\` (busybox httpd serving /health), healthcheck every ${HEALTH_INTERVAL} (timeout 5 s, retries 3), \`update_config: {parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s}\`, \`endpoint_mode: dnsrr\`, one overlay network (\`${NETWORK}\`, MTU 1450) created by the ingress layer and joined by the others. Every measured deploy changes the version of all ${ALL.length} services.`,
    '',
  );
  out.push('| layer | services (constraint → node the task ran on) |', '| --- | --- |');
  for (const l of LAYERS)
    out.push(
      `| \`${l.stack}\` | ${l.services.map((s) => `${s.name} (${s.place ? `\`${s.place}\`` : 'spread'} → ${r.placed.get(`${l.stack}_${s.name}`) ?? '?'})`).join(', ')} |`,
    );
  out.push('');

  out.push('### Per layer: the action against raw `docker stack deploy`', '');
  out.push(
    `Median of ${RUNS} run${RUNS > 1 ? 's' : ''}, raw and action alternating (each starts with the three stacks converged, all containers healthy, ${SETTLE_MS / 1000} s pause). Raw: one \`ssh … docker stack deploy --detach=false -c FILE STACK\` per layer, the next one started when the previous returned. Action: one \`node dist/index.js\` run deploying the three layers (\`stability: 0\`); a layer is its \`::group::Layer …\` line to its \`::endgroup::\` (ledger, upload of the stack file, snapshot, \`docker stack deploy\`, gate, ledger, secret pruning). Seconds; a ratio is the median of each run's own ratio.`,
    '',
  );
  out.push(
    '| layer | services | raw | action | ratio action/raw | Swarm `completed` after the layer started (raw / action) | action: layer start → deploy returned / gate / gate end → layer end | gate polls (action) |',
  );
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [i, l] of LAYERS.entries()) {
    const raw = r.raw.map((x) => x.layers[i]);
    const act = r.act.map((x) => x.layers[i]);
    const ratio = median(
      r.raw.map((x, k) =>
        r.act[k] && x.layers[i].ms && r.act[k].layers[i].ms !== null
          ? (r.act[k].layers[i].ms as number) / (x.layers[i].ms as number)
          : null,
      ),
    );
    out.push(
      `| \`${l.stack}\` | ${l.services.length} | ${s1(median(raw.map((x) => x.ms)))} | ${s1(median(act.map((x) => x.ms)))} | ${x2(ratio)} | ${s1(median(raw.map((x) => x.swarmDone)))} / ${s1(median(act.map((x) => x.swarmDone)))} | ${s2(median(act.map((x) => x.before)))} / ${s2(median(act.map((x) => x.gate)))} / ${s2(median(act.map((x) => x.after)))} | ${median(act.map((x) => x.polls)) ?? '—'} |`,
    );
  }
  const sumLayers = (x: { layers: LayerFig[] }) =>
    x.layers.every((y) => y.ms !== null) ? x.layers.reduce((a, y) => a + (y.ms as number), 0) : null;
  const layerRatio = median(
    r.raw.map((x, k) =>
      r.act[k] && sumLayers(x) && sumLayers(r.act[k]) !== null
        ? (sumLayers(r.act[k]) as number) / (sumLayers(x) as number)
        : null,
    ),
  );
  out.push(
    `| **three layers** | ${ALL.length} | ${s1(median(r.raw.map(sumLayers)))} | ${s1(median(r.act.map(sumLayers)))} | ${x2(layerRatio)} | | | |`,
  );
  const wholeRatio = median(r.raw.map((x, k) => (r.act[k] ? r.act[k].ms / x.ms : null)));
  out.push(
    `| **whole run** (raw: the three \`ssh\`; action: process start → exit) | ${ALL.length} | ${s1(median(r.raw.map((x) => x.ms)))} | ${s1(median(r.act.map((x) => x.ms)))} | ${x2(wholeRatio)} | | before the first layer ${s2(median(r.act.map((x) => x.head)))}, after the last ${s2(median(r.act.map((x) => x.tail)))} | |`,
  );
  out.push('');
  out.push(
    `"Before the first layer": node start and bundle load, inputs, pre-flight checks, SSH connect, the engine's \`GET /info\` and one shell command (the host's clock, home and which engine its CLI uses), the swarm's configs and nodes, the host MTU, the lock of the three stacks, and the registry look-up of the ${ALL.length} images on the host (\`GET /distribution/…\` on the engine, one per image; \`docker manifest inspect\` for any answer but "there"). The post step (separate, ${s2(median(r.act.map((x) => x.postMs)))} s) is not counted.`,
    '',
  );
  if (RUNS > 1) {
    out.push(
      '<details><summary>Every run (s)</summary>',
      '',
      '| layer | raw | action | ratio |',
      '| --- | --- | --- | --- |',
    );
    for (const [i, l] of LAYERS.entries()) {
      out.push(
        `| \`${l.stack}\` | ${list(
          r.raw.map((x) => x.layers[i].ms),
          s1,
        )} | ${list(
          r.act.map((x) => x.layers[i].ms),
          s1,
        )} | ${r.raw.map((x, k) => (r.act[k] && x.layers[i].ms && r.act[k].layers[i].ms !== null ? x2((r.act[k].layers[i].ms as number) / (x.layers[i].ms as number)) : '—')).join(', ')} |`,
      );
    }
    out.push(
      `| whole run | ${list(
        r.raw.map((x) => x.ms),
        s1,
      )} | ${list(
        r.act.map((x) => x.ms),
        s1,
      )} | ${r.raw.map((x, k) => (r.act[k] ? x2(r.act[k].ms / x.ms) : '—')).join(', ')} |`,
    );
    out.push('', '</details>', '');
  }

  out.push('### The gate: Engine API requests per poll, per layer', '');
  const c = r.counted;
  if (!c) out.push('Not measured (the run failed before it).', '');
  else {
    out.push(
      'The same three-layer deploy (`stability: 0`) once more through the runner emulation with `RUNNER_DEBUG=1`: the action logs every remote command with its exit code and duration, and every Engine API request (the gate keeps one HTTP/1.1 connection to the Engine API, the engine\'s socket forwarded by sshd on the SSH connection, and reads the stack with two GET requests per poll). "During the gate": started between the layer\'s `Gate: watching` line and its closing line `Gate: <n> polls in …`. One poll: from the start of its `/services` request to the end of its `/tasks` request.',
      '',
    );
    out.push(
      "| layer | polls (the gate's closing line) | Engine API requests during the gate | requests per poll | remote commands during the gate | one poll, median (min–max), s | gate, s |",
    );
    out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const l of c.layers) {
      const pm = l.pollMs;
      const cmds = l.commands ? `${l.commands} (${l.commandKinds.join(', ')})` : '0';
      out.push(
        `| \`${l.stack}\` | ${l.polls ?? '—'} | ${l.requests} | ${l.polls ? (l.requests / l.polls).toFixed(2) : '—'} | ${cmds} | ${pm.length ? `${s2(median(pm))} (${s2(Math.min(...pm))}–${s2(Math.max(...pm))})` : '—'} | ${s2(l.gateMs)} |`,
      );
    }
    out.push('');
    const kinds = [...new Set(c.calls.map((x) => x.kind))];
    out.push(
      `Every remote command of that deploy (${c.calls.length}; and ${c.requests.length} Engine API requests; main step ${s2(c.totalMs)} s):`,
      '',
    );
    out.push('| remote command | count | total s |', '| --- | ---: | ---: |');
    for (const k of kinds) {
      const cs = c.calls.filter((x) => x.kind === k);
      out.push(`| ${k} | ${cs.length} | ${s2(cs.reduce((a, x) => a + x.ms, 0))} |`);
    }
    out.push('');
  }

  out.push('### What the comparison includes', '');
  out.push(
    '- **Raw** is what a workflow gluing `ssh` to the CLI does: per layer one `ssh` process (key auth, pinned host key) running `docker stack deploy --detach=false` with an already interpolated file already on the host, whose CLI returns once every service of the layer converged and passed its `monitor`. It checks nothing (it exits 0 when Swarm rolled an update back) and takes no lock.',
    "- **The action** per layer also reads and writes the host's ledger, uploads the stack file into a release folder, snapshots the stack, runs `docker stack deploy --detach=true` and then the gate (every 0.1 s while the update is under way, 0.25 s in a stability window, a poll of two Engine API requests over one connection kept open for the job, until every service reports `completed` and runs the new image on all its tasks), and prunes old secrets; once per run it connects, checks, locks and looks the images up in the registry.",
    '- With `stability: auto` (the default) the gate also watches every service for a window after `completed`, time raw does not spend because raw does not watch.',
    '',
  );
  out.push('### Rerun', '');
  out.push(
    '```sh',
    'npm run bench:nodes               # brings the 3-node lab up if needed (and down again); BENCH_RUNS=3',
    'BENCH_RUNS=1 npm run bench:nodes  # a quick validation run',
    '```',
    '',
  );
  out.push(
    `Stacks ${STACKS.map((s) => `\`${s}\``).join(', ')}, network \`${NETWORK}\`, images \`<registry>/${PREFIX}/<service>\`, remote-dir \`${REMOTE_DIR}\`: removed at the end. Logs of every run in \`.bench-nodes/logs/\` (gitignored).`,
    '',
  );
  if (meta.errors.length) out.push('### Errors in this run', '', '```text', ...meta.errors, '```', '');
  return out.join('\n');
}

// --------------------------------------------------------------------- main

/** Removes the bench stacks (the later layers first: they use the ingress layer's network), waits for their tasks on every node. */
async function removeStacks(): Promise<void> {
  for (const stack of [...STACKS].reverse()) {
    if (!(await stackIds(stack, M()).catch(() => ['?'])).length) continue;
    await docker([...M(), 'stack', 'rm', stack]);
  }
  await waitFor(
    async () => {
      for (const stack of STACKS) if ((await stackIds(stack, M())).length) return false;
      const ps = await Promise.all(
        Object.values(N.hosts).map((h) =>
          dockerOk(['-H', h, 'ps', '-aq', '--filter', `label=${NS_LABEL}`, '--format', `{{.Label "${NS_LABEL}"}}`]),
        ),
      );
      if (
        ps
          .join('\n')
          .split('\n')
          .some((s) => STACKS.includes(s.trim()))
      )
        return false;
      const nets = (await dockerOk([...M(), 'network', 'ls', '-q', '--filter', `name=${NETWORK}`])).trim();
      // A network can outlive `stack rm` when it raced with task shutdown.
      if (nets) for (const id of nets.split(/\s+/)) await docker([...M(), 'network', 'rm', id]);
      return !nets;
    },
    {
      timeoutMs: 180_000,
      intervalMs: 1000,
      what: `stacks ${STACKS.join(', ')} to be removed (services, containers on every node, network ${NETWORK})`,
    },
  );
}

async function cleanup(images: string[]): Promise<void> {
  await removeStacks().catch((e: Error) => log(`could not remove the stacks: ${e.message}`));
  await onHost(N.lab, `rm -rf ${REMOTE_DIR}`).catch((e: Error) =>
    log(`could not remove ~/${REMOTE_DIR}: ${e.message}`),
  );
  // The tags on the manager (built there) and the images the workers pulled.
  for (const h of Object.values(N.hosts)) {
    const ours = (await docker(['-H', h, 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'])).stdout
      .split('\n')
      .filter((x) => x.startsWith(`${N.lab.registry}/${PREFIX}/`));
    const refs = [...new Set([...ours, ...(h === N.hosts.manager ? images : [])])];
    for (let i = 0; i < refs.length; i += 50) await docker(['-H', h, 'rmi', ...refs.slice(i, i + 50)]);
  }
  for (const d of ['images', 'raw', 'stamps', 'ws']) fs.rmSync(path.join(WORK, d), { recursive: true, force: true });
}

async function main(): Promise<void> {
  const started = new Date();
  let broughtUp = false;
  let labUp = 'the 3-node lab was up';
  if (!(await labIsUp())) {
    log('bringing the 3-node lab up (bash lab/lab.sh up --nodes 3)');
    const t = Date.now();
    broughtUp = true;
    const up = await labCmd('up');
    if (up.code !== 0) throw new Error(`bash lab/lab.sh up --nodes 3 failed:\n${up.stderr.slice(-3000)}`);
    labUp = `the 3-node lab brought up for it in ${Math.round((Date.now() - t) / 1000)} s${KEEP ? '' : ' and taken down after'}`;
  }
  let images: string[] = [];
  const errors: string[] = [];
  const res: Results = { raw: [], act: [], placed: new Map() };
  let interrupted = false;
  try {
    N = await nodesEnv();
    fs.mkdirSync(LOGS, { recursive: true });
    for (const f of fs.readdirSync(LOGS)) fs.rmSync(path.join(LOGS, f), { force: true });
    process.once('SIGINT', () => {
      interrupted = true;
      log('interrupted: removing the bench stacks');
      void cleanup(images).finally(async () => {
        if (broughtUp && !KEEP) await labCmd('down');
        process.exit(130);
      });
    });

    // Leftovers of an interrupted run are ours by name.
    await removeStacks();
    await onHost(N.lab, `rm -rf ${REMOTE_DIR}`);

    const code = codeState();
    const dockerHost = dockerVersions();
    const dockerNodes = dockerVersions(M());
    const versions = Array.from({ length: 2 * RUNS + 2 }, (_, i) => ver(i));
    log(
      `building and pushing ${versions.length} versions × ${ALL.length} services (on the manager's engine, to ${N.lab.registry})`,
    );
    let t = Date.now();
    images = await buildImages(
      M(),
      path.join(WORK, 'images'),
      versions.map((v) => ({ version: v, refs: ALL.map((s) => imageRef(s, v)) })),
    );
    log(`images ready in ${Math.round((Date.now() - t) / 1000)} s`);

    const ws = makeWorkspace();
    let k = 0;
    try {
      // The first deploy creates the stacks (not measured).
      t = Date.now();
      setVersions(ws, ver(k));
      log(`first deploy of the three layers (not measured) → ${ver(k)}`);
      mustSucceed(
        await stampedAction({
          inputs: { ...baseInputs(), release: ver(k), stability: '0' },
          cwd: ws,
          label: `setup-${ver(k)}`,
          logsDir: LOGS,
        }),
        'deployed',
        LOGS,
      );
      k++;
      await settle();
      res.placed = await placement();
      log(`stacks up in ${Math.round((Date.now() - t) / 1000)} s`);
      for (let i = 1; i <= RUNS && !interrupted; i++) {
        // Alternate which goes first, so that a drift in the machine's load does not favour one side.
        if (i % 2 === 1) {
          res.raw.push(await rawRun(ver(k++)));
          res.act.push(await actionRun(ws, ver(k++)));
        } else {
          res.act.push(await actionRun(ws, ver(k++)));
          res.raw.push(await rawRun(ver(k++)));
        }
        log(
          `run ${i}/${RUNS}: raw ${s1(res.raw[res.raw.length - 1].ms)} s, action ${s1(res.act[res.act.length - 1].ms)} s`,
        );
      }
      if (!interrupted) res.counted = await countedRun(ws, ver(k++));
    } catch (e) {
      errors.push((e as Error).message);
      log(`FAILED: ${(e as Error).message.split('\n')[0]}`);
    }
    if (interrupted) return;
    const seconds = Math.round((Date.now() - started.getTime()) / 1000);
    const loads = [...res.raw.map((x) => x.load), ...res.act.map((x) => x.load)];
    const body = report(res, {
      lab: N.lab,
      started,
      seconds,
      loads: loads.length ? loads : [os.loadavg()[0]],
      dockerHost,
      dockerNodes,
      code,
      errors,
      labUp,
    });
    fs.writeFileSync(BENCHMARKS, putSection(readBenchmarks() || '# Benchmarks\n', SECTION, body));
    fs.writeFileSync(
      path.join(WORK, 'results.json'),
      JSON.stringify(
        {
          started,
          seconds,
          runs: RUNS,
          raw: res.raw,
          act: res.act,
          counted: res.counted && { ...res.counted, calls: undefined, requests: undefined },
        },
        null,
        1,
      ),
    );
    log(
      `wrote the bench:nodes section of ${path.relative(process.cwd(), BENCHMARKS)} (${duration(seconds)})${errors.length ? ` with ${errors.length} error(s)` : ''}`,
    );
    if (errors.length) process.exitCode = 1;
  } finally {
    if (!interrupted) {
      if (N) await cleanup(images);
      if (broughtUp && !KEEP) {
        log('taking the 3-node lab down (bash lab/lab.sh down --nodes 3)');
        const down = await labCmd('down');
        if (down.code !== 0) log(`bash lab/lab.sh down --nodes 3 failed: ${down.stderr.slice(-2000)}`);
      }
    }
  }
}

export { report, makeWorkspace, setVersions, baseInputs, LAYERS, WORK };

if (require.main === module) {
  main().catch((e: Error) => {
    log(`failed: ${e.stack ?? e.message}`);
    process.exitCode = 1;
  });
}
