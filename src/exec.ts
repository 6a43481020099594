import * as exec from '@actions/exec';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Sent to the command's standard input (how secrets travel: never on a command line). */
  input?: string;
  /** Do not echo the command's output into the job log. */
  silent?: boolean;
  /**
   * A read-only command that may run while others do: on the host, on an SSH channel of its own
   * (a few tens of ms for sshd) rather than queued behind the persistent shell's one-at-a-time.
   */
  concurrent?: boolean;
}

/**
 * The one interface every external command goes through: the local Docker CLI and the remote
 * shell both implement it, so logic can be tested with a fake and the lab test drives the real thing.
 */
export interface Runner {
  readonly where: string;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
}

/** Throws with the command's own error text when it fails. */
export async function mustRun(runner: Runner, argv: string[], opts?: RunOptions): Promise<string> {
  const res = await runner.run(argv, opts);
  if (res.code !== 0) {
    const why = (res.stderr || res.stdout).trim().split('\n').slice(-5).join('\n');
    throw new Error(`${runner.where}: \`${argv.slice(0, 3).join(' ')}\` failed (exit ${res.code}): ${why}`);
  }
  return res.stdout;
}

/** Commands on the runner (docker build/push/login). */
export class LocalRunner implements Runner {
  readonly where = 'runner';
  constructor(private readonly cwd?: string) {}

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const [cmd, ...args] = argv;
    const res = await exec.getExecOutput(cmd, args, {
      cwd: this.cwd,
      ignoreReturnCode: true,
      silent: opts.silent ?? false,
      input: opts.input !== undefined ? Buffer.from(opts.input) : undefined,
    });
    return { code: res.exitCode, stdout: res.stdout, stderr: res.stderr };
  }
}
