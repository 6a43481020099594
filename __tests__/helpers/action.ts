// The one emulation of the GitHub Actions runner the tests and the bench use: runs the bundled
// action (dist/index.js) with inputs as INPUT_* variables (with action.yml's defaults), file
// commands (GITHUB_OUTPUT, GITHUB_STATE, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY) in fresh temp
// files, its output lines timed as they arrive, then the post step with STATE_* variables and what
// the main step exported. Node built-ins only.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const DIST_ENTRY = path.join(REPO_ROOT, 'dist', 'index.js');
export const ACTION_YML = path.join(REPO_ROOT, 'action.yml');

// ------------------------------------------------------------ file commands

/**
 * Parses a file-command file (GITHUB_OUTPUT, GITHUB_STATE, GITHUB_ENV):
 * `name=value` lines and `name<<DELIMITER` blocks ending at a line that is
 * exactly DELIMITER. A later entry wins over an earlier one of the same name,
 * as on the runner. Throws on a block without its closing delimiter.
 */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  // A trailing newline leaves one empty last element: not an entry.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    i++;
    if (line === '') continue;
    const heredoc = line.indexOf('<<');
    const eq = line.indexOf('=');
    if (heredoc > 0 && (eq < 0 || heredoc < eq)) {
      const name = line.slice(0, heredoc);
      const delimiter = line.slice(heredoc + 2);
      if (delimiter === '') throw new Error(`file command '${name}': empty delimiter`);
      const value: string[] = [];
      let closed = false;
      while (i < lines.length) {
        const l = lines[i];
        i++;
        if (l === delimiter) {
          closed = true;
          break;
        }
        value.push(l);
      }
      if (!closed) throw new Error(`file command '${name}': matching delimiter '${delimiter}' not found`);
      out[name] = value.join('\n');
    } else if (eq > 0) {
      out[line.slice(0, eq)] = line.slice(eq + 1);
    } else {
      throw new Error(`file command: invalid line ${JSON.stringify(line)}`);
    }
  }
  return out;
}

/** GITHUB_PATH: one folder per line. */
export function parsePathFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

// --------------------------------------------------------- workflow commands

export interface WorkflowCommand {
  command: string;
  properties: Record<string, string>;
  message: string;
}

function unescapeData(s: string): string {
  return s.replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/%25/g, '%');
}

function unescapeProperty(s: string): string {
  return s
    .replace(/%0D/gi, '\r')
    .replace(/%0A/gi, '\n')
    .replace(/%3A/gi, ':')
    .replace(/%2C/gi, ',')
    .replace(/%25/g, '%');
}

/** The `::command key=value,...::message` lines of a log, unescaped. */
export function parseWorkflowCommands(log: string): WorkflowCommand[] {
  const out: WorkflowCommand[] = [];
  for (const raw of log.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const m = /^::([A-Za-z][A-Za-z0-9-]*)(?: ([^:]*))?::(.*)$/.exec(line);
    if (!m) continue;
    const properties: Record<string, string> = {};
    if (m[2]) {
      for (const pair of m[2].split(',')) {
        const eq = pair.indexOf('=');
        if (eq > 0) properties[pair.slice(0, eq).trim()] = unescapeProperty(pair.slice(eq + 1));
      }
    }
    out.push({ command: m[1], properties, message: unescapeData(m[3]) });
  }
  return out;
}

/** What the runner shows: every registered secret replaced by `***`. */
export function maskLog(log: string, secrets: string[]): string {
  const sorted = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  let out = log;
  for (const s of sorted) out = out.split(s).join('***');
  return out;
}

// ------------------------------------------------------------------ action.yml

