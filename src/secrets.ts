import * as core from '@actions/core';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as YAML from 'yaml';
import { mergeStack, referencedPath } from './compose';
import { InputError } from './errors';
import { RunResult } from './exec';
import { Shell, shellJoin } from './host/shell';
import { PreparedStack } from './stack';

/** The override file the action adds to a stack: it only names its secrets and configs. */
export const OVERRIDE_FILE = '.deploy-action/objects.yml';

export interface SecretPlan {
  key: string;
  /**
   * Swarm secret name this release uses. For `input`, '' until nameSecrets() asks the host: the
   * suffix is a hash keyed with a key only the host holds, so a public log cannot be used to guess the value.
   */
  name: string;
  source: 'input' | 'generated';
  /** Only for `input`: sent through stdin, to name the secret and to create it. Never logged. */
  value?: string;
  /** Only for `input`: the stack, hashed with the value (the same value in two stacks gets two names). */
  stack?: string;
  /** Only for `input`: the input secrets of the whole run, named together by the first layer. */
  run?: SecretPlan[];
  /** One Swarm secret for every stack that declares the key (input `shared-secrets`): named without the stack. */
  shared?: true;
}

/** Prefix of the Swarm name of a shared secret, in place of the stack's name. */
export const SHARED_PREFIX = 'shared';

const LABEL_STACK = 'deploy-action.stack';
const LABEL_KEY = 'deploy-action.key';
const LABEL_SHARED = 'deploy-action.shared';

/** `db_password` in the stack is given by the input line `db_password=…` or `DB_PASSWORD=…`. */
function lookup(values: Record<string, string>, key: string): string | undefined {
  return values[key] ?? values[key.toUpperCase().replace(/[^A-Z0-9]/g, '_')];
}

/**
 * Which external secrets of the stack the action manages: a value from the `secrets` input gets a
 * name from a keyed hash of its content, computed on the host once connected (same value, same
 * name: nothing re-created); a key in `generate-secrets` gets a fixed name and a random value
 * created once on the host. Input secrets are added to `run`, so one remote command names them all.
 * A key in `shared` is named without the stack (`shared_<key>…`): every stack that declares it, in
 * this run or another, uses one Swarm secret.
 */
export function planSecrets(
  stack: PreparedStack,
  values: Record<string, string>,
  generate: string[],
  run: SecretPlan[] = [],
  shared: string[] = [],
): SecretPlan[] {
  const merged = mergeStack(stack.resolved);
  const declared =
    merged.secrets && typeof merged.secrets === 'object'
      ? (merged.secrets as Record<string, { external?: unknown; file?: unknown }>)
      : {};
  const plans: SecretPlan[] = [];
  for (const [key, entry] of Object.entries(declared)) {
    const external = entry && (entry.external === true || entry.external === 'true');
    const value = lookup(values, key);
    const generated = generate.includes(key);
    if (!external) {
      if (value !== undefined || generated)
        throw new InputError(
          `Stack "${stack.name}": secret "${key}" must be declared \`external: true\` for the action to create it (a \`file:\` secret would put the value on the host's disk).`,
        );
      continue;
    }
    if (value !== undefined && generated)
      throw new InputError(
        `Secret "${key}" is both given (input \`secrets\`) and generated (input \`generate-secrets\`): pick one.`,
      );
    const isShared = shared.includes(key);
    if (isShared && value === undefined && !generated)
      throw new InputError(
        `Input \`shared-secrets\`: secret "${key}" of stack "${stack.name}" is neither given (input \`secrets\`) nor generated (input \`generate-secrets\`).`,
      );
    const share = isShared ? { shared: true as const } : {};
    if (value !== undefined) {
      const plan: SecretPlan = { key, name: '', source: 'input', value, stack: stack.name, run, ...share };
      run.push(plan);
      plans.push(plan);
    } else if (generated) {
      plans.push({ key, name: `${isShared ? SHARED_PREFIX : stack.name}_${key}`, source: 'generated', ...share });
    }
  }
  for (const g of generate) {
    if (!(g in declared))
      throw new InputError(`Input \`generate-secrets\`: stack "${stack.name}" declares no secret "${g}".`);
  }
  return plans;
}

/** The name a plan will have, for a dry run that does not connect: the host's part as placeholder text. */
export function displayName(plan: SecretPlan): string {
  return plan.name || `${plan.shared ? SHARED_PREFIX : plan.stack}_${plan.key}_<keyed hash computed on the host>`;
}

