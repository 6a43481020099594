// Two fakes of the host (src/host/shell.ts `Shell`): one that records every command and answers from
// a table, for logic tests; one that runs the scripts in this machine's `sh`, for the scripts themselves.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunResult } from '../../src/exec';
import { Shell, ShellOptions, shellJoin } from '../../src/host/shell';
import { writeFileScript } from '../../src/host/write-file';

/** One command the code sent to the host, as it was sent. */
export interface HostCall {
  kind: 'run' | 'sh' | 'write';
  /** `run`: the argv. */
  argv?: string[];
  /** `sh`: the script; `run`: the argv joined with spaces; `write`: the path. */
  text: string;
  opts: ShellOptions;
  /** `write`: what was written, and its mode. */
  content?: string | Buffer;
  mode?: number;
}

/** A reply: stdout of a success, a whole result, an error to throw (a lost connection), or computed. */
export type Reply = string | RunResult | Error | ((call: HostCall) => string | RunResult | Promise<string | RunResult>);

/**
 * One row of the table: which command (a script matched by a RegExp or a substring; an argv by its
 * leading words or a RegExp over it joined; a written path) and the reply. `times` bounds how often
 * the row answers; the next matching row answers after that.
 */
export type Row = (
  | { sh: RegExp | string }
  | { run: string[] | RegExp }
  | { write: RegExp | string }
  | { when: (call: HostCall) => boolean }
) & { reply?: Reply; times?: number };

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });

function matches(row: Row, c: HostCall): boolean {
  const text = (m: RegExp | string) => (typeof m === 'string' ? c.text.includes(m) : m.test(c.text));
  if ('when' in row) return row.when(c);
  if ('sh' in row) return c.kind === 'sh' && text(row.sh);
  if ('write' in row) return c.kind === 'write' && text(row.write);
  if (c.kind !== 'run') return false;
  return row.run instanceof RegExp ? row.run.test(c.text) : row.run.every((w, i) => c.argv?.[i] === w);
}

/**
 * Records every command, and answers from its table (first matching row, in order). A command no
 * row answers is an error naming it, except a write, which succeeds.
 */
export class RecordingShell implements Shell {
  readonly calls: HostCall[] = [];
  private readonly rows: Row[];

  constructor(
    rows: Row[] = [],
    readonly where = 'me@vps',
  ) {
    this.rows = [...rows];
  }

  /** Adds rows ahead of the table: they answer first. */
  answer(...rows: Row[]): this {
    this.rows.unshift(...rows);
    return this;
  }

  /** The scripts and joined argvs sent, in order (writes left out). */
  get commands(): string[] {
    return this.calls.filter((c) => c.kind !== 'write').map((c) => c.text);
  }

  run(argv: string[], opts: ShellOptions = {}): Promise<RunResult> {
    return this.reply({ kind: 'run', argv, text: argv.join(' '), opts });
  }

  sh(script: string, opts: ShellOptions = {}): Promise<RunResult> {
    return this.reply({ kind: 'sh', text: script, opts });
  }

  async writeFile(remotePath: string, content: string | Buffer, mode?: number): Promise<void> {
    const r = await this.reply({ kind: 'write', text: remotePath, opts: {}, content, mode });
    if (r.code !== 0) throw new Error(`${this.where}: cannot write ${remotePath}: ${r.stderr}`);
  }

  private async reply(call: HostCall): Promise<RunResult> {
    this.calls.push(call);
    const row = this.rows.find((r) => matches(r, call) && (r.times === undefined || r.times > 0));
    if (!row) {
      if (call.kind === 'write') return ok();
      throw new Error(`RecordingShell: no row answers ${call.kind} ${call.text}`);
    }
    if (row.times !== undefined) row.times--;
    const r = typeof row.reply === 'function' ? await row.reply(call) : row.reply;
    if (r instanceof Error) throw r;
    return typeof r === 'string' || r === undefined ? ok(r) : r;
  }
}

/**
 * A host that is this machine's `sh`, in a temp folder as its home (or `cwd`), with `bin` first on
 * PATH for shims that play Docker or another deploy. Records every script and every stdin.
 */
export class LocalShell implements Shell {
  readonly home: string;
  readonly scripts: string[] = [];
  readonly inputs: string[] = [];

  constructor(
    readonly where = 'local@host',
    private readonly opts: { bin?: string; cwd?: string; keepHome?: boolean } = {},
  ) {
    this.home = fs.mkdtempSync(path.join(os.tmpdir(), 'local-shell-'));
  }

  /** Adds an executable shim on PATH (a `#!/bin/sh` body). */
  shim(name: string, body: string): void {
    fs.mkdirSync(this.bin, { recursive: true });
    fs.writeFileSync(path.join(this.bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }

  get bin(): string {
    return this.opts.bin ?? path.join(this.home, '.bin');
  }

  run(argv: string[], opts: ShellOptions = {}): Promise<RunResult> {
    return this.sh(shellJoin(argv), opts);
  }

  async sh(script: string, opts: ShellOptions = {}): Promise<RunResult> {
    this.scripts.push(script);
    if (opts.input !== undefined) this.inputs.push(opts.input);
    return this.exec(script, opts.input ?? '');
  }

  async writeFile(remotePath: string, content: string | Buffer, mode?: number): Promise<void> {
    const w = writeFileScript(remotePath, content, mode);
    this.scripts.push(w.script);
    const r = this.exec(w.script, w.heredoc);
    if (r.code !== 0) throw new Error(`${this.where}: cannot write ${remotePath}: ${r.stderr.trim()}`);
  }

  private exec(script: string, input: string): RunResult {
    const env = this.opts.keepHome
      ? { ...process.env, PATH: `${this.bin}:${process.env.PATH}` }
      : { PATH: `${this.bin}:${process.env.PATH}`, HOME: this.home };
    const r = spawnSync('sh', ['-c', script], { cwd: this.opts.cwd ?? this.home, input, env, encoding: 'utf8' });
    return { code: r.status ?? 255, stdout: r.stdout, stderr: r.stderr };
  }
}
