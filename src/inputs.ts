import * as core from '@actions/core';
import * as fs from 'fs';
import * as path from 'path';
import { RULE_IDS } from './checks';
import { addMask } from './mask';
import { InputError } from './errors';
import type { Hooks } from './hooks';
import { VerifyCheck, parseVerify } from './verify';

export type Command = 'deploy' | 'build' | 'check' | 'rollback' | 'remove' | 'comment';

export interface StackSpec {
  /** Swarm stack name (also the prefix of its services). */
  name: string;
  /** Compose files, relative to the working directory, merged in order like `docker stack deploy -c a -c b`. */
  files: string[];
}

export interface Inputs {
  command: Command;
  workingDirectory: string;
  services: string;
  registry: string;
  registryUsername: string;
  registryPassword: string;
  imagePrefix: string;
  /** Versions set from outside (input `versions`): they win over VERSION files. */
  versions: Record<string, string>;
  buildArgs: Record<string, string>;
  target: string;
  rebuild: boolean;
  releaseTagCheck: 'warn' | 'strict' | 'off';
  host: string;
  port: number;
  user: string;
  sshKey: string;
  sshPassphrase: string;
  knownHosts: string;
  stacks: StackSpec[];
  env: Record<string, string>;
  /** Seconds per layer, or undefined for `auto` (from each service's update_config and healthcheck). */
  timeout?: number;
  /** Seconds, or undefined for `auto` (derived per service from its update_config and healthcheck). */
  stability?: number;
  rollbackTo: string;
  release: string;
  keepReleases: number;
  lockTimeout: number;
  /** Seconds after which a lock whose run never released it is broken. */
  lockStaleAfter: number;
  remoteDir: string;
  skipChecks: string[];
  /** Values for the stacks' external secrets (masked). */
  secrets: Record<string, string>;
  generateSecrets: string[];
  /** Keys of given or generated secrets that every stack declaring them shares (one Swarm secret). */
  sharedSecrets: string[];
  dryRun: boolean;
  /** Requests that must answer once their layer is healthy (command deploy). */
  verify: VerifyCheck[];
  /** Host commands around each layer of a deploy. */
  hooks: Hooks;
  /** Live preview stacks (`<name>-pr-<N>`, counted by pull request) a deploy may add to; 0: no cap. */
  maxPreviews: number;
  /** Markdown of the pull request comment (command comment). */
  comment: string;
  /** The pull request to comment on (command comment); 0 when not given and not a pull_request event. */
  pullRequest: number;
  /** Token for the GitHub API (command comment; masked). */
  githubToken: string;
}

// Docker stack names become service, network and label prefixes: keep them boring.
const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST = /^[A-Za-z0-9.:_[\]-]+$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
// No leading '-': the path reaches mkdir, rm and stat on the host and must never read as an option.
const REMOTE_DIR = /^[A-Za-z0-9_./~][A-Za-z0-9_./~-]*$/;
const RELEASE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/;

type Get = (name: string) => string;

/** The runner fills these from action.yml; repeated here so a missing variable behaves the same (a unit test keeps them equal). */
export const DEFAULTS: Record<string, string> = {
  command: 'deploy',
  'working-directory': '.',
  services: 'service/*',
  'release-tag-check': 'warn',
  port: '22',
  timeout: 'auto',
  stability: 'auto',
  'rollback-to': 'previous',
  'keep-releases': '10',
  'lock-timeout': '300',
  'lock-stale-after': '3600',
  'remote-dir': '.deploy-action',
  'dry-run': 'false',
  rebuild: 'false',
  'hook-timeout': '300',
  'max-previews': '0',
};

function positiveInt(get: Get, name: string, min = 1): number {
  const raw = get(name).trim();
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min)
    throw new InputError(`Input \`${name}\` must be a whole number ≥ ${min}, got "${raw}".`);
  return n;
}

function oneOf<T extends string>(get: Get, name: string, allowed: readonly T[]): T {
  const v = get(name).trim() as T;
  if (!allowed.includes(v)) throw new InputError(`Input \`${name}\` must be one of ${allowed.join(', ')}; got "${v}".`);
  return v;
}

// What a bad key of a secret line must look like to be named in the error: a word, not free text.
const READABLE_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * `KEY=VALUE` lines; blank lines and `#` comments are skipped; a value may contain `=`.
 * With `secret`, an error names the line number and at most a name-like key: a line without `=`,
 * or with free text before it, may be a pasted value, and an error reaches the log, annotation and summary.
 */