/** Every key of `shared-secrets` must be a secret some stack of the run declares: a typo is not silently ignored. */
export function checkShared(stacks: PreparedStack[], shared: string[]): void {
  for (const key of shared) {
    const declared = stacks.some((p) => {
      const secrets = mergeStack(p.resolved).secrets;
      return !!secrets && typeof secrets === 'object' && key in secrets;
    });
    if (!declared)
      throw new InputError(
        `Input \`shared-secrets\`: no stack of this run (${stacks.map((p) => p.name).join(', ')}) declares a secret "${key}".`,
      );
  }
}

/** Where the host keeps the hash key of secret names; it never leaves the host. */
export const secretKeyFile = (remoteDir: string) => `${remoteDir}/secret-key`;

/**
 * Host side of nameSecrets: creates the key if missing (random bytes, mode 600, linked into place
 * so two runs racing agree on one key), then prints sha256(key ‖ line decoded) for each base64 line of stdin.
 */
function namingScript(remoteDir: string): string {
  const key = shellJoin([secretKeyFile(remoteDir)]);
  const script = [
    'umask 077',
    `k=${key}`,
    'if [ ! -s "$k" ]; then',
    `  mkdir -p ${shellJoin([remoteDir])} && head -c 32 /dev/urandom > "$k.tmp.$$" || exit 1`,
    '  ln "$k.tmp.$$" "$k" 2>/dev/null; rm -f "$k.tmp.$$"',
    'fi',
    '[ -s "$k" ] && [ -r "$k" ] && chmod 600 "$k" || { echo "cannot read $k" >&2; exit 1; }',
    'while IFS= read -r line; do',
    '  h=$( { cat "$k" && printf \'%s\' "$line" | base64 -d; } | sha256sum ) || exit 1',
    '  printf \'%s\\n\' "${h%% *}"',
    'done',
  ].join('\n');
  // With stdin the script gets an exec channel of its own, run by the user's login shell: POSIX sh whatever that is.
  return shellJoin(['sh', '-c', script]);
}

/**
 * Names the input secrets not yet named, with those of every other layer of their run: one remote
 * command, the values on its stdin only. The name is `<stack>_<key>_<10 hex>` of a hash keyed with
 * the host's secret-key file.
 */
export async function nameSecrets(host: Shell, remoteDir: string, plans: SecretPlan[]): Promise<void> {
  const mine = plans.filter((p) => p.source === 'input' && !p.name);
  const todo = [...new Set(mine.flatMap((p) => p.run ?? [p]))].filter((p) => p.source === 'input' && !p.name);
  if (!todo.length) return;
  // A shared secret is hashed without a stack (never the same as a stack's own): one name wherever it is declared.
  const input =
    todo
      .map((p) => Buffer.from(`${p.shared ? '' : p.stack}\0${p.key}\0${p.value ?? ''}`, 'utf8').toString('base64'))
      .join('\n') + '\n';
  const res = await host.sh(namingScript(remoteDir), { input, retry: true, silent: true });
  const hashes = res.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  if (res.code !== 0 || hashes.length !== todo.length || !hashes.every((h) => /^[0-9a-f]{64}$/.test(h))) {
    throw new Error(
      `${host.where}: cannot name the secrets (keyed hash with ${secretKeyFile(remoteDir)}): ${(res.stderr || res.stdout).trim().slice(0, 300)}`,
    );
  }
  todo.forEach((p, i) => (p.name = `${p.shared ? SHARED_PREFIX : p.stack}_${p.key}_${hashes[i].slice(0, 10)}`));
}

export interface ConfigPlan {
  key: string;
  /** Swarm config name of this content: `<stack>_<key>_<hash>`. */
  name: string;
  /** The compose entry as the stack declares it, with `name:` added. */
  entry: Record<string, unknown>;
}

/** A short content hash: a changed file gets a new name (Swarm configs are immutable). */
function contentName(stack: string, key: string, content: string | Buffer): string {
  const hash = createHash('sha256').update(`${stack}\0${key}\0`).update(content).digest('hex').slice(0, 10);
  return `${stack}_${key}_${hash}`;
}

/**
 * Configs read from a `file:` (and not given a `name:` by the user) get a content-addressed name:
 * a changed Traefik or Redis config rolls out as a new config instead of failing the deploy
 * ("only updates to Labels are allowed"), and the same file keeps the same name, so nothing restarts.
 */
