import * as core from '@actions/core';
import type { Client, ClientChannel } from 'ssh2';
import { bounded } from '../retry-helper';
import { DIAL_COMMAND, Dialed, firstLine } from './engine-api';
import { CommandTimeout } from './failures';

/** Where the docker CLI finds its engine when nothing says otherwise. */
export const DEFAULT_SOCKET = '/var/run/docker.sock';

/**
 * What the host's shell says of its Docker setup, in one command and no process of the CLI: its
 * clock, the user's home, and what decides which engine `docker` talks to (DOCKER_HOST, DOCKER_CONTEXT,
 * the config's current context: its one key is read there, never the credentials beside it).
 */
export const PROBE_SCRIPT = [
  `date +%s%3N`,
  `printf '%s\\n' "$HOME" "\${DOCKER_HOST-}" "\${DOCKER_CONTEXT-}"`,
  `sed -n 's/.*"currentContext"[[:space:]]*:[[:space:]]*"\\([^"]*\\)".*/\\1/p' ` +
    `"\${DOCKER_CONFIG:-$HOME/.docker}/config.json" 2>/dev/null | head -n 1`,
  'true',
].join('; ');

export interface HostFacts {
  home: string;
  /** Host clock minus runner clock (ms), from the probe's round trip. */
  offsetMs: number;
  /** The socket the CLI talks to, or null when only the CLI can reach its engine (tcp, ssh, a context). */
  socket: string | null;
}

/** Reads the probe's answer; `sentAt` and `at` bound the moment the host read its clock. */
export function parseProbe(stdout: string, sentAt: number, at: number): HostFacts {
  const [clock = '', home = '', dockerHost = '', context = '', current = ''] = stdout.split('\n');
  const offsetMs = Number(clock.trim()) - Math.round((sentAt + at) / 2);
  let socket: string | null = DEFAULT_SOCKET;
  if (dockerHost) socket = dockerHost.startsWith('unix://') ? dockerHost.slice('unix://'.length) : null;
  else if ((context || current) && (context || current) !== 'default') socket = null;
  return { home, offsetMs: Number.isFinite(offsetMs) ? offsetMs : 0, socket };
}

const dropped = (e: Error) => Object.assign(e, { dropped: true });

/** Where the Engine API is dialed, kept across reconnects: the engine's socket, or the CLI's dial-stdio. */
export class EngineEndpoint {
  /** The socket the CLI uses (the probe's answer; the default until then), or null for dial-stdio only. */
  private socket: string | null = DEFAULT_SOCKET;
  /** Sockets sshd would not forward (its policy, or no such socket): dial-stdio instead, for the job. */
  private readonly failed = new Set<string>();
  private offsetMs?: number;

  private target(): string | null {
    return this.socket && !this.failed.has(this.socket) ? this.socket : null;
  }

  /**
   * Takes the probe's answer; true when the connection goes elsewhere now (another socket, or the
   * CLI's engine). The answer may come before or after a dial on the default socket failed: alike.
   */
  learn(f: HostFacts): boolean {
    this.offsetMs = f.offsetMs;
    const before = this.target();
    this.socket = f.socket;
    return this.target() !== before;
  }

  async open(conn: Client, prefix: string, where: string, boundMs: number): Promise<Dialed> {
    const socket = this.target();
    if (socket) {
      const t0 = Date.now();
      try {
        const stream = await openStreamLocal(conn, socket, boundMs);
        if (core.isDebug()) core.debug(`${where} Engine API socket ${socket} → open (${Date.now() - t0} ms)`);
        return { stream, offsetMs: this.offsetMs, stderr: () => '' };
      } catch (e) {
        // sshd answered, so the connection lives: a refusal, not a drop.
        if ((e as { dropped?: boolean }).dropped || !/Channel open failure/.test((e as Error).message)) throw e;
        this.failed.add(socket);
        core.debug(`${where}: no Engine API on ${socket} (${(e as Error).message}); the CLI's instead`);
      }
    }
    return openDialStdio(conn, prefix, where, boundMs);
  }
}

/**
 * The engine's socket forwarded by sshd itself (OpenSSH's direct-streamlocal): no session, no
 * process on the host. sshd may refuse it (AllowStreamLocalForwarding no): the caller dials the CLI.
 */
export function openStreamLocal(conn: Client, socket: string, boundMs: number): Promise<ClientChannel> {
  return bounded(
    new Promise<ClientChannel>((resolve, reject) =>
      conn.openssh_forwardOutStreamLocal(socket, (err, ch) => (err ? reject(err) : resolve(ch))),
    ),
    boundMs,
    () => dropped(new Error('no answer to a channel request')),
  );
}

/** `docker system dial-stdio` on an exec channel: whatever engine the host's CLI is set to use. */
export async function openDialStdio(conn: Client, prefix: string, where: string, boundMs: number): Promise<Dialed> {
  const t0 = Date.now();
  // A connection that died unnoticed never answers a channel request: bounded, and counted as dropped.
  const ch = await bounded(
    new Promise<ClientChannel>((resolve, reject) =>
      conn.exec(prefix + DIAL_COMMAND, (err, c) => (err ? reject(dropped(err)) : resolve(c))),
    ),
    boundMs,
    () => dropped(new Error('no answer to a channel request')),
  );
  let stderr = '';
  ch.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-2000)));
  const hostMs = await bounded(firstLine(ch), boundMs, () => {
    ch.close();
    return new CommandTimeout(where, DIAL_COMMAND, boundMs);
  }).catch((e: Error) => {
    throw new Error(`${where}: cannot reach the Docker Engine API: ${stderr.trim() || e.message}`);
  });
  // Opening a channel can take sshd most of a second: read the clock as it arrives, not halfway.
  const offsetMs = Number(hostMs) - Date.now();
  if (core.isDebug()) core.debug(`${where}$ ${DIAL_COMMAND} → open (${Date.now() - t0} ms)`);
  return { stream: ch, offsetMs: Number.isFinite(offsetMs) ? offsetMs : 0, stderr: () => stderr };
}