function parseScalar(raw: string, where: string): string {
  const v = raw.trim();
  if (v.startsWith("'")) {
    if (!v.endsWith("'") || v.length < 2) throw new Error(`${where}: multi-line quoted default not supported`);
    return v.slice(1, -1).replace(/''/g, "'");
  }
  if (v.startsWith('"')) {
    if (!v.endsWith('"') || v.length < 2) throw new Error(`${where}: multi-line quoted default not supported`);
    return JSON.parse(v) as string;
  }
  return v.replace(/\s+#.*$/, '');
}

/**
 * The `default:` of each input in an action.yml (a small reader for the
 * usual layout: two-space indents, one-line scalars or `|`/`>` blocks).
 * Inputs without a default are absent.
 */
export function readInputDefaults(actionYml: string = ACTION_YML): Record<string, string> {
  const lines = fs.readFileSync(actionYml, 'utf8').split(/\r?\n/);
  const out: Record<string, string> = {};
  let i = lines.findIndex((l) => /^inputs:\s*$/.test(l));
  if (i < 0) return out;
  i++;
  let current: string | undefined;
  let inputIndent = -1;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (/^\S/.test(line)) break; // next top-level key
    if (/^\s*(#.*)?$/.test(line)) continue;
    const indent = line.length - line.trimStart().length;
    const key = /^(\s*)([^\s:#][^:]*):(.*)$/.exec(line);
    if (!key) continue;
    if (inputIndent < 0) inputIndent = indent;
    if (indent === inputIndent) {
      current = key[2].trim().replace(/^['"]|['"]$/g, '');
      continue;
    }
    if (current === undefined || key[2].trim() !== 'default') continue;
    const rest = key[3].trim();
    if (/^[|>][-+]?$/.test(rest)) {
      const block: string[] = [];
      let blockIndent = -1;
      for (let j = i + 1; j < lines.length; j++) {
        const l = lines[j];
        const ind = l.length - l.trimStart().length;
        if (l.trim() !== '' && ind <= indent) break;
        if (blockIndent < 0 && l.trim() !== '') blockIndent = ind;
        block.push(l.slice(Math.max(blockIndent, 0)));
        i = j;
      }
      while (block.length && block[block.length - 1].trim() === '') block.pop();
      const joined = rest.startsWith('|') ? block.join('\n') : block.join(' ');
      out[current] = rest.endsWith('-') ? joined : `${joined}\n`;
    } else {
      out[current] = parseScalar(rest, `${actionYml}: input '${current}'`);
    }
  }
  return out;
}

/** The runner's variable name for an input: spaces to `_`, upper case, dashes kept. */
/** The variables the Actions runner sets for a step (a fresh run id and sha each time). */
export function runnerEnv(cwd: string, tmp: string, runnerTemp: string, eventPath: string): Record<string, string> {
  return {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: cwd,
    GITHUB_REPOSITORY: 'glasck/example',
    GITHUB_REPOSITORY_OWNER: 'glasck',
    GITHUB_SHA: randomHex(20),
    GITHUB_REF: 'refs/heads/main',
    GITHUB_REF_NAME: 'main',
    GITHUB_REF_TYPE: 'branch',
    GITHUB_ACTOR: 'glasck',
    GITHUB_RUN_ID: String(1_000_000_000 + Math.floor(Math.random() * 1_000_000_000)),
    GITHUB_RUN_NUMBER: '1',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_API_URL: 'https://api.github.com',
    GITHUB_GRAPHQL_URL: 'https://api.github.com/graphql',
    GITHUB_EVENT_NAME: 'push',
    GITHUB_EVENT_PATH: eventPath,
    GITHUB_WORKFLOW: 'deploy',
    GITHUB_JOB: 'deploy',
    GITHUB_ACTION: '__run',
    GITHUB_ACTION_REPOSITORY: 'glasck/deploy-action',
    RUNNER_TEMP: runnerTemp,
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_NAME: 'lab-runner',
    RUNNER_ENVIRONMENT: 'self-hosted',
    RUNNER_TOOL_CACHE: path.join(tmp, 'tool-cache'),
    // A runner's own Docker config, as a hosted runner has: in the lab the runner and the host are
    // one user, and another test's post-step `docker logout` would log this one's host out.
    DOCKER_CONFIG: path.join(tmp, 'docker-config'),
  };
}

export function inputEnvName(name: string): string {
  return `INPUT_${name.replace(/ /g, '_').toUpperCase()}`;
}

// ------------------------------------------------------------------ running

export interface RunActionOptions {
  /** Inputs as in a workflow's `with:` (names as in action.yml). */
  inputs: Record<string, string>;
  /** Working directory and GITHUB_WORKSPACE (default: process.cwd()). */
  cwd?: string;
  /** Overrides of the runner's variables; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Bound for each step, main and post (default 300 s). */
  timeoutMs?: number;
  /** Run the post step too (default true). */
  post?: boolean;
  /** Fill in action.yml's defaults for inputs not given, as the runner does (default true). */
  defaults?: boolean;
  /** The script to run (default: the repository's dist/index.js). */
  entry?: string;
}

export interface Line {
  /** Date.now() when the line was read from the pipe. */
  t: number;
  text: string;
}

export interface StepEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
}

export interface PostStep {
  code: number | null;
  log: string;
  commands: WorkflowCommand[];
  summary: string;
  durationMs: number;
}

export interface ActionRun {
  /** Exit code of the main step (null if killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr of the main step, interleaved as they came. */
  log: string;
  /** `log` as the runner would show it: masked values replaced by `***`. */
  maskedLog: string;
  /** The main step's lines with the time each arrived. */
  lines: Line[];
  outputs: Record<string, string>;
  state: Record<string, string>;
  /** Content of GITHUB_STEP_SUMMARY after the main step. */
  summary: string;
  /** Entries written to GITHUB_ENV by the main step. */
  exportedEnv: Record<string, string>;
  /** Entries written to GITHUB_PATH by the main step. */
  addedPath: string[];
  /** Workflow commands (`::error::`, `::add-mask::`, ...) of the main step. */
  commands: WorkflowCommand[];
  errors: string[];
  warnings: string[];
  /** Values registered with `::add-mask::` (main and post). */
  masks: string[];
  durationMs: number;
  /** Peak resident memory (VmHWM) of the main step's node process, kB. */
  peakRssKb: number;
  /** Exit code of the post step; null if not run (post: false) or killed. */
  postCode: number | null;
  postLog: string;
  postCommands: WorkflowCommand[];
  postSummary: string;
  postDurationMs: number;
  /** The variables the main step was started with (for debugging). */
  env: Record<string, string>;
}

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Variables of the test process that must not reach the action. */
export function inheritedEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (/^(INPUT_|STATE_|GITHUB_|RUNNER_|ACTIONS_)/.test(k)) continue;
    out[k] = v;
  }
  return out;
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

const lastLines = (lines: Line[], n: number) =>
  lines
    .slice(-n)
    .map((l) => l.text)
    .join('\n');

/** Kills a step's process group (it runs detached, as the runner's own group). */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/**
 * One step process: its output lines with the time they arrived, its peak memory, its end.
 * Detached: its own process group, so a bound or a cancel reaches its children too.
 */
class StepProcess {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  readonly started = Date.now();
  readonly exit: Promise<StepEnd>;
  peakRssKb = 0;
  private partial = '';
  private listeners: (() => void)[] = [];

  constructor(
    private readonly entry: string,
    env: Record<string, string>,
    cwd: string,
    private readonly label: string,
  ) {
    this.child = spawn(process.execPath, [entry], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const onData = (b: Buffer) => this.feed(b.toString('utf8'));
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    const memTimer = setInterval(() => this.sampleMemory(), 100);
    this.exit = new Promise((resolve, reject) => {
      this.child.on('error', (e) => {
        clearInterval(memTimer);
        reject(new Error(`cannot start node ${entry}: ${e.message}`));
      });
      this.child.on('close', (code, signal) => {
        clearInterval(memTimer);
        if (this.partial) this.push(this.partial);
        this.partial = '';
        resolve({ code, signal, durationMs: Date.now() - this.started });
      });
    });
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

  listen(l: () => void): () => void {
    this.listeners.push(l);
    return () => (this.listeners = this.listeners.filter((x) => x !== l));
  }

  /** The step's end, bounded: past `timeoutMs` its process group is killed and this rejects. */
  async wait(timeoutMs: number): Promise<StepEnd> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        killGroup(this.child);
        const what = path.relative(REPO_ROOT, this.entry) || this.entry;
        const tail = lastLines(this.lines, 30);
        reject(
          new Error(
            `runAction (${this.label}): ${what} did not finish within ${timeoutMs} ms and was killed. Last output:\n${tail}`,
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
}

/**
 * One action run, started like the runner starts a JavaScript action, observable while it runs:
 * its output lines with the time they arrived, its pid (to signal it), its peak memory. `finish()`
 * waits for the main step, then runs the post step with the saved state, as the runner does (even
 * after a cancel: post-if always()).
 */
export class ActionProcess {
  private readonly main: StepProcess;
  private readonly tmp: string;
  private readonly files: Record<string, string>;
  private readonly baseEnv: Record<string, string>;
  private readonly entry: string;
  private readonly cwd: string;

  constructor(private readonly opts: RunActionOptions) {
    this.entry = opts.entry ?? DIST_ENTRY;
    if (!fs.existsSync(this.entry))
      throw new Error(`runAction: ${this.entry} does not exist (build it: npm run build)`);
    this.cwd = path.resolve(opts.cwd ?? process.cwd());
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runner-'));
    const runnerTemp = path.join(this.tmp, 'runner-temp');
    fs.mkdirSync(runnerTemp);
    const eventPath = path.join(this.tmp, 'event.json');
    fs.writeFileSync(eventPath, '{}\n');
    const inputs = { ...(opts.defaults === false ? {} : readInputDefaults()), ...opts.inputs };
    const inputEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(inputs)) inputEnv[inputEnvName(k)] = v;
    this.baseEnv = { ...inheritedEnv(), ...runnerEnv(this.cwd, this.tmp, runnerTemp, eventPath), ...inputEnv };
    this.files = this.stepFiles('main');
    this.main = new StepProcess(this.entry, this.env(this.files, {}), this.cwd, 'main');
  }

  /** The step's variables: the runner's, the file commands', `extra`, then the test's overrides. */
  private env(files: Record<string, string>, extra: Record<string, string>): Record<string, string> {
    const env: Record<string, string> = { ...this.baseEnv, ...files, ...extra };
    for (const [k, v] of Object.entries(this.opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    return env;
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

  get child(): ChildProcess {
    return this.main.child;
  }
  get lines(): Line[] {
    return this.main.lines;
  }
  get started(): number {
    return this.main.started;
  }
  get peakRssKb(): number {
    return this.main.peakRssKb;
  }
  get log(): string {
    return this.main.log;
  }

  /** The first line matching `re` (already seen or still to come), bounded; rejects if the step exits first. */
  waitLine(re: RegExp, timeoutMs: number): Promise<Line> {
    return new Promise((resolve, reject) => {
      let done = false;
      const settle = (hit: Line | undefined, why?: string) => {
        if (done || (!hit && !why)) return;
        done = true;
        clearTimeout(timer);
        unlisten();
        if (hit) resolve(hit);
        else reject(new Error(`${why}; last lines:\n${lastLines(this.lines, 15)}`));
      };
      const check = () => settle(this.lines.find((l) => re.test(l.text)));
      const timer = setTimeout(() => settle(undefined, `no line matching ${re} within ${timeoutMs} ms`), timeoutMs);
      const unlisten = this.main.listen(check);
      void this.main.exit.then(() => {
        check();
        settle(undefined, `the action exited before printing a line matching ${re}`);
      });
      check();
    });
  }

  /** Signals the step's process (what the runner does on cancel). */
  signal(sig: NodeJS.Signals): void {
    process.kill(this.main.child.pid!, sig);
  }

  /** Waits for the main step to end (bounded; killed after `timeoutMs`). */
  wait(timeoutMs: number): Promise<StepEnd> {
    return this.main.wait(timeoutMs);
  }

  /** The post step with the main step's saved state (STATE_*), its exported variables and PATH. */
  async post(timeoutMs = 60_000): Promise<PostStep> {
    const state = parseFileCommands(readText(this.files.GITHUB_STATE));
    const extra: Record<string, string> = { ...parseFileCommands(readText(this.files.GITHUB_ENV)) };
    for (const [k, v] of Object.entries(state)) extra[`STATE_${k}`] = v;
    const added = parsePathFile(readText(this.files.GITHUB_PATH));
    if (added.length) extra.PATH = [...added.reverse(), this.baseEnv.PATH ?? ''].join(path.delimiter);
    const files = this.stepFiles('post');
    const step = new StepProcess(this.entry, this.env(files, extra), this.cwd, 'post');
    const end = await step.wait(timeoutMs);
    const log = step.log;
    const summary = readText(files.GITHUB_STEP_SUMMARY);
    return { code: end.code, log, commands: parseWorkflowCommands(log), summary, durationMs: end.durationMs };
  }

  /** Main step (bounded), then the post step unless `withPost` is false; the temp files are removed. */
  async finish(timeoutMs = 300_000, withPost = true): Promise<ActionRun> {
    try {
      const end = await this.wait(timeoutMs);
      const log = this.log;
      const commands = parseWorkflowCommands(log);
      const outputs = parseFileCommands(readText(this.files.GITHUB_OUTPUT));
      const state = parseFileCommands(readText(this.files.GITHUB_STATE));
      const summary = readText(this.files.GITHUB_STEP_SUMMARY);
      const exportedEnv = parseFileCommands(readText(this.files.GITHUB_ENV));
      const addedPath = parsePathFile(readText(this.files.GITHUB_PATH));
      const post = withPost
        ? await this.post(timeoutMs)
        : { code: null, log: '', commands: [], summary: '', durationMs: 0 };
      const masks = [...commands, ...post.commands].filter((c) => c.command === 'add-mask').map((c) => c.message);
      const of = (kind: string) => commands.filter((c) => c.command === kind).map((c) => c.message);
      return {
        code: end.code,
        signal: end.signal,
        log,
        maskedLog: maskLog(log, masks),
        lines: this.lines,
        outputs,
        state,
        summary,
        exportedEnv,
        addedPath,
        commands,
        errors: of('error'),
        warnings: of('warning'),
        masks,
        durationMs: end.durationMs,
        peakRssKb: this.peakRssKb,
        postCode: post.code,
        postLog: post.log,
        postCommands: post.commands,
        postSummary: post.summary,
        postDurationMs: post.durationMs,
        env: this.env(this.files, {}),
      };
    } finally {
      this.cleanup();
    }
  }

  cleanup(): void {
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** A run with nothing in it but `over`: for stubs, and for a step killed before it finished. */
export function emptyRun(over: Partial<ActionRun>): ActionRun {
  return {
    code: 0,
    signal: null,
    log: '',
    maskedLog: '',
    lines: [],
    outputs: {},
    state: {},
    summary: '',
    exportedEnv: {},
    addedPath: [],
    commands: [],
    errors: [],
    warnings: [],
    masks: [],
    durationMs: 0,
    peakRssKb: 0,
    postCode: null,
    postLog: '',
    postCommands: [],
    postSummary: '',
    postDurationMs: 0,
    env: {},
    ...over,
  };
}

/** Starts the main step; watch it, signal it, then `finish()` it. */
export function startAction(opts: RunActionOptions): ActionProcess {
  return new ActionProcess(opts);
}

/**
 * Runs `node dist/index.js` as the GitHub Actions runner runs a JavaScript action's main step, then
 * (unless `post: false`) its post step with the main step's saved state. Rejects only if a step
 * cannot start or exceeds `timeoutMs`; a failing action resolves with a non-zero `code`.
 */
export async function runAction(opts: RunActionOptions): Promise<ActionRun> {
  return startAction(opts).finish(opts.timeoutMs ?? 300_000, opts.post !== false);
}
