// How a remote command can fail without an exit code: out of time, or its connection gone.

/** Every remote command is bounded: a wedged engine or a stalled registry must not hang the job. */
export const COMMAND_TIMEOUT_MS = 120_000;

/** A remote command that did not answer within its bound. */
export class CommandTimeout extends Error {
  constructor(where: string, script: string, ms: number) {
    super(
      `${where}: a remote command did not answer within ${Math.round(ms / 1000)} s ` +
        `(${script.split('\n')[0].slice(0, 80)}…)`,
    );
    this.name = 'CommandTimeout';
  }
}

/** A lost connection (worth a reconnect), not a command that failed or timed out. */
export function isDropped(e: Error & { dropped?: boolean }): boolean {
  if (e instanceof CommandTimeout) return false;
  return !!e.dropped || /Not connected|No response|ECONNRESET|socket|closed|Channel open failure/i.test(e.message);
}