export function planConfigs(stack: PreparedStack): ConfigPlan[] {
  const merged = mergeStack(stack.resolved);
  const declared =
    merged.configs && typeof merged.configs === 'object'
      ? (merged.configs as Record<string, Record<string, unknown>>)
      : {};
  const plans: ConfigPlan[] = [];
  for (const [key, entry] of Object.entries(declared)) {
    if (!entry || typeof entry !== 'object' || entry.external === true || entry.external === 'true' || entry.name)
      continue;
    if (typeof entry.file !== 'string' || !entry.file) continue;
    // prepareStack already checked that the file exists; Docker resolves it against the first file's folder.
    const content = fs.readFileSync(referencedPath(stack.resolved[0].file, entry.file));
    const name = contentName(stack.name, key, content);
    plans.push({ key, name, entry: { ...entry, name } });
  }
  return plans;
}

/**
 * The compose override that points each managed secret and config at its Swarm name for this release.
 * `placeholders` (dry run): a secret not named yet shows the host's part as text.
 */
export function overrideFile(
  stack: PreparedStack,
  secretPlans: SecretPlan[],
  configPlans: ConfigPlan[] = [],
  opts: { placeholders?: boolean } = {},
): string {
  const version = String(stack.resolved[0]?.data?.version ?? '3.8');
  const doc: Record<string, unknown> = { version };
  const name = (p: SecretPlan) => {
    if (!p.name && !opts.placeholders)
      throw new Error(
        `Secret "${p.key}" of stack "${stack.name}" is not named yet (nameSecrets runs on the host first).`,
      );
    return displayName(p);
  };
  if (secretPlans.length)
    doc.secrets = Object.fromEntries(secretPlans.map((p) => [p.key, { external: true, name: name(p) }]));
  // The whole entry, not just its name: a -c file's entry replaces the earlier one's.
  if (configPlans.length) doc.configs = Object.fromEntries(configPlans.map((p) => [p.key, p.entry]));
  return `# Written by deploy-action: the Swarm secrets and configs of this release.\n${YAML.stringify(doc)}`;
}

/**
 * The override file as an upload whose content is written when it is read: at upload time, after
 * nameSecrets() got the names from the host (runLayer names them first).
 */
export function overrideUpload(
  stack: PreparedStack,
  secretPlans: SecretPlan[],
  configPlans: ConfigPlan[],
): { rel: string; content: string } {
  return {
    rel: OVERRIDE_FILE,
    get content() {
      return overrideFile(stack, secretPlans, configPlans);
    },
  };
}

export interface SecretsReport {
  created: string[];
  reused: string[];
  generated: string[];
}

/** Creates the secrets this release needs and does not find on the host: values through stdin only. */
export async function ensureSecrets(remote: Shell, stack: string, plans: SecretPlan[]): Promise<SecretsReport> {
  const report: SecretsReport = { created: [], reused: [], generated: [] };
  if (!plans.length) return report;
  const unnamed = plans.filter((p) => !p.name).map((p) => p.key);
  if (unnamed.length) throw new Error(`Secrets of ${stack} not named yet (nameSecrets first): ${unnamed.join(', ')}`);
  const ls = await remote.run(['docker', 'secret', 'ls', '--format', '{{.Name}}'], { retry: true });
  if (ls.code !== 0) throw new Error(`${remote.where}: docker secret ls failed: ${ls.stderr.trim()}`);
  const existing = new Set(
    ls.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const p of plans) {
    if (existing.has(p.name)) {
      report.reused.push(p.key);
      continue;
    }
    // A shared secret belongs to no one stack: pruneSecrets finds it by its key, for every stack using it.
    const labels = p.shared
      ? ['--label', `${LABEL_SHARED}=true`, '--label', `${LABEL_KEY}=${p.key}`]
      : ['--label', `${LABEL_STACK}=${stack}`, '--label', `${LABEL_KEY}=${p.key}`];
    let res: RunResult;
    if (p.source === 'input') {
      res = await remote.run(['docker', 'secret', 'create', ...labels, p.name, '-'], { input: p.value as string });
    } else {
      // Generated on the host, piped straight into Docker: the value never leaves it.
      const create = shellJoin([
        'docker',
        'secret',
        'create',
        ...labels,
        '--label',
        'deploy-action.generated=true',
        p.name,
        '-',
      ]);
      res = await remote.sh(`head -c 32 /dev/urandom | base64 | tr -d '\\n/+=' | ${create} >/dev/null`);
    }
    if (res.code !== 0) {
      // A shared secret may have been created meanwhile by a deploy of another stack (another lock).
      const there = p.shared
        ? await remote.run(['docker', 'secret', 'inspect', '--format', '{{.Spec.Name}}', p.name])
        : undefined;
      if (there?.code === 0 && there.stdout.trim() === p.name) {
        report.reused.push(p.key);
        continue;
      }
      throw new Error(
        `${remote.where}: cannot create ${p.source === 'generated' ? 'generated secret' : 'secret'} ${p.name}: ${res.stderr.trim()}`,
      );
    }
    (p.source === 'input' ? report.created : report.generated).push(p.key);
  }
  return report;
}

