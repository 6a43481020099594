// What the benchmarks share (bench/bench.ts on the 1-node lab, bench/multinode.ts on the 3-node lab):
// settings from the environment, the tiny service image, the action run through a thin stamping entry
// (the wall-clock time of every line it prints), the in-process deploy with every remote command
// counted, the figures' formatting, and the sections of BENCHMARKS.md each script owns.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActionRun, DIST_ENTRY, runAction } from '../__tests__/helpers/action';
import { LabEnv, REPO_ROOT, dockerOk, run } from '../__tests__/helpers/lab';
import { commandDeploy } from '../src/commands';
import { readInputs } from '../src/inputs';
import { Remote } from '../src/remote';

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

/**
 * runAction() with a thin entry in front of dist/index.js: it appends every stdout line with the
 * wall-clock time it was written, and the process start and exit, to BENCH_STAMP_FILE; stdout
 * itself is untouched, so runAction sees exactly what the runner would.
 */
const WRAPPER_JS = `'use strict';
const fs = require('fs');
const file = process.env.BENCH_STAMP_FILE;
if (file) {
  const put = (o) => fs.appendFileSync(file, JSON.stringify(o) + '\\n');
  put({ t: Date.now(), ev: 'start' });
  const write = process.stdout.write.bind(process.stdout);
  let buf = '';
  process.stdout.write = function (chunk, ...rest) {
    const t = Date.now();
    buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
      const line = buf.slice(0, i).replace(/\\r$/, '');
      // The masked values (the SSH key) are never written to disk.
      put({ t, line: line.startsWith('::add-mask::') ? '::add-mask::***' : line });
      buf = buf.slice(i + 1);
    }
    return write(chunk, ...rest);
  };
  process.on('exit', (code) => put({ t: Date.now(), ev: 'exit', code }));
}
require(process.env.BENCH_DIST_ENTRY);
`;

/** Writes the stamping entry into `workDir`; returns its path (for StampedRun.entry). */
export function installWrapper(workDir: string): string {
  const f = path.join(workDir, 'stamp-entry.cjs');
  fs.mkdirSync(workDir, { recursive: true });
  fs.writeFileSync(f, WRAPPER_JS);
  return f;
}

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
  /** The main step's lines with their times (the post step's are left out). */
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
  /** installWrapper()'s file. */
  entry: string;
  /** Where the stamps (workDir/stamps) and the timed log (logsDir) go. */
  workDir: string;
  logsDir: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** The action (dist/index.js, main and post step) run as the runner runs it, every line timed. */
export async function stampedAction(o: StampedRun): Promise<Timed> {
  const n = nextSeq();
  const file = path.join(o.workDir, 'stamps', `${n}-${o.label}.jsonl`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.mkdirSync(o.logsDir, { recursive: true });
  const load = os.loadavg()[0];
  const start = Date.now();
  const r = await runAction({
    inputs: o.inputs,
    cwd: o.cwd,
    entry: o.entry,
    timeoutMs: o.timeoutMs ?? 600_000,
    env: { BENCH_STAMP_FILE: file, BENCH_DIST_ENTRY: DIST_ENTRY, ...(o.env ?? {}) },
  });
  const stamps = fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Stamp);
  const postAt = stamps.findIndex((s, i) => i > 0 && s.ev === 'start');
  // The log with each line's time since the command started (ms).
  const timed = stamps.map(
    (s) => `${String(s.t - start).padStart(6)}  ${s.ev ? `[${s.ev}${s.ev === 'exit' ? ` ${r.code}` : ''}]` : s.line}`,
  );
  fs.writeFileSync(path.join(o.logsDir, `${n}-${o.label}.log`), scrub(timed.join('\n')) + '\n');
  return {
    label: o.label,
    start,
    ms: r.durationMs,
    postMs: r.postDurationMs,
    run: r,
    main: postAt < 0 ? stamps : stamps.slice(0, postAt),
    load,
  };
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
/** The gate's closing line: `Gate: <n> polls in <s> s (<m> remote commands so far in this job).` */
export const GATE_END = /^Gate: (\d+) polls in [\d.]+ s \((\d+) remote commands so far/;
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface LayerSpan {
  stack: string;
  /** `::group::Layer <stack> …` → its `::endgroup::`, host ms. */
  start: number | null;
  end: number | null;
  /** `Gate: watching … of <stack>` → the gate's closing line. */
  gateStart: number | null;
  gateEnd: number | null;
  /** From the closing line: the gate's poll count, and Remote.commands of the job so far. */
  polls: number | null;
  commandsSoFar: number | null;
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
    };
    if (i < 0) return span;
    span.start = stamps[i].t;
    const j = stamps.findIndex((s, k) => k > i && s.line === '::endgroup::');
    if (j >= 0) span.end = stamps[j].t;
    const inLayer = stamps.slice(i, j < 0 ? undefined : j + 1);
    span.gateStart = firstAt(inLayer, new RegExp(`^Gate: watching .* of ${escapeRe(stack)};`));
    const close = inLayer.find((s) => s.line !== undefined && GATE_END.test(s.line));
    if (close) {
      const m = GATE_END.exec(close.line as string) as RegExpExecArray;
      span.gateEnd = close.t;
      span.polls = Number(m[1]);
      span.commandsSoFar = Number(m[2]);
    }
    return span;
  });
}

