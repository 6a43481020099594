// What the benchmarks share (bench/bench.ts on the 1-node lab, bench/multinode.ts on the 3-node lab):
// settings from the environment, the tiny service image, the action run through the project's runner
// emulation (__tests__/helpers/action.ts: every line with the time it arrived), the remote commands and
// Engine API requests read from the action's own debug log (RUNNER_DEBUG=1), the figures' formatting,
// and the sections of BENCHMARKS.md each script owns.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActionRun, runAction } from '../__tests__/helpers/action';
import { LabEnv, REPO_ROOT, dockerOk, run } from '../__tests__/helpers/lab';

// ------------------------------------------------------------------ settings

export function envInt(name: string, dflt: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  return n;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let logTag = 'bench';
export function setLogTag(tag: string): void {
  logTag = tag;
}
export function log(msg: string): void {
  process.stderr.write(`[${logTag} ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(width, queue.length) }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t);
    }),
  );
}

let seq = 0;
/** Numbers the log files of one benchmark run, in the order things ran. */
export const nextSeq = () => String(++seq).padStart(3, '0');

// -------------------------------------------------------------------- images

const ENTRY_SH = `#!/bin/sh
# A tiny service: busybox httpd serving /health and /version; MODE=crash exits 3 at once.
mode="$(cat /app/MODE 2>/dev/null || echo ok)"
if [ "$mode" = crash ]; then
  echo "fatal: refusing to start (MODE=crash)" >&2
  exit 3
fi
httpd -f -p 8080 -h /app/www &
pid=$!
trap 'kill "$pid" 2>/dev/null; exit 143' TERM INT
wait "$pid"
`;

export const DOCKERFILE = `FROM lab/base:1
COPY app /app
ENTRYPOINT ["/bin/sh", "/app/entry.sh"]
`;

export interface ImageVersion {
  version: string;
  crash?: boolean;
  /** Every reference this build is tagged and pushed as (the first is built). */
  refs: string[];
}

/**
 * One build per version (`FROM lab/base:1`, the version in /app/www/version), tagged with every
 * reference given and pushed. `docker` is the CLI's leading arguments (`['-H', sock]` for a lab
 * node's engine). Returns the references pushed.
 */
export async function buildImages(docker: string[], workDir: string, versions: ImageVersion[]): Promise<string[]> {
  const pushed: string[] = [];
  for (const v of versions) {
    const ctx = path.join(workDir, v.version);
    fs.rmSync(ctx, { recursive: true, force: true });
    fs.mkdirSync(path.join(ctx, 'app', 'www'), { recursive: true });
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), DOCKERFILE);
    fs.writeFileSync(path.join(ctx, 'app', 'entry.sh'), ENTRY_SH, { mode: 0o755 });
    fs.writeFileSync(path.join(ctx, 'app', 'MODE'), v.crash ? 'crash\n' : 'ok\n');
    fs.writeFileSync(path.join(ctx, 'app', 'www', 'health'), 'ok\n');
    fs.writeFileSync(path.join(ctx, 'app', 'www', 'version'), `${v.version}\n`);
    const [first, ...rest] = v.refs;
    await dockerOk([...docker, 'build', '-q', '-t', first, ctx], { timeoutMs: 300_000 });
    for (const t of rest) await dockerOk([...docker, 'tag', first, t]);
    await pool(v.refs, 4, (t) => dockerOk([...docker, 'push', '-q', t], { timeoutMs: 180_000 }));
    pushed.push(...v.refs);
  }
  return pushed;
}

// -------------------------------------------------------------- swarm state

export interface SvcNow {
  name: string;
  image: string;
  state: string;
  completedAt: string;
}

/** The services of a stack (`docker` is the CLI's leading arguments: `['-H', sock]` for a lab node). */
export async function stackIds(stack: string, docker: string[] = []): Promise<string[]> {
  return (await dockerOk([...docker, 'service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${stack}`]))
    .trim()
    .split(/\s+/)
    .filter(Boolean);
}

