import { InputError } from '../errors';
import { Command, Get, positiveInt } from './values';

/** How the action reaches the host, and where it keeps its files there. */
export interface ConnectionInputs {
  host: string;
  port: number;
  user: string;
  sshKey: string;
  sshPassphrase: string;
  knownHosts: string;
  remoteDir: string;
}

const HOST = /^[A-Za-z0-9.:_[\]-]+$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
// No leading '-': the path reaches mkdir, rm and stat on the host and must never read as an option.
const REMOTE_DIR = /^[A-Za-z0-9_./~][A-Za-z0-9_./~-]*$/;

/** The commands that act on the host; `check` given a host also reads the swarm's facts (read-only). */
export function needsHost(command: Command): boolean {
  return command === 'deploy' || command === 'rollback' || command === 'remove';
}

export function readConnection(get: Get, command: Command): ConnectionInputs {
  const host = get('host').trim();
  const user = get('user').trim();
  if (needsHost(command) || (command === 'check' && host)) {
    if (!host) throw new InputError('Input `host` is required for command ' + command + '.');
    if (!HOST.test(host)) throw new InputError(`Input \`host\` "${host}" is not a host name or address.`);
    if (!USER.test(user))
      throw new InputError(`Input \`user\` must be a user name (letters, digits, _ . -), got "${user}".`);
    if (!get('ssh-key').trim()) throw new InputError('Input `ssh-key` is required for command ' + command + '.');
    if (!get('known-hosts').trim()) {
      throw new InputError(
        'Input `known-hosts` is required: the pinned host key line(s), e.g. from `ssh-keyscan -p PORT HOST`. ' +
          'The action never accepts an unknown host key.',
      );
    }
  }
  const port = positiveInt(get, 'port');
  if (port > 65535) throw new InputError('Input `port` must be ≤ 65535.');
  return {
    host,
    port,
    user,
    sshKey: get('ssh-key'),
    sshPassphrase: get('ssh-passphrase'),
    knownHosts: get('known-hosts'),
    remoteDir: remoteDir(get),
  };
}

function remoteDir(get: Get): string {
  // The SSH session starts in the user's home, and quoting would keep a leading ~ literal.
  const dir = (get('remote-dir') || '.deploy-action').trim().replace(/^~\/?/, '') || '.';
  if (!REMOTE_DIR.test(dir) || dir.split('/').includes('..')) {
    throw new InputError(
      `Input \`remote-dir\` "${dir}" must be a plain path (letters, digits, . _ - / ~) without "..".`,
    );
  }
  return dir;
}