export function parseKeyValues(
  text: string,
  inputName: string,
  opts: { secret?: boolean } = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!ENV_KEY.test(key)) {
      const where = `Input \`${inputName}\` line ${i + 1}`;
      const rule = 'expected KEY=VALUE with KEY made of letters, digits and _';
      if (!opts.secret) throw new InputError(`${where}: ${rule}, got "${line.slice(0, 40)}".`);
      const why =
        eq < 0
          ? 'there is no ='
          : !key
            ? 'there is no KEY before the ='
            : READABLE_KEY.test(key)
              ? `KEY "${key}" is not allowed`
              : 'the text before the first = is not a KEY';
      throw new InputError(`${where}: ${rule}; ${why} (the line is not shown: it may hold a secret).`);
    }
    out[key] = line.slice(eq + 1);
  });
  return out;
}

export function parseStacks(text: string): StackSpec[] {
  const stacks: StackSpec[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!STACK_NAME.test(name)) {
      throw new InputError(
        `Input \`stacks\` line ${i + 1}: "${line.trim().slice(0, 60)}" is not STACK_NAME=compose-file[,compose-file…]; a stack name is letters, digits, _ and - (at most 63, starting with a letter or digit).`,
      );
    }
    const files = line
      .slice(eq + 1)
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    if (!files.length) throw new InputError(`Input \`stacks\` line ${i + 1}: stack "${name}" names no compose file.`);
    for (const f of files) {
      if (path.isAbsolute(f) || path.normalize(f).startsWith('..') || /[\0\n]/.test(f)) {
        throw new InputError(
          `Input \`stacks\`: compose file "${f}" of stack "${name}" must be a path inside working-directory.`,
        );
      }
      // docker stack deploy reads --compose-file values as CSV: a double quote cannot get through.
      if (f.includes('"'))
        throw new InputError(
          `Input \`stacks\`: compose file "${f}" of stack "${name}" contains a double quote, which docker stack deploy cannot read; rename the file.`,
        );
    }
    if (stacks.some((s) => s.name === name)) throw new InputError(`Input \`stacks\`: stack "${name}" is listed twice.`);
    stacks.push({ name, files });
  });
  return stacks;
}

// A service name as the stacks and the `versions` output spell it; a version is a Docker tag.
const SERVICE_NAME = /^[a-z][a-z0-9]*(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** `versions`: `name=version` lines, or the JSON object the `versions` output gives. */
export function parseVersions(text: string): Record<string, string> {
  const raw = text.trim();
  if (!raw) return {};
  let pairs: [string, unknown, string][];
  if (raw.startsWith('{') || raw.startsWith('[')) {
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch (e) {
      throw new InputError(
        `Input \`versions\`: not valid JSON (${(e as Error).message}); give a JSON object {"name": "1.2.3"} or name=version lines.`,
      );
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw new InputError('Input `versions`: the JSON must be an object {"name": "1.2.3"}.');
    pairs = Object.entries(data as Record<string, unknown>).map(([k, v]) => [k, v, `"${k}"`]);
  } else {
    pairs = [];
    raw.split(/\r?\n/).forEach((line, i) => {
      if (!line.trim() || line.trim().startsWith('#')) return;
      const eq = line.indexOf('=');
      if (eq < 0)
        throw new InputError(`Input \`versions\` line ${i + 1}: "${line.trim().slice(0, 60)}" is not name=version.`);
      pairs.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim(), `line ${i + 1}`]);
    });
  }
  const out: Record<string, string> = {};
  for (const [name, version, where] of pairs) {
    if (!SERVICE_NAME.test(name))
      throw new InputError(
        `Input \`versions\` ${where}: "${String(name).slice(0, 60)}" is not a service name (lower-case letters and digits, . _ - between them, starting with a letter).`,
      );
    if (typeof version !== 'string' || !TAG.test(version)) {
      throw new InputError(
        `Input \`versions\` ${where}: the version of ${name}, ${JSON.stringify(version)?.slice(0, 60)}, is not a valid image tag (letters, digits, _ . -, at most 128, not starting with . or -).`,
      );
    }
    if (name in out) throw new InputError(`Input \`versions\`: ${name} is given twice.`);
    out[name] = version;
  }
  return out;
}

