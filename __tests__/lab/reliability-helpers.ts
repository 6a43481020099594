// Helpers of the reliability suite (reliability.test.ts): a live runner for dist/index.js that can
// be watched and signalled mid-run, the suite's own sshd and registry instances (never the shared
// ones), and the in-network probe's counters. Node built-ins only.
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DIST_ENTRY,
  WorkflowCommand,
  inputEnvName,
  maskLog,
  parseFileCommands,
  parseWorkflowCommands,
  readInputDefaults,
  runnerEnv,
  inheritedEnv,
} from '../helpers/action';
import { LabEnv, docker, run, tempDir, waitFor } from '../helpers/lab';

// ------------------------------------------------------------------ live action runner

export interface Line {
  /** Date.now() when the line was read from the pipe. */
  t: number;
  text: string;
}

export interface StartOptions {
  inputs: Record<string, string>;
  cwd: string;
  /** Overrides of the runner's variables. */
  env?: Record<string, string>;
}

export interface StepEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
}

/** A step's log as the runner shows it: every value the step masked is ***. */
export function masked(log: string): string {
  return maskLog(
    log,
    parseWorkflowCommands(log)
      .filter((c) => c.command === 'add-mask')
      .map((c) => c.message),
  );
}

export interface FinishedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  log: string;
  /** The log as the runner shows it: what the step masked is ***; for failure messages. */
  maskedLog: string;
  lines: Line[];
  outputs: Record<string, string>;
  state: Record<string, string>;
  summary: string;
  errors: string[];
  warnings: string[];
  commands: WorkflowCommand[];
  durationMs: number;
  /** Peak resident memory (VmHWM) of the main step's node process, kB. */
  peakRssKb: number;
  postCode: number | null;
  postLog: string;
  postSummary: string;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * One action run, started like the runner starts a JavaScript action (same variables and file
 * commands as helpers/action.ts runAction), but observable while it runs: its output lines with
 * the time they arrived, its pid (to signal it), its peak memory. `finish()` waits for the main
 * step; `post()` then runs the post step with the saved state, as the runner does even after a cancel.
 */
export class LiveAction {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  readonly started = Date.now();
  peakRssKb = 0;
  private partial = '';
  private readonly tmp: string;
  private readonly files: Record<string, string>;
  private readonly baseEnv: Record<string, string>;
  private readonly exit: Promise<StepEnd>;
  private listeners: (() => void)[] = [];

