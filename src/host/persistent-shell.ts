import { randomBytes } from 'crypto';
import type { NodeSSH } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import { RunResult } from '../exec';
import { shellJoin } from './shell';

/**
 * One long-lived `sh` on one SSH channel: commands are written to it and delimited by a random
 * marker. sshd sets up every new exec channel in ~170 ms (measured on the lab); this costs one
 * fork. Each script runs in its own `sh -c` with its text quoted, so even a broken script cannot
 * leave this shell waiting for input.
 */
export class PersistentShell {
  private out = '';
  private err = '';
  private waiting?: { resolve: (r: RunResult) => void; reject: (e: Error) => void };
  private queue: Promise<unknown> = Promise.resolve();
  private closed?: Error;
  private readonly mark = `@@deploy-action-${randomBytes(8).toString('hex')}@@`;

  private constructor(private readonly ch: ClientChannel) {
    ch.on('data', (d: Buffer) => {
      this.out += d.toString('utf8');
      this.settle();
    });
    ch.stderr.on('data', (d: Buffer) => {
      this.err += d.toString('utf8');
      this.settle();
    });
    ch.on('close', () => {
      this.closed = Object.assign(new Error('the remote shell closed (connection dropped?)'), { dropped: true });
      this.waiting?.reject(this.closed);
      this.waiting = undefined;
    });
  }

  static open(ssh: NodeSSH): Promise<PersistentShell> {
    return new Promise((resolve, reject) => {
      if (!ssh.connection) return reject(Object.assign(new Error('Not connected to server'), { dropped: true }));
      ssh.connection.exec('exec sh', (err, ch) =>
        err ? reject(Object.assign(err, { dropped: true })) : resolve(new PersistentShell(ch)),
      );
    });
  }

  private settle(): void {
    if (!this.waiting) return;
    const endOut = new RegExp(`\\n${this.mark} (\\d+)\\n`).exec(this.out);
    const endErr = this.err.indexOf(`\n${this.mark}\n`);
    if (!endOut || endErr < 0) return;
    const stdout = this.out.slice(0, endOut.index);
    const stderr = this.err.slice(0, endErr);
    this.out = this.out.slice(endOut.index + endOut[0].length);
    this.err = this.err.slice(endErr + this.mark.length + 2);
    const w = this.waiting;
    this.waiting = undefined;
    w.resolve({ code: Number(endOut[1]), stdout, stderr });
  }

  run(script: string, base64Input?: string): Promise<RunResult> {
    const next = this.queue.then(
      () =>
        new Promise<RunResult>((resolve, reject) => {
          if (this.closed) return reject(this.closed);
          this.waiting = { resolve, reject };
          const m = shellJoin([this.mark]);
          const end = `printf '\\n%s %d\\n' ${m} $?; printf '\\n%s\\n' ${m} >&2\n`;
          if (base64Input === undefined) {
            this.ch.write(`sh -c ${shellJoin([script])} </dev/null; ${end}`);
          } else {
            // Base64 lines cannot contain the delimiter, so the here-document ends where we say.
            const eof = `DEPLOY_ACTION_EOF_${randomBytes(6).toString('hex')}`;
            const lines = base64Input.replace(/(.{76})/g, '$1\n');
            this.ch.write(`sh -c ${shellJoin([script])} <<'${eof}'\n${lines}\n${eof}\n${end}`);
          }
        }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  close(): void {
    this.ch.end();
  }
}