/** `KEY=VALUE` lines of secret values: each value masked before anything else happens. */
function secretValues(text: string): Record<string, string> {
  const values = parseKeyValues(text, 'secrets', { secret: true });
  for (const v of Object.values(values)) if (v) addMask(v);
  return values;
}

/** Release tag: `refs/tags/v1.2.3` → `1.2.3`; otherwise `sha-<7>`. */
export function defaultRelease(ref: string | undefined, sha: string | undefined): string {
  const m = /^refs\/tags\/v?(.+)$/.exec(ref ?? '');
  if (m && RELEASE.test(m[1])) return m[1];
  return `sha-${(sha ?? 'unknown').slice(0, 7)}`;
}

/** Parses and validates every input once; `get` is injectable for tests. */
export function readInputs(raw: Get = (n) => core.getInput(n), env: NodeJS.ProcessEnv = process.env): Inputs {
  const get: Get = (n) => raw(n) || DEFAULTS[n] || '';
  // Secrets are masked before anything, even a bad `command`, could fail or print.
  for (const secret of ['registry-password', 'ssh-key', 'ssh-passphrase', 'secrets', 'github-token']) {
    const v = get(secret);
    if (v) addMask(v);
  }
  const command = oneOf(get, 'command', ['deploy', 'build', 'check', 'rollback', 'remove', 'comment'] as const);
  const workspace = env.GITHUB_WORKSPACE || process.cwd();
  const workingDirectory = path.resolve(workspace, get('working-directory') || '.');

  const host = get('host').trim();
  const user = get('user').trim();
  const needsHost = command === 'deploy' || command === 'rollback' || command === 'remove';
  // `check` given a host also runs the checks that need the swarm's facts (read-only).
  if (needsHost || (command === 'check' && host)) {
    if (!host) throw new InputError('Input `host` is required for command ' + command + '.');
    if (!HOST.test(host)) throw new InputError(`Input \`host\` "${host}" is not a host name or address.`);
    if (!USER.test(user))
      throw new InputError(`Input \`user\` must be a user name (letters, digits, _ . -), got "${user}".`);
    if (!get('ssh-key').trim()) throw new InputError('Input `ssh-key` is required for command ' + command + '.');
    if (!get('known-hosts').trim()) {
      throw new InputError(
        'Input `known-hosts` is required: the pinned host key line(s), e.g. from `ssh-keyscan -p PORT HOST`. The action never accepts an unknown host key.',
      );
    }
  }
  const port = positiveInt(get, 'port');
  if (port > 65535) throw new InputError('Input `port` must be ≤ 65535.');

  const stacks = parseStacks(get('stacks'));
  if ((needsHost || command === 'check') && !stacks.length) {
    throw new InputError(
      `Input \`stacks\` is required for command ${command}: one layer per line, STACK_NAME=compose-file.`,
    );
  }

  const registry = get('registry').trim();
  if (registry && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(registry))
    throw new InputError(`Input \`registry\` "${registry}" is not a registry host[:port].`);
  const imagePrefix = get('image-prefix')
    .trim()
    .replace(/^\/+|\/+$/g, '');
  if (
    imagePrefix &&
    !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(imagePrefix)
  ) {
    throw new InputError(
      `Input \`image-prefix\` "${imagePrefix}" is not a valid image repository path (lower-case letters, digits, . _ - and /).`,
    );
  }

  const stability = autoOrSeconds(get, 'stability', 0);
  const timeout = autoOrSeconds(get, 'timeout', 1);

  const release = get('release').trim() || defaultRelease(env.GITHUB_REF, env.GITHUB_SHA);
  if (!RELEASE.test(release))
    throw new InputError(`Input \`release\` "${release}" must be letters, digits, . _ + - (at most 128).`);

  // The SSH session starts in the user's home, and quoting would keep a leading ~ literal.
  const remoteDir = (get('remote-dir') || '.deploy-action').trim().replace(/^~\/?/, '') || '.';
  if (!REMOTE_DIR.test(remoteDir) || remoteDir.split('/').includes('..')) {
    throw new InputError(
      `Input \`remote-dir\` "${remoteDir}" must be a plain path (letters, digits, . _ - / ~) without "..".`,
    );
  }

  const comment = get('comment').trim();
  const pullRequest = pullRequestNumber(get('pull-request'), env);
  if (command === 'comment') {
    if (!comment)
      throw new InputError(
        'Input `comment` is required for command comment: the Markdown to post on the pull request.',
      );
    if (!pullRequest)
      throw new InputError(
        'Input `pull-request` is required for command comment outside a pull_request event: the number of the pull request.',
      );
    if (!get('github-token').trim())
      throw new InputError(
        'Input `github-token` is required for command comment (e.g. the job token `github.token`, with `pull-requests: write`).',
      );
  }

  const bool = (name: string): boolean => {
    const v = get(name).trim().toLowerCase();
    if (!['', 'true', 'false'].includes(v))
      throw new InputError(`Input \`${name}\` must be true or false, got "${v}".`);
    return v === 'true';
  };

  return {
    command,
    workingDirectory,
    services: (get('services') || 'service/*').trim(),
    registry,
    registryUsername: get('registry-username').trim(),
    registryPassword: get('registry-password'),
    imagePrefix,
    versions: parseVersions(get('versions')),
    buildArgs: parseKeyValues(get('build-args'), 'build-args', { secret: true }),
    target: get('target').trim(),
    rebuild: bool('rebuild'),
    releaseTagCheck: oneOf(get, 'release-tag-check', ['warn', 'strict', 'off'] as const),
    host,
    port,
    user,
    sshKey: get('ssh-key'),
    sshPassphrase: get('ssh-passphrase'),
    knownHosts: get('known-hosts'),
    stacks,
    env: parseKeyValues(get('env'), 'env'),
    timeout,
    stability,
    rollbackTo: (get('rollback-to') || 'previous').trim(),
    release,
    keepReleases: positiveInt(get, 'keep-releases'),
    lockTimeout: positiveInt(get, 'lock-timeout', 0),
    lockStaleAfter: positiveInt(get, 'lock-stale-after', 60),
    remoteDir,
    secrets: secretValues(get('secrets')),
    generateSecrets: get('generate-secrets')
      .split(/[,\s]+/)
      .map((s) => s.trim())
      .filter(Boolean),
    sharedSecrets: get('shared-secrets')
      .split(/[,\s]+/)
      .map((s) => s.trim())
      .filter(Boolean),
    skipChecks: ruleIds(get('skip-checks')),
    dryRun: bool('dry-run'),
    verify: parseVerify(
      get('verify'),
      stacks.map((s) => s.name),
    ),
    hooks: {
      'pre-deploy': get('pre-deploy').trim(),
      'post-deploy': get('post-deploy').trim(),
      'on-failure': get('on-failure').trim(),
      timeoutS: positiveInt(get, 'hook-timeout'),
    },
    maxPreviews: positiveInt(get, 'max-previews', 0),
    comment,
    pullRequest,
    githubToken: get('github-token').trim(),
  };
}