  constructor(private readonly opts: StartOptions) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rel-runner-'));
    const runnerTemp = path.join(this.tmp, 'runner-temp');
    fs.mkdirSync(runnerTemp);
    const eventPath = path.join(this.tmp, 'event.json');
    fs.writeFileSync(eventPath, '{}\n');
    const inputs = { ...readInputDefaults(), ...opts.inputs };
    const inputEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(inputs)) inputEnv[inputEnvName(k)] = v;
    const runner = runnerEnv(opts.cwd, this.tmp, runnerTemp, eventPath);
    this.baseEnv = { ...inheritedEnv(), ...runner, ...inputEnv, ...(opts.env ?? {}) };
    this.files = this.stepFiles('main');
    this.child = spawn(process.execPath, [DIST_ENTRY], {
      cwd: opts.cwd,
      env: { ...this.baseEnv, ...this.files },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const onData = (b: Buffer) => this.feed(b.toString('utf8'));
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    const memTimer = setInterval(() => this.sampleMemory(), 100);
    this.exit = new Promise((resolve, reject) => {
      this.child.on('error', (e) => {
        clearInterval(memTimer);
        reject(e);
      });
      this.child.on('close', (code, signal) => {
        clearInterval(memTimer);
        if (this.partial) this.push(this.partial);
        this.partial = '';
        resolve({ code, signal, durationMs: Date.now() - this.started });
      });
    });
  }

  private stepFiles(step: string): Record<string, string> {
    const f = {
      GITHUB_OUTPUT: path.join(this.tmp, `${step}-output`),
      GITHUB_STATE: path.join(this.tmp, `${step}-state`),
      GITHUB_STEP_SUMMARY: path.join(this.tmp, `${step}-summary.md`),
      GITHUB_ENV: path.join(this.tmp, `${step}-env`),
      GITHUB_PATH: path.join(this.tmp, `${step}-path`),
    };
    for (const file of Object.values(f)) fs.writeFileSync(file, '');
    return f;
  }

  private sampleMemory(): void {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8'));
      if (m) this.peakRssKb = Math.max(this.peakRssKb, Number(m[1]));
    } catch {
      /* gone */
    }
  }

  private push(text: string): void {
    this.lines.push({ t: Date.now(), text });
    for (const l of this.listeners) l();
  }

  private feed(chunk: string): void {
    this.sampleMemory();
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) this.push(p.endsWith('\r') ? p.slice(0, -1) : p);
  }

  get log(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  /** The first line matching `re` (already seen or still to come), bounded; rejects if the step exits first. */
  waitLine(re: RegExp, timeoutMs: number): Promise<Line> {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        const hit = this.lines.find((l) => re.test(l.text));
        if (hit) {
          done = true;
          cleanup();
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        cleanup();
        reject(
          new Error(
            `no line matching ${re} within ${timeoutMs} ms; last lines:\n${this.lines
              .slice(-15)
              .map((l) => l.text)
              .join('\n')}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
      };
      this.listeners.push(check);
      this.exit.then(() => {
        check();
        if (!done) {
          done = true;
          cleanup();
          reject(
            new Error(
              `the action exited before printing a line matching ${re}; last lines:\n${this.lines
                .slice(-15)
                .map((l) => l.text)
                .join('\n')}`,
            ),
          );
        }
      });
      check();
    });
  }

  /** Signals the step's process (its own process group: what the runner does on cancel). */
  signal(sig: NodeJS.Signals): void {
    process.kill(this.child.pid!, sig);
  }

  /** Waits for the main step to end (bounded; killed after `timeoutMs`). */
  async wait(timeoutMs: number): Promise<StepEnd> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        try {
          process.kill(-this.child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
        reject(
          new Error(
            `the action did not finish within ${timeoutMs} ms; last lines:\n${this.lines
              .slice(-30)
              .map((l) => l.text)
              .join('\n')}`,
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exit, bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The post step with the main step's saved state (STATE_*), as the runner runs it (post-if: always()). */
  async post(timeoutMs = 60_000): Promise<{ code: number | null; log: string; summary: string }> {
    const state = parseFileCommands(readText(this.files.GITHUB_STATE));
    const stateEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(state)) stateEnv[`STATE_${k}`] = v;
    const files = this.stepFiles('post');
    const r = await run(process.execPath, [DIST_ENTRY], {
      cwd: this.opts.cwd,
      env: { ...stripOwn(), ...this.baseEnv, ...files, ...stateEnv },
      timeoutMs,
    });
    return { code: r.code, log: r.stdout + r.stderr, summary: readText(files.GITHUB_STEP_SUMMARY) };
  }

  /** Main step (bounded), then the post step; the temp files are removed. */
  async finish(timeoutMs = 240_000, withPost = true): Promise<FinishedRun> {
    try {
      const end = await this.wait(timeoutMs);
      const outputs = parseFileCommands(readText(this.files.GITHUB_OUTPUT));
      const state = parseFileCommands(readText(this.files.GITHUB_STATE));
      const summary = readText(this.files.GITHUB_STEP_SUMMARY);
      const log = this.log;
      const commands = parseWorkflowCommands(log);
      const post = withPost ? await this.post() : { code: null, log: '', summary: '' };
      return {
        code: end.code,
        signal: end.signal,
        log,
        maskedLog: masked(log),
        lines: this.lines,
        outputs,
        state,
        summary,
        errors: commands.filter((c) => c.command === 'error').map((c) => c.message),
        warnings: commands.filter((c) => c.command === 'warning').map((c) => c.message),
        commands,
        durationMs: end.durationMs,
        peakRssKb: this.peakRssKb,
        postCode: post.code,
        postLog: post.log,
        postSummary: post.summary,
      };
    } finally {
      this.cleanup();
    }
  }

  cleanup(): void {
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** run() merges process.env; the action must not see the test's own INPUT_/STATE_/GITHUB_ variables. */
function stripOwn(): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) if (/^(INPUT_|STATE_|GITHUB_|RUNNER_|ACTIONS_)/.test(k)) out[k] = undefined;
  return out;
}

export function startAction(opts: StartOptions): LiveAction {
  return new LiveAction(opts);
}

/** Main step then post step, like runAction, with line times and peak memory. */
export function runLive(opts: StartOptions, timeoutMs = 240_000): Promise<FinishedRun> {
  return startAction(opts).finish(timeoutMs);
}

// ------------------------------------------------------------------ ports and processes

/** A TCP port free on 127.0.0.1 right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every descendant of `pid` (not `pid` itself), from /proc. */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(e), ppid);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent)
      if (pp === p) {
        out.push(c);
        walk(c);
      }
  };
  walk(pid);
  return out;
}

export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------ the suite's own sshd

/**
 * A second sshd on its own port, reusing the lab's host key (so the lab's known_hosts key is the
 * right one) with its own authorized_keys, pid file and log. Every session runs through a small
 * ForceCommand wrapper that appends what the persistent shell receives to `shellLog`: that is how
 * the suite counts remote commands per poll. Only this instance is ever stopped or has its
 * sessions killed.
 */
export class OwnSshd {
  readonly dir = tempDir('rel-sshd-');
  readonly config = path.join(this.dir, 'sshd_config');
  readonly pidFile = path.join(this.dir, 'sshd.pid');
  readonly authorizedKeys = path.join(this.dir, 'authorized_keys');
  readonly shellLog = path.join(this.dir, 'shell.log');
  readonly execLog = path.join(this.dir, 'exec.log');
  readonly logFile = path.join(this.dir, 'sshd.log');
  port = 0;

  constructor(
    private readonly lab: LabEnv,
    private readonly hostKeyFile: string,
    keys: string[],
  ) {
    fs.writeFileSync(this.authorizedKeys, keys.map((k) => k.trim()).join('\n') + '\n', { mode: 0o600 });
    const wrap = path.join(this.dir, 'wrap.sh');
    // `exec sh` is the action's persistent shell: tee what it is sent. Anything else runs as sent.
    fs.writeFileSync(
      wrap,
      [
        '#!/bin/sh',
        `printf '@@exec %s@@ %s\\n' "$(date +%s%3N)" "$SSH_ORIGINAL_COMMAND" >> ${this.execLog}`,
        'if [ "$SSH_ORIGINAL_COMMAND" = "exec sh" ]; then',
        `  tee -a ${this.shellLog} | sh`,
        '  exit $?',
        'fi',
        'exec sh -c "$SSH_ORIGINAL_COMMAND"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  }

  knownHostsLine(): string {
    const pub = fs.readFileSync(`${this.hostKeyFile}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    return `[127.0.0.1]:${this.port} ${pub}`;
  }

  get pid(): number {
    return Number(readText(this.pidFile).trim()) || 0;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    fs.writeFileSync(
      this.config,
      [
        '# the reliability suite own sshd (never the lab one)',
        `Port ${this.port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${this.hostKeyFile}`,
        `AuthorizedKeysFile ${this.authorizedKeys}`,
        `PidFile ${this.pidFile}`,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'MaxStartups 100',
        'MaxSessions 100',
        'X11Forwarding no',
        'PrintMotd no',
        `ForceCommand ${path.join(this.dir, 'wrap.sh')}`,
        '',
      ].join('\n'),
    );
    fs.rmSync(this.pidFile, { force: true });
    fs.mkdirSync('/run/sshd', { recursive: true });
    const r = await run('/usr/sbin/sshd', ['-f', this.config, '-E', this.logFile]);
    if (r.code !== 0) throw new Error(`own sshd did not start: ${r.stderr}${readText(this.logFile).slice(-1000)}`);
    await waitFor(
      async () => {
        const pid = this.pid;
        if (!pid || !alive(pid)) return false;
        const ok = await run(
          'ssh',
          [
            '-i',
            this.lab.sshKeyFile,
            '-o',
            'IdentitiesOnly=yes',
            '-o',
            'BatchMode=yes',
            '-o',
            'StrictHostKeyChecking=no',
            '-o',
            'UserKnownHostsFile=/dev/null',
            '-o',
            'LogLevel=ERROR',
            '-o',
            'ConnectTimeout=3',
            '-p',
            String(this.port),
            'root@127.0.0.1',
            'true',
          ],
          { timeoutMs: 10_000 },
        );
        return ok.code === 0;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `own sshd on 127.0.0.1:${this.port}` },
    );
  }

  /** Kills the per-connection processes of this sshd only (the listener stays): connections drop. */
  killSessions(): number[] {
    const pid = this.pid;
    if (!pid) return [];
    const kids = descendants(pid);
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    return kids;
  }

  /** Stops the listener and its sessions (bounded). */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (!pid || !alive(pid)) return;
    const kids = descendants(pid);
    process.kill(pid, 'SIGTERM');
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitFor(() => !alive(pid), { timeoutMs: 10_000, intervalMs: 50, what: `own sshd ${pid} to stop` });
    fs.rmSync(this.pidFile, { force: true });
  }

  async dispose(): Promise<void> {
    await this.stop().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ the suite's own registry

/** A second registry (Debian docker-registry) on its own port with storage in a temp folder. */
export class OwnRegistry {
  readonly dir = tempDir('rel-registry-');
  port = 0;
  private proc?: ChildProcess;

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const cfg = path.join(this.dir, 'config.yml');
    fs.writeFileSync(
      cfg,
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(this.dir, 'data')}\nhttp:\n  addr: ${this.address}\n`,
    );
    const log = fs.openSync(path.join(this.dir, 'registry.log'), 'a');
    this.proc = spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    await waitFor(
      async () => {
        const res = await fetch(`http://${this.address}/v2/`, { signal: AbortSignal.timeout(2000) });
        return res.ok;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `own registry on ${this.address}` },
    );
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await waitFor(
      async () => {
        try {
          await fetch(`http://${this.address}/v2/`, { signal: AbortSignal.timeout(1000) });
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `own registry on ${this.address} to stop answering` },
    );
  }

  async dispose(): Promise<void> {
    await this.stop().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ the probe

export interface ProbeCount {
  /** Daemon timestamp of the log line (ms). */
  t: number;
  ok: number;
  fail: number;
}

/**
 * The probe service's shell loop (busybox): `wget http://web:8080/health` bounded to 1 s, every
 * 100 ms, from inside the stack's network; every 10 requests it prints `COUNT <ok> <fail>`, and each
 * failure `FAIL <wget's error>`. `$$` because compose interpolates `$`. (`timeout 1 wget`, not
 * `wget -T 1`: the lab's static busybox 1.35 wget segfaults with -T.)
 */
export const PROBE_SCRIPT =
  'ok=0; fail=0; n=0; ' +
  'while :; do ' +
  'if out=$$(timeout 1 wget -q -O /dev/null http://web:8080/health 2>&1); then ok=$$((ok+1)); ' +
  'else fail=$$((fail+1)); echo "FAIL $$out"; fi; ' +
  'n=$$((n+1)); if [ $$((n % 10)) -eq 0 ]; then echo "COUNT $$ok $$fail"; fi; ' +
  'sleep 0.1; done';

export interface ProbeLog {
  counts: ProbeCount[];
  fails: { t: number; text: string }[];
}

/** The probe's log, with the daemon's timestamps. */
export async function readProbe(service: string): Promise<ProbeLog> {
  const r = await docker(['service', 'logs', '--raw', '--timestamps', service], { timeoutMs: 30_000 });
  const counts: ProbeCount[] = [];
  const fails: { t: number; text: string }[] = [];
  for (const line of (r.stdout + r.stderr).split('\n')) {
    const m = /^(\S+) (COUNT (\d+) (\d+)|FAIL ?(.*))$/.exec(line.trim());
    if (!m) continue;
    const t = Date.parse(m[1].replace(/(\.\d{3})\d+/, '$1'));
    if (m[3] !== undefined) counts.push({ t, ok: Number(m[3]), fail: Number(m[4]) });
    else fails.push({ t, text: m[5] ?? '' });
  }
  counts.sort((a, b) => a.t - b.t);
  // One probe task for the whole suite: counters only grow. A restarted probe would reset them.
  return { counts, fails };
}

export interface ProbeWindow {
  requests: number;
  failed: number;
  failures: string[];
}

/**
 * Requests and failures between `from` and `to` (ms): waits until the probe printed a count after
 * `to`, then subtracts the last count before `from` from the first count at or after `to`.
 */
export async function probeWindow(service: string, from: number, to: number): Promise<ProbeWindow> {
  const log = await waitFor(
    async () => {
      const l = await readProbe(service);
      return l.counts.some((c) => c.t >= to) ? l : null;
    },
    { timeoutMs: 20_000, intervalMs: 300, what: `the probe ${service} to print a count after the window` },
  );
  const before = [...log.counts].reverse().find((c) => c.t <= from) ?? { t: from, ok: 0, fail: 0 };
  const after = log.counts.find((c) => c.t >= to)!;
  if (after.ok < before.ok || after.fail < before.fail)
    throw new Error(`the probe ${service} restarted during the window (its counters went down)`);
  return {
    requests: after.ok + after.fail - before.ok - before.fail,
    failed: after.fail - before.fail,
    failures: log.fails
      .filter((f) => f.t > before.t && f.t <= after.t)
      .map((f) => `${new Date(f.t).toISOString()} ${f.text}`),
  };
}
