import * as core from '@actions/core';
import type * as net from 'net';
import { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { InputError } from './errors';
import { RunResult, Runner } from './exec';
import { Dialed, Engine, EngineApi } from './host/engine-api';
import { EngineEndpoint, HostFacts, PROBE_SCRIPT, parseProbe } from './host/engine-endpoint';
import { explainSshError, openSocket } from './host/ssh-connect';
export { sshOptions } from './host/ssh-connect';
import { COMMAND_TIMEOUT_MS, CommandTimeout, isDropped } from './host/failures';
import { PersistentShell } from './host/persistent-shell';
import { Host, ShellOptions, shellJoin } from './host/shell';
import { writeFileScript } from './host/write-file';
import { fingerprint, hostKeyAlgorithms, hostToken, keysFor } from './knownhosts';
import { Clock, bounded, retry, systemClock } from './retry-helper';

export { COMMAND_TIMEOUT_MS, CommandTimeout, shellJoin, writeFileScript };

export interface RemoteOptions {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  passphrase?: string;
  knownHosts: string;
  /** Milliseconds to wait for the handshake. */
  connectTimeout?: number;
}

/** The SSH connection's own options: a timed-out command's shell is replaced. */
export interface ShOptions extends ShellOptions {
  /** Base64 text given to the script's standard input through the persistent shell (no new channel). */
  heredoc?: string;
}

/**
 * One SSH connection for the whole job (node-ssh over ssh2), with the host key pinned.
 * Reconnects once when the connection dropped, for commands the caller marks as safe to repeat.
 */
export class Remote implements Runner, Host {
  readonly where: string;
  private ssh = new NodeSSH();
  private shell?: PersistentShell;
  /** The connection closed under us (sshd gone, network cut): node-ssh still reports it connected. */
  private lost = false;
  private opened = {};
  private api?: EngineApi;
  private readonly endpoint = new EngineEndpoint();
  private facts?: Promise<HostFacts & { moved: boolean }>;
  /** Remote commands run (the Engine API connection counts as one), for the gate's log line. */
  commands = 0;
  /** Set before every script (`export K=V;`): the run's own Docker config folder on the host. */
  private prefix = '';
  /** Waits between reconnects (a fake one in the unit tests). */
  private clock: Pick<Clock, 'sleep'> = systemClock;

  private constructor(private readonly opts: RemoteOptions) {
    this.where = `${opts.user}@${hostToken(opts.host, opts.port)}`;
  }

  static async connect(opts: RemoteOptions): Promise<Remote> {
    const r = new Remote(opts);
    await r.open();
    return r;
  }

  private async open(): Promise<void> {
    const { host, port, user } = this.opts;
    const { keys, revoked } = keysFor(this.opts.knownHosts, host, port);
    if (!keys.length) {
      throw new InputError(
        `Input \`known-hosts\` has no entry for ${hostToken(host, port)} (port ${port} is written [host]:port). ` +
          `Get it with \`ssh-keyscan -p ${port} ${host}\` from a trusted network.`,
      );
    }
    let presented = '';
    const isPinned = (blob: Buffer) =>
      keys.some((k) => k.blob.equals(blob)) && !revoked.some((k) => k.blob.equals(blob));
    this.ssh = new NodeSSH();
    this.shell = undefined;
    let sock: net.Socket | undefined;
    try {
      sock = await openSocket(host, port, this.opts.connectTimeout ?? 20000);
      await this.ssh.connect({
        sock,
        username: user,
        privateKey: this.opts.privateKey,
        passphrase: this.opts.passphrase || undefined,
        readyTimeout: this.opts.connectTimeout ?? 20000,
        keepaliveInterval: 10000,
        keepaliveCountMax: 3,
        algorithms: { serverHostKey: hostKeyAlgorithms(keys) as never },
        hostVerifier: (key: Buffer) => {
          presented = fingerprint(key);
          return isPinned(key);
        },
      });
      // node-ssh listens for errors only while connecting: a reset later (sshd restarted, network
      // cut) would be an unhandled 'error' event and kill the step. The channels' close events tell
      // the commands in flight, and `sh` reconnects.
      const conn = this.ssh.connection;
      conn?.on('error', (err) => core.debug(`SSH connection to ${this.where}: ${err.message}`));
      this.lost = false;
      // node-ssh forgets the connection at its 'end' already: compare with this open's own.
      const opened = (this.opened = {});
      const lost = () => {
        if (this.opened !== opened || this.lost) return;
        this.lost = true;
        this.api?.drop(new Error(`Lost the SSH connection to ${this.where}: it closed`));
      };
      conn?.on('end', lost).on('close', lost);
    } catch (e) {
      // A refused key or host leaves our socket open, and an open socket keeps node from exiting.
      sock?.destroy();
      this.ssh.dispose();
      throw new Error(explainSshError(e as Error, presented, this.opts));
    }
  }

  async run(argv: string[], opts: ShOptions = {}): Promise<RunResult> {
    return this.sh(shellJoin(argv), opts);
  }

  private warnDropped(e: Error, failed: number): void {
    core.warning(`SSH connection to ${this.where} dropped (${e.message}); reconnecting (attempt ${failed}).`);
  }

  /** Runs a script in the remote shell. Callers build it from shellJoin()ed parts only. */
  async sh(script: string, opts: ShOptions = {}): Promise<RunResult> {
    try {
      return await retry(
        {
          attempts: opts.retry ? 4 : 1,
          delayMs: (failed) => 500 * failed,
          retryable: isDropped,
          clock: this.clock,
          onRetry: (e, failed) => this.warnDropped(e, failed),
        },
        async (n) => {
          if (n > 1) await this.reconnect();
          return this.once(script, opts);
        },
      );
    } catch (e) {
      const why = (e as Error).message;
      if (this.refusedChannel(e as Error)) throw new Error(this.refusal(why));
      if (isDropped(e as Error)) throw new Error(`Lost the SSH connection to ${this.where}: ${why}`);
      throw e;
    }
  }

  private async reconnect(): Promise<void> {
    try {
      this.shell?.close();
      this.ssh.dispose();
      await this.open();
    } catch (re) {
      // The next attempt finds no connection and counts as dropped.
      core.warning(`Reconnect failed: ${(re as Error).message}`);
    }
  }

  /** One attempt: a new channel when there is standard input or others may run, else the persistent shell. */
  private async once(script: string, opts: ShOptions): Promise<RunResult> {
    if (this.lost || !this.ssh.isConnected())
      throw Object.assign(new Error('Not connected to server'), { dropped: true });
    this.commands++;
    const t0 = Date.now();
    const ms = opts.timeoutMs ?? COMMAND_TIMEOUT_MS;
    let res: RunResult;
    if (opts.input !== undefined || opts.concurrent) {
      try {
        res = await this.onChannel(script, opts.input, ms);
      } catch (e) {
        // Standard input needs its channel (secrets never go in a script); the rest can wait its turn in the shell.
        if (opts.input !== undefined || !this.refusedChannel(e as Error)) throw e;
        core.debug(`${this.refusal((e as Error).message)}; run in the shell instead: ${script.slice(0, 200)}`);
        res = await this.inShell(script, opts.heredoc, ms);
      }
    } else {
      res = await this.inShell(script, opts.heredoc, ms);
    }
    // Every command, silent ones too: scripts never carry secrets (those travel on standard input).
    if (core.isDebug()) core.debug(`${this.where}$ ${script.slice(0, 300)} → ${res.code} (${Date.now() - t0} ms)`);
    return res;
  }

  /** sshd's MaxSessions refuses a channel while the connection stays up. */
  private refusedChannel(e: Error): boolean {
    return /Channel open failure/i.test(e.message) && !this.lost && this.ssh.isConnected();
  }

  private refusal(why: string): string {
    return `${this.where} refused another SSH channel (sshd MaxSessions?): ${why}`;
  }

  /** A channel of its own: standard input, or beside the commands of the persistent shell. */
  private async onChannel(script: string, input: string | undefined, ms: number): Promise<RunResult> {
    let channel: ClientChannel | undefined;
    const r = await bounded(
      this.ssh.execCommand(this.prefix + script, { stdin: input, onChannel: (c) => (channel = c) }),
      ms,
      () => {
        channel?.close();
        return new CommandTimeout(this.where, script, ms);
      },
    );
    if (r.code === null && r.signal === null && !this.ssh.isConnected())
      throw Object.assign(new Error('connection dropped'), { dropped: true });
    return { code: r.code ?? 255, stdout: r.stdout, stderr: r.stderr };
  }

  private async inShell(script: string, heredoc: string | undefined, ms: number): Promise<RunResult> {
    this.shell ??= await PersistentShell.open(this.ssh);
    const shell = this.shell;
    return bounded(shell.run(this.prefix + script, heredoc), ms, () => {
      // The shell is still busy with the stuck command: the next command gets a new one.
      shell.close();
      if (this.shell === shell) this.shell = undefined;
      return new CommandTimeout(this.where, script, ms);
    });
  }

  /**
   * Writes content to a remote file atomically, mode 600. The bytes travel base64-encoded in a
   * here-document of the persistent shell: no SFTP, no new channel (each costs sshd ~170 ms), and
   * the content never appears on a command line. A cut channel leaves a short temp file: its hash
   * (which covers the length) is checked before the rename, and every write has its own temp name.
   */
  async writeFile(remotePath: string, content: string | Buffer, mode?: number): Promise<void> {
    const w = writeFileScript(remotePath, content, mode);
    const res = await this.sh(w.script, { retry: true, heredoc: w.heredoc });
    if (res.code !== 0)
      throw new Error(`${this.where}: cannot write ${remotePath}: ${(res.stderr || res.stdout).trim()}`);
  }

  /** Variables every later command of this connection sees (quoted here, once). */
  setEnv(vars: Record<string, string>): void {
    this.prefix = Object.entries(vars)
      .map(([k, v]) => `export ${k}=${shellJoin([v])}; `)
      .join('');
  }

  /** The host's Engine API over one connection of its own, opened at the first request. */
  engine(): Engine {
    this.api ??= new EngineApi(() => this.dial(), this.where);
    return this.api;
  }

  /**
   * The host's clock, home, and which engine its CLI uses, asked once; the Engine API is moved to that
   * engine's socket when it was dialed elsewhere (`true`: asked on the wrong one, ask again).
   */
  hostFacts(): Promise<HostFacts & { moved: boolean }> {
    this.facts ??= (async () => {
      const sentAt = Date.now();
      const res = await this.sh(PROBE_SCRIPT, { retry: true });
      if (res.code !== 0) throw new Error(`${this.where}: ${(res.stderr || res.stdout).trim()}`);
      const f = parseProbe(res.stdout, sentAt, Date.now());
      this.api?.setOffset(f.offsetMs);
      const moved = this.endpoint.learn(f);
      if (moved) this.api?.close();
      if (moved) this.api = undefined;
      return { ...f, moved };
    })();
    return this.facts;
  }

  /** Opens the Engine API connection (reconnecting SSH once if it dropped). */
  private dial(): Promise<Dialed> {
    const bound = 15_000;
    const lostIfDropped = (e: Error) => {
      throw isDropped(e) ? new Error(`Lost the SSH connection to ${this.where}: ${e.message}`) : e;
    };
    return retry(
      {
        attempts: 2,
        delayMs: () => 500,
        retryable: isDropped,
        clock: this.clock,
        onRetry: (e, failed) => this.warnDropped(e, failed),
      },
      async (n) => {
        if (n > 1) await this.reconnect();
        const conn = this.ssh.connection;
        if (this.lost || !conn) throw Object.assign(new Error('Not connected to server'), { dropped: true });
        this.commands++;
        return this.endpoint.open(conn, this.prefix, this.where, bound);
      },
    ).catch(lostIfDropped);
  }

  dispose(): void {
    this.api?.close();
    this.shell?.close();
    this.ssh.dispose();
  }
}
