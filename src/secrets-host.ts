// The host side of the secrets: naming input values by a keyed hash, creating what a release
// needs, and pruning what no kept release names. Values travel on stdin only.
import * as core from '@actions/core';
import { RunResult } from './exec';
import { Shell, shellJoin } from './host/shell';
import type { SecretPlan } from './secrets';

/** Prefix of the Swarm name of a shared secret, in place of the stack's name. */
export const SHARED_PREFIX = 'shared';

const LABEL_STACK = 'deploy-action.stack';
const LABEL_KEY = 'deploy-action.key';
const LABEL_SHARED = 'deploy-action.shared';

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
      `${host.where}: cannot name the secrets (keyed hash with ${secretKeyFile(remoteDir)}): ` +
        `${(res.stderr || res.stdout).trim().slice(0, 300)}`,
    );
  }
  todo.forEach((p, i) => (p.name = `${p.shared ? SHARED_PREFIX : p.stack}_${p.key}_${hashes[i].slice(0, 10)}`));
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
        `${remote.where}: cannot create ${p.source === 'generated' ? 'generated secret' : 'secret'} ${p.name}: ` +
          `${res.stderr.trim()}`,
      );
    }
    (p.source === 'input' ? report.created : report.generated).push(p.key);
  }
  return report;
}

/**
 * The secrets pruneSecrets may remove: the stack's own, and the shared ones of the keys it uses.
 * `concurrent`: listed on a channel of its own, while the deploy and the gate run (a secret created
 * after the list is simply not pruned this time).
 */
export async function prunableSecrets(
  remote: Shell,
  stack: string,
  shared: string[] = [],
  concurrent = false,
): Promise<Set<string>> {
  const lists = [
    ['--filter', `label=${LABEL_STACK}=${stack}`],
    ...shared.map((k) => ['--filter', `label=${LABEL_SHARED}=true`, '--filter', `label=${LABEL_KEY}=${k}`]),
  ];
  const names = new Set<string>();
  for (const filters of lists) {
    const ls = await remote.run(['docker', 'secret', 'ls', ...filters, '--format', '{{.Name}}'], { concurrent });
    ls.stdout
      .split('\n')
      .map((n) => n.trim())
      .filter(Boolean)
      .forEach((n) => names.add(n));
  }
  return names;
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
  opts: { remoteDir?: string; shared?: string[]; listed?: Set<string> } = {},
): Promise<string[]> {
  const names = opts.listed ?? (await prunableSecrets(remote, stack, opts.shared));
  const stale = [...names].filter((n) => !keep.has(n));
  if (!stale.length) return [];
  const ledgers = opts.remoteDir ? `${shellJoin([`${opts.remoteDir}/stacks`])}/*/ledger.json` : '';
  const script = stale
    .map((n) => {
      const q = shellJoin([n]);
      const label = '{{index .Spec.Labels "deploy-action.generated"}}';
      const generated = `[ "$(${shellJoin(['docker', 'secret', 'inspect', '--format', label, n])})" = true ]`;
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