/** Name, image and UpdateStatus of every service of a stack. */
export async function stackServices(stack: string, docker: string[] = []): Promise<SvcNow[]> {
  const ids = await stackIds(stack, docker);
  if (!ids.length) return [];
  const text = await dockerOk([
    ...docker,
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
    });
}

/** Host clock (this machine) of a Go RFC 3339 time with nanoseconds. */
export const parseGoTime = (s: string): number | null =>
  s && !s.startsWith('0001') ? Date.parse(s.replace(/(\.\d{3})\d+/, '$1')) || null : null;
export const tagOf = (image: string) => image.split('@')[0].split(':').pop() ?? '';

/** When Swarm marked the last service's update completed, in ms after `start` (null if some service has no completed update). */
export function swarmDone(services: SvcNow[], start: number): number | null {
  const times = services.map((s) => (s.state === 'completed' ? parseGoTime(s.completedAt) : null));
  if (times.some((t) => t === null)) return null;
  return Math.max(...(times as number[])) - start;
}

// ---------------------------------------------------------------- raw path

/** `ssh` to the lab's sshd, as the action connects: its key, the pinned host key, no prompt. */
export function sshArgs(lab: LabEnv): string[] {
  return [
    '-i',
    lab.sshKeyFile,
    '-o',
    `UserKnownHostsFile=${lab.knownHostsFile}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-p',
    String(lab.port),
    `${lab.user}@${lab.host}`,
  ];
}

export async function onHost(lab: LabEnv, script: string): Promise<string> {
  const r = await run('ssh', [...sshArgs(lab), script], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`on the host: ${script}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------- the action path

/** A line of the main step with the time it arrived, or the step's start and exit. */
export interface Stamp {
  t: number;
  line?: string;
  ev?: 'start' | 'exit';
}

export interface Timed {
  label: string;
  start: number;
  /** Main step, spawn to close, as runAction measures it. */
  ms: number;
  postMs: number;
  run: ActionRun;
  /** The main step's lines with the time each arrived, between its start and exit (the post step's are left out). */
  main: Stamp[];
  load: number;
}

/** Logs are kept without the `::add-mask::` lines, which carry the SSH key. */
export const scrub = (text: string) =>
  text
    .split('\n')
    .filter((l) => !/^\s*-?\d*\s*::add-mask::/.test(l))
    .join('\n');

export interface StampedRun {
  inputs: Record<string, string>;
  cwd: string;
  label: string;
  /** Where the timed log goes. */
  logsDir: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** The action (dist/index.js, main and post step) run by the runner emulation, every line timed. */
export async function stampedAction(o: StampedRun): Promise<Timed> {
  const n = nextSeq();
  fs.mkdirSync(o.logsDir, { recursive: true });
  const load = os.loadavg()[0];
  const start = Date.now();
  const r = await runAction({ inputs: o.inputs, cwd: o.cwd, timeoutMs: o.timeoutMs ?? 600_000, env: o.env });
  const main: Stamp[] = [
    { t: start, ev: 'start' },
    ...r.lines.map((l) => ({ t: l.t, line: l.text })),
    { t: start + r.durationMs, ev: 'exit' },
  ];
  // The log with each line's time since the command started (ms), then the post step's.
  const timed = main.map(
    (s) => `${String(s.t - start).padStart(6)}  ${s.ev ? `[${s.ev}${s.ev === 'exit' ? ` ${r.code}` : ''}]` : s.line}`,
  );
  const post = `--- post step (exit ${r.postCode}, ${r.postDurationMs} ms)\n${r.postLog}`;
  fs.writeFileSync(path.join(o.logsDir, `${n}-${o.label}.log`), scrub(`${timed.join('\n')}\n${post}`) + '\n');
  return { label: o.label, start, ms: r.durationMs, postMs: r.postDurationMs, run: r, main, load };
}

export function mustSucceed(t: Timed, result: string, logsDir: string): void {
  if (t.run.code !== 0 || t.run.outputs.result !== result) {
    throw new Error(
      `${t.label}: the action exited ${t.run.code} with result "${t.run.outputs.result}" (wanted ${result}); log in ${logsDir}:\n${t.run.log.split('\n').slice(-25).join('\n')}`,
    );
  }
}

export const firstAt = (stamps: Stamp[], re: RegExp, from = 0) =>
  stamps.slice(from).find((s) => s.line !== undefined && re.test(s.line))?.t ?? null;
export const lastAt = (stamps: Stamp[], re: RegExp) =>
  [...stamps].reverse().find((s) => s.line !== undefined && re.test(s.line))?.t ?? null;
export const exitAt = (stamps: Stamp[]) => stamps.find((s) => s.ev === 'exit')?.t ?? null;

export const GATE_START = /^Gate: watching /;
export const GATE_LINE = (verdict: string) => new RegExp(`^  \\S+: ${verdict}: `);
/** The gate's closing line: `Gate: <n> polls in <s> s (<c> remote commands and <r> Engine API requests so far in this job).` */
export const GATE_END = /^Gate: (\d+) polls in [\d.]+ s \((\d+) remote commands and (\d+) Engine API requests so far/;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface LayerSpan {
  stack: string;
  /** `::group::Layer <stack> …` → its `::endgroup::`, host ms. */
  start: number | null;
  end: number | null;
  /** `Gate: watching … of <stack>` → the gate's closing line. */
  gateStart: number | null;
  gateEnd: number | null;
  /** From the closing line: the gate's poll count, and the job's remote commands and Engine API requests so far. */
  polls: number | null;
  commandsSoFar: number | null;
  requestsSoFar: number | null;
  /** The closing line itself. */
  gateLine: string | null;
  /** Indexes in the stamps of `Gate: watching` and of the closing line (the log's order is the action's). */
  gateFrom: number | null;
  gateTo: number | null;
}

/** Where each layer of a multi-layer run starts and ends in its timed lines. */
export function layerSpans(stamps: Stamp[], stacks: string[]): LayerSpan[] {
  return stacks.map((stack) => {
    const i = stamps.findIndex(
      (s) => s.line !== undefined && new RegExp(`^::group::Layer ${escapeRe(stack)} `).test(s.line),
    );
    const span: LayerSpan = {
      stack,
      start: null,
      end: null,
      gateStart: null,
      gateEnd: null,
      polls: null,
      commandsSoFar: null,
      requestsSoFar: null,
      gateLine: null,
      gateFrom: null,
      gateTo: null,
    };
    if (i < 0) return span;
    span.start = stamps[i].t;
    const j = stamps.findIndex((s, k) => k > i && s.line === '::endgroup::');
    if (j >= 0) span.end = stamps[j].t;
    const inLayer = (k: number) => k >= i && (j < 0 || k <= j);
    const watching = new RegExp(`^Gate: watching .* of ${escapeRe(stack)};`);
    const from = stamps.findIndex((s, k) => inLayer(k) && s.line !== undefined && watching.test(s.line));
    if (from >= 0) [span.gateFrom, span.gateStart] = [from, stamps[from].t];
    const to = stamps.findIndex((s, k) => inLayer(k) && s.line !== undefined && GATE_END.test(s.line));
    const close = to >= 0 ? stamps[to] : undefined;
    if (close) {
      span.gateTo = to;
      const m = GATE_END.exec(close.line as string) as RegExpExecArray;
      span.gateEnd = close.t;
      span.polls = Number(m[1]);
      span.commandsSoFar = Number(m[2]);
      span.requestsSoFar = Number(m[3]);
      span.gateLine = close.line as string;
    }
    return span;
  });
}

// ------------------------------------------------ the action's debug log

/** A remote command or an Engine API request, from the action's debug log (RUNNER_DEBUG=1). */
export interface Call {
  /** When it started (the line's time minus its duration), host ms. */
  t: number;
  ms: number;
  kind: string;
  /** Exit code, `open` (the Engine API connection), `ok`, or `error`. */
  end: string;
  /** Index of its line in the stamps: lines come in the action's order, their times in batches. */
  i: number;
}

export function kindOf(script: string): string {
  if (/dial-stdio/.test(script)) return 'Engine API connection (`docker system dial-stdio`, the polls use it)';
  if (/^engine socket /.test(script)) return "Engine API connection (the engine's socket, forwarded by sshd)";
  if (/currentContext/.test(script)) return 'host facts (clock, home, which engine the CLI uses)';
  if (/docker stack deploy/.test(script)) return 'docker stack deploy';
  if (/docker version --format/.test(script)) return 'docker version + info';
  if (/docker --version/.test(script)) return 'docker --version (the CLI, for its flags)';
  if (/docker config ls/.test(script)) return 'Swarm configs (pre-flight)';
  if (/Swarm\.NodeAddr|--- addr/.test(script)) return 'host MTU (pre-flight)';
  if (/docker node inspect/.test(script)) return 'Swarm nodes (placement)';
  if (/docker manifest inspect/.test(script)) return 'registry: image there? (docker manifest inspect)';
  if (/RegistryConfig/.test(script)) return "registry: the engine's insecure registries (pre-flight)";
  if (/docker secret ls/.test(script)) return 'Docker secrets: list';
  if (/LC_ALL=C mkdir \S+\/lock 2>&1/.test(script)) return 'lock: take';
  if (/grep -qF/.test(script) && /holder\.json/.test(script)) return 'lock: release';
  if (/ledger\.json/.test(script) && /base64 -d/.test(script)) return 'ledger: write';
  if (/ledger\.json/.test(script)) return 'ledger: read';
  if (/base64 -d/.test(script)) return 'upload a file (here-document)';
  if (/docker service logs/.test(script)) return 'failed task log tail';
  if (/docker service rollback/.test(script)) return 'docker service rollback';
  if (/^rm /.test(script)) return 'prune old releases';
  // Anything else: its first words, so that a new command shows up under its own name.
  return script.replace(/\s+/g, ' ').trim().split(' ').slice(0, 3).join(' ').replace(/[|`]/g, '');
}

// core.debug escapes these in a workflow command's message.
const unescapeCommand = (s: string) => s.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
const DEBUG_COMMAND = /^::debug::\S+@\S+\$ (.*) → (\S+) \((\d+) ms\)$/;
const DEBUG_REQUEST = /^::debug::\S+@\S+ Engine API GET (\S+) → (\S+) \((\d+) ms\)$/;
// The engine's socket forwarded by sshd: a channel, no command; counted with them as the dial is.
const DEBUG_SOCKET = /^::debug::\S+@\S+ Engine API (socket \S+) → (open) \((\d+) ms\)$/;

/** The remote commands and Engine API requests the debug log lists (the action logs each as it ends), by start. */
export function debugCalls(stamps: Stamp[]): { commands: Call[]; requests: Call[] } {
  const commands: Call[] = [];
  const requests: Call[] = [];
  stamps.forEach((s, i) => {
    if (s.line === undefined) return;
    const o = DEBUG_SOCKET.exec(s.line);
    const c = DEBUG_COMMAND.exec(s.line) ?? (o && [o[0], `engine ${o[1]}`, o[2], o[3]]);
    const r = c ? null : DEBUG_REQUEST.exec(s.line);
    if (c)
      commands.push({ t: s.t - Number(c[3]), ms: Number(c[3]), kind: kindOf(unescapeCommand(c[1])), end: c[2], i });
    if (r) requests.push({ t: s.t - Number(r[3]), ms: Number(r[3]), kind: `GET ${r[1]}`, end: r[2], i });
  });
  const byStart = (a: Call, b: Call) => a.t - b.t;
  return { commands: commands.sort(byStart), requests: requests.sort(byStart) };
}

/** Calls logged between two lines (indexes in the stamps): a command is logged as it ends, before the next starts. */
export const callsBetween = (calls: Call[], from: number, to: number) => calls.filter((c) => c.i > from && c.i < to);

/** How long at least one of the calls was running (the Engine API connection opens inside the first request). */
export function unionMs(calls: Call[]): number {
  let total = 0;
  let until = -Infinity;
  for (const c of [...calls].sort((a, b) => a.t - b.t)) {
    const from = Math.max(c.t, until);
    if (c.t + c.ms > from) total += c.t + c.ms - from;
    until = Math.max(until, c.t + c.ms);
  }
  return total;
}

/** One poll is two requests back to back (services, then tasks): from the first's start to the second's end. */
export function pollTimes(requests: Call[]): number[] {
  const out: number[] = [];
  requests.forEach((r, i) => {
    const next = requests[i + 1];
    if (r.kind === 'GET /services' && next?.kind === 'GET /tasks') out.push(next.t + next.ms - r.t);
  });
  return out;
}

/** What the gate did, from its own lines and the debug log. */
export interface GateCount {
  /** The gate's poll count and its closing line. */
  polls: number | null;
  gateLine: string | null;
  /** `Gate: watching` → the closing line, ms. */
  gateMs: number | null;
  /** Engine API requests and remote commands started in that window. */
  requests: number;
  commands: number;
  commandKinds: string[];
  pollMs: number[];
}

export function gateCount(span: LayerSpan, calls: { commands: Call[]; requests: Call[] }): GateCount {
  const inGate = (xs: Call[]) =>
    span.gateFrom === null || span.gateTo === null ? [] : callsBetween(xs, span.gateFrom, span.gateTo);
  const commands = inGate(calls.commands);
  const requests = inGate(calls.requests);
  return {
    polls: span.polls,
    gateLine: span.gateLine,
    gateMs: span.gateStart !== null && span.gateEnd !== null ? span.gateEnd - span.gateStart : null,
    requests: requests.length,
    commands: commands.length,
    commandKinds: [...new Set(commands.map((c) => c.kind))],
    pollMs: pollTimes(requests),
  };
}

/** The part of the main step a remote command belongs to, for "the action's own time". */
export function partOf(kind: string): string {
  if (/^lock/.test(kind)) return 'lock (take, release)';
  if (/^ledger/.test(kind)) return 'ledger (read, write)';
  if (/^upload/.test(kind)) return 'files (upload into the release folder)';
  if (/^docker stack deploy/.test(kind)) return '`docker stack deploy --detach=true`';
  if (/^Engine API|^GET \/(services|tasks)/.test(kind))
    return 'Engine API: connection and the snapshot before the deploy';
  if (/pre-flight|placement|registry|host facts|docker (version|--version)|^GET /.test(kind))
    return 'host checks (engine facts, configs, MTU, registry)';
  return 'other remote commands';
}

export const OWN_PARTS = [
  'start → SSH connected (node, bundle, inputs, VERSION files, pre-flight checks, connect)',
  'host checks (engine facts, configs, MTU, registry)',
  'lock (take, release)',
  'ledger (read, write)',
  'files (upload into the release folder)',
  'Engine API: connection and the snapshot before the deploy',
  '`docker stack deploy --detach=true`',
  'gate (`Gate: watching` → its closing line)',
  'other remote commands',
  'parts that ran at the same time (counted once: minus their overlap)',
  'local work between the remote commands, and exit',
] as const;

/**
 * The main step of a one-layer run with RUNNER_DEBUG=1 cut into parts (ms, summing to the step's
 * time): start → connected, then the remote commands outside the gate by part, the gate, and the rest
 * (work in the node process between commands, the summary, exit).
 */
export function ownTime(t: Timed, stack: string): Record<string, number> | null {
  const connected = firstAt(t.main, /^Connected; host key matches/);
  const [span] = layerSpans(t.main, [stack]);
  if (connected === null || span.gateStart === null || span.gateEnd === null || span.gateFrom === null) return null;
  const calls = debugCalls(t.main);
  const out: Record<string, number> = Object.fromEntries(OWN_PARTS.map((p) => [p, 0]));
  out[OWN_PARTS[0]] = connected - t.start;
  out[OWN_PARTS[7]] = span.gateEnd - span.gateStart;
  const outside = [...calls.commands, ...calls.requests].filter(
    (c) => c.t >= connected && (c.i < span.gateFrom! || c.i > span.gateTo!),
  );
  for (const part of new Set(outside.map((c) => partOf(c.kind))))
    out[part] = unionMs(outside.filter((c) => partOf(c.kind) === part));
  const overlap = OWN_PARTS[OWN_PARTS.length - 2];
  out[overlap] = unionMs(outside) - OWN_PARTS.slice(1, -2).reduce((a, p) => a + (p === OWN_PARTS[7] ? 0 : out[p]), 0);
  const counted = OWN_PARTS.slice(0, -1).reduce((a, p) => a + out[p], 0);
  out[OWN_PARTS[OWN_PARTS.length - 1]] = t.ms - counted;
  return out;
}

// ------------------------------------------------------------------ figures

export function median(xs: (number | null | undefined)[]): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
export const s1 = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : (ms / 1000).toFixed(1));
export const s2 = (ms: number | null | undefined) => (ms === null || ms === undefined ? '—' : (ms / 1000).toFixed(2));
export const x2 = (r: number | null) => (r === null ? '—' : `${r.toFixed(2)}×`);
export const list = (xs: (number | null)[], f: (x: number | null) => string) => xs.map(f).join(', ');
export const ok = (cond: boolean | null) => (cond === null ? '—' : cond ? 'yes' : '**no**');

export function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

/** The commit, and whether src/ or dist/ differ from it (the lab is shared with sessions that edit the tree). */
export function codeState(): string {
  const head = sh('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src', 'dist', 'action.yml']);
  if (dirty === '?' || !dirty) return `commit ${head}, \`src/\` and \`dist/\` unmodified`;
  const files = dirty.split('\n').map((l) => l.slice(3).trim());
  return `commit ${head} **plus uncommitted changes** in ${files.map((f) => `\`${f}\``).join(', ')} (the figures measure the \`dist/index.js\` of the working tree)`;
}

export function machineLine(): string {
  return `${os.cpus().length} CPU (nproc ${sh('nproc', [])}, ${os.cpus()[0]?.model ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}, node ${process.version}`;
}

/** `docker version` of a CLI (its leading arguments select the engine). */
export function dockerVersions(docker: string[] = []): string {
  return `client ${sh('docker', [...docker, 'version', '--format', '{{.Client.Version}}'])}, engine ${sh('docker', [...docker, 'version', '--format', '{{.Server.Version}}'])}`;
}

export const duration = (seconds: number) => `${Math.floor(seconds / 60)} min ${seconds % 60} s`;

// --------------------------------------------------------- BENCHMARKS.md

export const BENCHMARKS = path.join(REPO_ROOT, 'BENCHMARKS.md');

const open = (name: string) => `<!-- bench:${name} -->`;
const close = (name: string) => `<!-- /bench:${name} -->`;

/** The sections of a BENCHMARKS.md text another script owns (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`), markers included. */
export function sections(text: string): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  const re = /<!-- bench:([a-z0-9-]+) -->[\s\S]*?<!-- \/bench:\1 -->/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push({ name: m[1], text: m[0] });
  return out;
}

/** `text` with the section NAME set to `body` (in place, else appended at the end). */
export function putSection(text: string, name: string, body: string): string {
  const block = `${open(name)}\n${body.trim()}\n${close(name)}`;
  const found = sections(text).find((s) => s.name === name);
  if (found) return text.replace(found.text, () => block);
  return `${text.replace(/\s*$/, '')}\n\n${block}\n`;
}

/** A report that rewrites the whole file keeps the sections other scripts own, at the end. */
export function keepSections(oldText: string, report: string): string {
  let out = report;
  for (const s of sections(oldText))
    if (!sections(out).some((x) => x.name === s.name)) out = `${out.replace(/\s*$/, '')}\n\n${s.text}\n`;
  return out;
}

export function readBenchmarks(): string {
  try {
    return fs.readFileSync(BENCHMARKS, 'utf8');
  } catch {
    return '';
  }
}
