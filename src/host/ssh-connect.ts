import * as net from 'net';
import { hostToken } from '../knownhosts';
import type { Inputs } from '../inputs';
import type { RemoteOptions } from '../remote';

/** Turns ssh2's terse errors into one sentence that names host, port and user, never the key. */
export function explainSshError(e: Error, presented: string, opts: RemoteOptions): string {
  const msg = e.message || String(e);
  const who = `${opts.user}@${hostToken(opts.host, opts.port)}`;
  if (/verification failed|Host denied/i.test(msg)) {
    return (
      `Host key verification failed for ${who}: the server presented ${presented || 'a key'} which is not ` +
      `pinned in \`known-hosts\`. Refusing to connect (possible man-in-the-middle, or the host was rebuilt: ` +
      `update known-hosts from a trusted source).`
    );
  }
  if (/authentication methods failed/i.test(msg)) {
    return (
      `SSH authentication failed for ${who}: the server refused the key in \`ssh-key\` (is its public key ` +
      `in ~${opts.user}/.ssh/authorized_keys?).`
    );
  }
  if (/passphrase/i.test(msg)) {
    const hint = opts.passphrase
      ? 'Check `ssh-passphrase`: it does not open this key'
      : 'Give `ssh-passphrase` or use a key without one';
    return `Cannot use \`ssh-key\` for ${who}: ${msg.replace(/[\r\n]+/g, ' ')}. ${hint}.`;
  }
  if (/Cannot parse privateKey|Unsupported key format/i.test(msg)) {
    return `Input \`ssh-key\` is not a private key ssh2 can read (OpenSSH or PEM): ${msg.replace(/[\r\n]+/g, ' ')}`;
  }
  if (/Timed out/i.test(msg))
    return (
      `Timed out connecting to ${who} after ${Math.round((opts.connectTimeout ?? 20000) / 1000)} s ` +
      `(host down, firewall, or wrong port).`
    );
  if (/ECONNREFUSED/.test(msg))
    return `Connection refused by ${hostToken(opts.host, opts.port)} (no SSH server on that port?).`;
  if (/ENOTFOUND|EAI_AGAIN/.test(msg)) return `Cannot resolve host "${opts.host}".`;
  return `SSH connection to ${who} failed: ${msg}`;
}

/** A TCP connection to sshd, bounded, with Nagle off. */
export function openSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    // Small request/response exchanges: without this every command waits on delayed ACKs.
    sock.setNoDelay(true);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('Timed out while connecting'));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** How the action reaches the host, from its inputs (the main step and the post step alike). */
export function sshOptions(
  inputs: Pick<Inputs, 'host' | 'port' | 'user' | 'sshKey' | 'sshPassphrase' | 'knownHosts'>,
  connectTimeout?: number,
): RemoteOptions {
  return {
    host: inputs.host,
    port: inputs.port,
    user: inputs.user,
    privateKey: inputs.sshKey,
    passphrase: inputs.sshPassphrase,
    knownHosts: inputs.knownHosts,
    connectTimeout,
  };
}
