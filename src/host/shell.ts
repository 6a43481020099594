import { quote } from 'shell-quote';
import { RunOptions, RunResult } from '../exec';
import type { Engine } from './engine-api';

export interface ShellOptions extends RunOptions {
  /** The command is safe to repeat: reconnect and retry when the connection dropped. */
  retry?: boolean;
  /** Bound on the command (ms): past it the command counts as failed. */
  timeoutMs?: number;
}

/**
 * The host as the deploy sees it: the SSH connection's persistent shell (src/remote.ts), or a
 * recording fake in the unit tests (__tests__/helpers/host.ts).
 */
export interface Shell {
  /** `user@host[:port]`, for messages. */
  readonly where: string;
  /** Runs one command: every word of the argv reaches it as one literal argument. */
  run(argv: string[], opts?: ShellOptions): Promise<RunResult>;
  /** Runs a script, built from shellJoin()ed parts only; `opts.input` is its standard input. */
  sh(script: string, opts?: ShellOptions): Promise<RunResult>;
  /** Installs a file whole or not at all (mode 600 unless given). */
  writeFile(remotePath: string, content: string | Buffer, mode?: number): Promise<void>;
}

/**
 * The host a layer deploys to: the shell, plus the Engine API connection the gate polls over and the
 * count of remote commands for the log. Implemented by src/remote.ts; a unit test can fake it.
 */
export interface Host extends Shell {
  /** The host's Engine API, over one connection opened at the first request. */
  engine(): Engine;
  /** Remote commands run so far in this job. */
  readonly commands: number;
}

/** Shell-quotes an argv for the remote shell: every word reaches the command as one literal argument. */
export function shellJoin(argv: string[]): string {
  return quote(argv);
}