/** `auto` (undefined) or a whole number of seconds, at least `min`. */
function autoOrSeconds(get: Get, name: string, min: number): number | undefined {
  const raw = (get(name) || 'auto').trim();
  if (raw === 'auto') return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min) {
    throw new InputError(
      `Input \`${name}\` must be \`auto\` or a number of seconds${min ? ` (at least ${min})` : ''}, got "${raw}".`,
    );
  }
  return Number(raw);
}

/** `pull-request`: a number, or the pull request of a pull_request event (GITHUB_EVENT_PATH). */
function pullRequestNumber(raw: string, env: NodeJS.ProcessEnv): number {
  const v = raw.trim();
  if (v) {
    if (!/^[1-9]\d{0,9}$/.test(v))
      throw new InputError(`Input \`pull-request\` must be a pull request number, got "${v.slice(0, 40)}".`);
    return Number(v);
  }
  try {
    const event = JSON.parse(fs.readFileSync(env.GITHUB_EVENT_PATH ?? '', 'utf8')) as {
      pull_request?: { number?: unknown };
    };
    return typeof event.pull_request?.number === 'number' ? event.pull_request.number : 0;
  } catch {
    return 0;
  }
}

/** `skip-checks`: known rule ids only, so a typo does not silently leave a rule on. */
function ruleIds(raw: string): string[] {
  const ids = raw
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  for (const id of ids) {
    if (id !== 'all' && !RULE_IDS.includes(id))
      throw new InputError(`Input \`skip-checks\`: unknown rule "${id}" (rules: ${RULE_IDS.join(', ')}, or all).`);
  }
  return ids;
}
