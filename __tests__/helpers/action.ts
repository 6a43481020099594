// Runs the bundled action (dist/index.js) the way the GitHub Actions runner
// does: inputs as INPUT_* variables (with action.yml's defaults), file
// commands (GITHUB_OUTPUT, GITHUB_STATE, GITHUB_ENV, GITHUB_PATH,
// GITHUB_STEP_SUMMARY) in fresh temp files, then the post step with STATE_*
// variables. Node built-ins only.
import { spawn } from 'node:child_process';
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

export interface ActionRun {
  /** Exit code of the main step (null if killed by a signal). */
  code: number | null;
  /** stdout and stderr of the main step, interleaved as they came. */
  log: string;
  /** `log` as the runner would show it: masked values replaced by `***`. */
  maskedLog: string;
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
  /** Exit code of the post step; null if not run (post: false) or killed. */
  postCode: number | null;
  postLog: string;
  postCommands: WorkflowCommand[];
  postSummary: string;
  postDurationMs: number;
  /** The variables the main step was started with (for debugging). */
  env: Record<string, string>;
}

interface StepResult {
  code: number | null;
  log: string;
  durationMs: number;
}

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function runStep(
  entry: string,
  env: Record<string, string>,
  cwd: string,
  timeoutMs: number,
  label: string,
): Promise<StepResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: a timeout kills its children too
    });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => chunks.push(b));
    child.stderr!.on('data', (b: Buffer) => chunks.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`runAction (${label}): cannot start node ${entry}: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const log = Buffer.concat(chunks).toString('utf8');
      if (timedOut) {
        const tail = log.split('\n').slice(-40).join('\n');
        reject(
          new Error(
            `runAction (${label}): ${path.relative(REPO_ROOT, entry) || entry} did not finish within ${timeoutMs} ms and was killed. Last output:\n${tail}`,
          ),
        );
        return;
      }
      resolve({ code, log, durationMs: Date.now() - started });
    });
  });
}

function readText(file: string): string {
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

/**
 * Runs `node dist/index.js` as the GitHub Actions runner runs a JavaScript
 * action's main step, then (unless `post: false`) its post step with the
 * main step's saved state. Rejects only if a step cannot start or exceeds
 * `timeoutMs`; a failing action resolves with a non-zero `code`.
 */
export async function runAction(opts: RunActionOptions): Promise<ActionRun> {
  const entry = opts.entry ?? DIST_ENTRY;
  if (!fs.existsSync(entry)) {
    throw new Error(`runAction: ${entry} does not exist (build it: npm run build)`);
  }
  const cwd = path.resolve(opts.cwd ?? process.cwd());
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runner-'));
  try {
    const runnerTemp = path.join(tmp, 'runner-temp');
    fs.mkdirSync(runnerTemp);
    const files = (step: string) => {
      const f = {
        GITHUB_OUTPUT: path.join(tmp, `${step}-output`),
        GITHUB_STATE: path.join(tmp, `${step}-state`),
        GITHUB_STEP_SUMMARY: path.join(tmp, `${step}-summary.md`),
        GITHUB_ENV: path.join(tmp, `${step}-env`),
        GITHUB_PATH: path.join(tmp, `${step}-path`),
      };
      for (const file of Object.values(f)) fs.writeFileSync(file, '');
      return f;
    };
    const eventPath = path.join(tmp, 'event.json');
    fs.writeFileSync(eventPath, '{}\n');

    const inputs: Record<string, string> = {
      ...(opts.defaults === false ? {} : readInputDefaults()),
      ...opts.inputs,
    };
    const inputEnv: Record<string, string> = {};
    for (const [name, value] of Object.entries(inputs)) inputEnv[inputEnvName(name)] = value;

    const runner = runnerEnv(cwd, tmp, runnerTemp, eventPath);

    const buildEnv = (fileVars: Record<string, string>, extra: Record<string, string>) => {
      const env: Record<string, string> = { ...inheritedEnv(), ...runner, ...fileVars, ...inputEnv, ...extra };
      for (const [k, v] of Object.entries(opts.env ?? {})) {
        if (v === undefined) delete env[k];
        else env[k] = v;
      }
      return env;
    };

    // main
    const mainFiles = files('main');
    const mainEnv = buildEnv(mainFiles, {});
    const main = await runStep(entry, mainEnv, cwd, timeoutMs, 'main');
    const outputs = parseFileCommands(readText(mainFiles.GITHUB_OUTPUT));
    const state = parseFileCommands(readText(mainFiles.GITHUB_STATE));
    const exportedEnv = parseFileCommands(readText(mainFiles.GITHUB_ENV));
    const addedPath = parsePathFile(readText(mainFiles.GITHUB_PATH));
    const summary = readText(mainFiles.GITHUB_STEP_SUMMARY);
    const commands = parseWorkflowCommands(main.log);

    // post: same inputs, STATE_<name> for each saved entry; later steps of
    // the job also see GITHUB_ENV and GITHUB_PATH.
    let post: StepResult = { code: null, log: '', durationMs: 0 };
    let postSummary = '';
    if (opts.post !== false) {
      const postFiles = files('post');
      const stateEnv: Record<string, string> = {};
      for (const [k, v] of Object.entries(state)) stateEnv[`STATE_${k}`] = v;
      const extra: Record<string, string> = { ...exportedEnv, ...stateEnv };
      if (addedPath.length) {
        extra.PATH = [...addedPath.slice().reverse(), mainEnv.PATH ?? process.env.PATH ?? ''].join(path.delimiter);
      }
      post = await runStep(entry, buildEnv(postFiles, extra), cwd, timeoutMs, 'post');
      postSummary = readText(postFiles.GITHUB_STEP_SUMMARY);
    }
    const postCommands = parseWorkflowCommands(post.log);
    const masks = [...commands, ...postCommands].filter((c) => c.command === 'add-mask').map((c) => c.message);

    return {
      code: main.code,
      log: main.log,
      maskedLog: maskLog(main.log, masks),
      outputs,
      state,
      summary,
      exportedEnv,
      addedPath,
      commands,
      errors: commands.filter((c) => c.command === 'error').map((c) => c.message),
      warnings: commands.filter((c) => c.command === 'warning').map((c) => c.message),
      masks,
      durationMs: main.durationMs,
      postCode: post.code,
      postLog: post.log,
      postCommands,
      postSummary,
      postDurationMs: post.durationMs,
      env: mainEnv,
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
