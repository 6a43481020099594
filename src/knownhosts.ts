import { createHash, createHmac } from 'crypto';
import { InputError } from './errors';

export interface HostKey {
  type: string;
  /** The key blob as the server sends it (base64-decoded known_hosts field). */
  blob: Buffer;
}

/** How a host is written in known_hosts: `host` on port 22, `[host]:port` elsewhere. */
export function hostToken(host: string, port: number): string {
  // OpenSSH compares host names in lower case.
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function matchesPattern(pattern: string, token: string): boolean {
  if (pattern.startsWith('|1|')) {
    // Hashed entry: |1|base64(salt)|base64(HMAC-SHA1(salt, token))
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(token).digest('base64') === hash;
  }
  const re = new RegExp(
    '^' +
      pattern
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\[/g, '\\[')
        .replace(/\]/g, '\\]')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
  );
  return re.test(token) || re.test(token.toLowerCase()) || new RegExp(re.source, 'i').test(token);
}

/**
 * The pinned keys for host:port from known_hosts text (OpenSSH format, plain or hashed names,
 * wildcards and `!negations`). `@revoked` lines are returned separately; `@cert-authority` is not supported.
 */
export function keysFor(knownHosts: string, host: string, port: number): { keys: HostKey[]; revoked: HostKey[] } {
  const token = hostToken(host, port);
  const keys: HostKey[] = [];
  const revoked: HostKey[] = [];
  knownHosts.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker = '';
    if (fields[0].startsWith('@')) marker = fields.shift() as string;
    if (fields.length < 3)
      throw new InputError(
        `Input \`known-hosts\` line ${i + 1}: expected "host key-type base64-key" (as ssh-keyscan prints).`,
      );
    const [hosts, type, b64] = fields;
    if (marker === '@cert-authority')
      throw new InputError(
        `Input \`known-hosts\` line ${i + 1}: @cert-authority entries are not supported; pin the host key itself.`,
      );
    const patterns = hosts.split(',');
    const negated = patterns.some((p) => p.startsWith('!') && matchesPattern(p.slice(1), token));
    if (negated || !patterns.some((p) => !p.startsWith('!') && matchesPattern(p, token))) return;
    const blob = Buffer.from(b64, 'base64');
    if (!wellFormed(blob, type)) {
      throw new InputError(
        `Input \`known-hosts\` line ${i + 1}: the key is not a valid ${type} key (bad base64 or truncated).`,
      );
    }
    (marker === '@revoked' ? revoked : keys).push({ type, blob });
  });
  return { keys, revoked };
}

/** The blob is length-prefixed fields, the first its own type name, filling it exactly: not garbled, not cut. */
function wellFormed(blob: Buffer, type: string): boolean {
  const fields: Buffer[] = [];
  let at = 0;
  while (at < blob.length) {
    if (at + 4 > blob.length) return false;
    const len = blob.readUInt32BE(at);
    if (at + 4 + len > blob.length) return false;
    fields.push(blob.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  const min = type === 'ssh-ed25519' ? 2 : type.startsWith('ecdsa-') ? 3 : type === 'ssh-rsa' ? 3 : 2;
  if (type === 'ssh-ed25519' && fields[1]?.length !== 32) return false;
  return fields.length >= min && fields[0].toString() === type;
}

export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Host key algorithms to offer so the server presents a key of a pinned type. */
export function hostKeyAlgorithms(keys: HostKey[]): string[] {
  const algos = new Set<string>();
  for (const k of keys) {
    if (k.type === 'ssh-rsa') ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'].forEach((a) => algos.add(a));
    else algos.add(k.type);
  }
  return [...algos];
}