// ---------------------------------------------------- in-process instrumented

export interface Call {
  t: number;
  ms: number;
  kind: string;
}

export function kindOf(script: string): string {
  if (/dial-stdio/.test(script)) return 'Engine API connection (the polls use it)';
  if (/docker stack deploy/.test(script)) return 'docker stack deploy';
  if (/docker version --format/.test(script)) return 'docker version + info';
  if (/docker config ls/.test(script)) return 'Swarm configs (pre-flight)';
  if (/Swarm\.NodeAddr/.test(script)) return 'host MTU (pre-flight)';
  if (/docker manifest inspect/.test(script)) return 'registry: image there? (docker manifest inspect)';
  if (/holder\.json/.test(script) && /mkdir/.test(script)) return 'lock: take';
  if (/grep -qF/.test(script) && /holder\.json/.test(script)) return 'lock: release';
  if (/ledger\.json/.test(script) && /cat > /.test(script)) return 'ledger: write (stdin, own channel)';
  if (/ledger\.json/.test(script)) return 'ledger: read';
  if (/cat > /.test(script)) return 'upload stack file (stdin, own channel)';
  if (/docker service logs/.test(script)) return 'failed task log tail';
  if (/docker service rollback/.test(script)) return 'docker service rollback';
  if (/^rm /.test(script)) return 'prune old releases';
  // Anything else: its first words, so that a new command shows up under its own name.
  return script.replace(/\s+/g, ' ').trim().split(' ').slice(0, 3).join(' ').replace(/[|`]/g, '');
}

export interface InProcess {
  /** Every remote command, by start time. */
  calls: Call[];
  /** The lines the deploy printed, timed. */
  lines: Stamp[];
  /** Remote.commands of the connection (counted by the action itself). */
  remoteCommands: number;
  outcome: Awaited<ReturnType<typeof commandDeploy>>;
  start: number;
  totalMs: number;
}

/**
 * A deploy run in this process from src/ (the bundle is a build of it: __tests__/unit/dist.test.ts),
 * with Remote.prototype.sh wrapped: every remote command is counted, classified and timed. `inputs`
 * are complete (action.yml's defaults included). The log (without `::add-mask::` lines) and the
 * command list go to `logFile`.
 */
export async function inProcessDeploy(inputs: Record<string, string>, ws: string, logFile: string): Promise<InProcess> {
  const proto = Remote.prototype as { sh: Remote['sh'] };
  const origSh = proto.sh;
  const calls: Call[] = [];
  let remote: Remote | undefined;
  proto.sh = async function (this: Remote, script: string, opts?: Parameters<Remote['sh']>[1]) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the patched method sees the instance
    remote = this;
    const t = Date.now();
    try {
      return await origSh.call(this, script, opts);
    } finally {
      calls.push({ t, ms: Date.now() - t, kind: kindOf(script) });
    }
  };
  const lines: Stamp[] = [];
  let buf = '';
  const origWrite = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    const t = Date.now();
    buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push({ t, line: buf.slice(0, i) });
      buf = buf.slice(i + 1);
    }
    return true;
  }) as typeof process.stdout.write;
  const start = Date.now();
  let outcome: InProcess['outcome'];
  try {
    const parsed = readInputs((n) => inputs[n] ?? '', { GITHUB_WORKSPACE: ws, GITHUB_REF: 'refs/heads/main' });
    outcome = await commandDeploy(parsed);
  } finally {
    process.stdout.write = origWrite;
    proto.sh = origSh;
    const cmds = [...calls]
      .sort((a, b) => a.t - b.t)
      .map((c) => `${String(c.t - start).padStart(6)}  ${String(c.ms).padStart(5)} ms  ${c.kind}`);
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    fs.writeFileSync(
      logFile,
      `${scrub(lines.map((l) => `${String(l.t - start).padStart(6)}  ${l.line}`).join('\n'))}\n--- remote commands (start, duration, kind)\n${cmds.join('\n')}\n`,
    );
  }
  calls.sort((a, b) => a.t - b.t);
  return { calls, lines, remoteCommands: remote?.commands ?? -1, outcome, start, totalMs: Date.now() - start };
}

/** Commands started in [from, to): the ledger write can start in the same ms as a closing line. */
export const callsBetween = (calls: Call[], from: number, to: number) => calls.filter((c) => c.t >= from && c.t < to);

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