/**
 * Removes the action's secrets of a stack, and the shared ones of the keys it uses, that no kept
 * release uses, so a rollback still finds its secrets. A shared secret (or any other) that a ledger
 * on this host still names, another stack's kept releases included, stays; generated ones stay;
 * `docker secret rm` refuses a secret a service still uses, and that refusal is fine.
 */
export async function pruneSecrets(
  remote: Shell,
  stack: string,
  keep: Set<string>,
  opts: { remoteDir?: string; shared?: string[] } = {},
): Promise<string[]> {
  const lists = [
    ['--filter', `label=${LABEL_STACK}=${stack}`],
    ...(opts.shared ?? []).map((k) => [
      '--filter',
      `label=${LABEL_SHARED}=true`,
      '--filter',
      `label=${LABEL_KEY}=${k}`,
    ]),
  ];
  const names = new Set<string>();
  for (const filters of lists) {
    const ls = await remote.run(['docker', 'secret', 'ls', ...filters, '--format', '{{.Name}}']);
    ls.stdout
      .split('\n')
      .map((n) => n.trim())
      .filter(Boolean)
      .forEach((n) => names.add(n));
  }
  const stale = [...names].filter((n) => !keep.has(n));
  if (!stale.length) return [];
  const ledgers = opts.remoteDir ? `${shellJoin([`${opts.remoteDir}/stacks`])}/*/ledger.json` : '';
  const script = stale
    .map((n) => {
      const q = shellJoin([n]);
      const generated = `[ "$(${shellJoin(['docker', 'secret', 'inspect', '--format', '{{index .Spec.Labels "deploy-action.generated"}}', n])})" = true ]`;
      const named = ledgers ? ` || grep -qsF -- ${shellJoin([`"${n}"`])} ${ledgers}` : '';
      return `if ${generated}${named}; then :; elif docker secret rm ${q} >/dev/null 2>&1; then echo ${q}; fi`;
    })
    .join('\n');
  const rm = await remote.sh(`${script}\ntrue`);
  const removed = rm.stdout
    .split('\n')
    .map((n) => n.trim())
    .filter(Boolean);
  if (removed.length) core.info(`Removed secrets no kept release uses: ${removed.join(', ')}`);
  return removed;
}

/**
 * Removes the configs of earlier releases: those of the stack named like a managed key's
 * `<stack>_<key>_<hash>` that this release does not use. A rollback re-creates its own from the stack
 * files kept with it; `docker config rm` refuses one a service still uses, which is fine.
 */
export async function pruneConfigs(remote: Shell, stack: string, plans: ConfigPlan[]): Promise<string[]> {
  if (!plans.length) return [];
  const ls = await remote.run([
    'docker',
    'config',
    'ls',
    '--filter',
    `label=com.docker.stack.namespace=${stack}`,
    '--format',
    '{{.Name}}',
  ]);
  const keep = new Set(plans.map((p) => p.name));
  const ours = (n: string) =>
    plans.some(
      (p) => n.startsWith(`${stack}_${p.key}_`) && /^[0-9a-f]{10}$/.test(n.slice(stack.length + p.key.length + 2)),
    );
  const stale = ls.stdout
    .split('\n')
    .map((n) => n.trim())
    .filter((n) => n && !keep.has(n) && ours(n));
  if (!stale.length) return [];
  const rm = await remote.sh(
    stale
      .map((n) => `${shellJoin(['docker', 'config', 'rm', n])} >/dev/null 2>&1 && echo ${shellJoin([n])}`)
      .join('\n') + '\ntrue',
  );
  const removed = rm.stdout
    .split('\n')
    .map((n) => n.trim())
    .filter(Boolean);
  if (removed.length) core.info(`Removed configs of earlier releases: ${removed.join(', ')}`);
  return removed;
}
