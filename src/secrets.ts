import * as core from '@actions/core';
import { createHash } from 'crypto';
import * as YAML from 'yaml';
import { mergeStack } from './compose';
import { InputError } from './errors';
import { Remote, shellJoin } from './remote';
import { PreparedStack } from './stack';

/** The override file the action adds to a stack: it only names the external secrets. */
export const SECRETS_FILE = '.deploy-action/secrets.yml';

export interface SecretPlan {
  key: string;
  /** Swarm secret name this release uses. */
  name: string;
  source: 'input' | 'generated';
  /** Only for `input`: sent through stdin when the secret does not exist yet. Never logged. */
  value?: string;
}

const LABEL_STACK = 'deploy-action.stack';
const LABEL_KEY = 'deploy-action.key';

/** `db_password` in the stack is given by the input line `db_password=…` or `DB_PASSWORD=…`. */
function lookup(values: Record<string, string>, key: string): string | undefined {
  return values[key] ?? values[key.toUpperCase().replace(/[^A-Z0-9]/g, '_')];
}

/**
 * Which external secrets of the stack the action manages: a value from the `secrets` input gets a
 * content-addressed name (same value, same name: nothing re-created); a key in `generate-secrets`
 * gets a fixed name and a random value created once on the host.
 */
export function planSecrets(stack: PreparedStack, values: Record<string, string>, generate: string[]): SecretPlan[] {
  const merged = mergeStack(stack.resolved);
  const declared = merged.secrets && typeof merged.secrets === 'object' ? (merged.secrets as Record<string, { external?: unknown; file?: unknown }>) : {};
  const plans: SecretPlan[] = [];
  for (const [key, entry] of Object.entries(declared)) {
    const external = entry && (entry.external === true || entry.external === 'true');
    const value = lookup(values, key);
    const generated = generate.includes(key);
    if (!external) {
      if (value !== undefined || generated) throw new InputError(`Stack "${stack.name}": secret "${key}" must be declared \`external: true\` for the action to create it (a \`file:\` secret would put the value on the host's disk).`);
      continue;
    }
    if (value !== undefined && generated) throw new InputError(`Secret "${key}" is both given (input \`secrets\`) and generated (input \`generate-secrets\`): pick one.`);
    if (value !== undefined) {
      // A short content hash: a changed value gets a new name (Swarm secrets are immutable).
      const hash = createHash('sha256').update(`${stack.name}\0${key}\0${value}`).digest('hex').slice(0, 10);
      plans.push({ key, name: `${stack.name}_${key}_${hash}`, source: 'input', value });
    } else if (generated) {
      plans.push({ key, name: `${stack.name}_${key}`, source: 'generated' });
    }
  }
  for (const g of generate) {
    if (!(g in declared)) throw new InputError(`Input \`generate-secrets\`: stack "${stack.name}" declares no secret "${g}".`);
  }
  return plans;
}

/** The compose override that points each managed key at its Swarm name for this release. */
export function overrideFile(stack: PreparedStack, plans: SecretPlan[]): string {
  const version = String(stack.resolved[0]?.data?.version ?? '3.8');
  const secrets: Record<string, unknown> = {};
  for (const p of plans) secrets[p.key] = { external: true, name: p.name };
  return `# Written by deploy-action: the Swarm secrets of this release.\n${YAML.stringify({ version, secrets })}`;
}

export interface SecretsReport {
  created: string[];
  reused: string[];
  generated: string[];
}

/** Creates the secrets this release needs and does not find on the host: values through stdin only. */
export async function ensureSecrets(remote: Remote, stack: string, plans: SecretPlan[]): Promise<SecretsReport> {
  const report: SecretsReport = { created: [], reused: [], generated: [] };
  if (!plans.length) return report;
  const ls = await remote.run(['docker', 'secret', 'ls', '--format', '{{.Name}}'], { retry: true });
  if (ls.code !== 0) throw new Error(`${remote.where}: docker secret ls failed: ${ls.stderr.trim()}`);
  const existing = new Set(ls.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  for (const p of plans) {
    if (existing.has(p.name)) {
      report.reused.push(p.key);
      continue;
    }
    const labels = ['--label', `${LABEL_STACK}=${stack}`, '--label', `${LABEL_KEY}=${p.key}`];
    if (p.source === 'input') {
      const res = await remote.run(['docker', 'secret', 'create', ...labels, p.name, '-'], { input: p.value as string });
      if (res.code !== 0) throw new Error(`${remote.where}: cannot create secret ${p.name}: ${res.stderr.trim()}`);
      report.created.push(p.key);
    } else {
      // Generated on the host, piped straight into Docker: the value never leaves it.
      const create = shellJoin(['docker', 'secret', 'create', ...labels, '--label', 'deploy-action.generated=true', p.name, '-']);
      const res = await remote.sh(`head -c 32 /dev/urandom | base64 | tr -d '\\n/+=' | ${create} >/dev/null`);
      if (res.code !== 0) throw new Error(`${remote.where}: cannot create generated secret ${p.name}: ${res.stderr.trim()}`);
      report.generated.push(p.key);
    }
  }
  return report;
}

/**
 * Removes the action's secrets of a stack that no kept release uses (so a rollback still finds its
 * secrets). `docker secret rm` refuses a secret a service still uses; that refusal is fine.
 */
export async function pruneSecrets(remote: Remote, stack: string, keep: Set<string>): Promise<string[]> {
  const ls = await remote.run(['docker', 'secret', 'ls', '--filter', `label=${LABEL_STACK}=${stack}`, '--format', '{{.Name}}']);
  const stale = ls.stdout.split('\n').map((s) => s.trim()).filter((n) => n && !keep.has(n));
  const removed: string[] = [];
  for (const n of stale) {
    const inspect = await remote.run(['docker', 'secret', 'inspect', '--format', '{{index .Spec.Labels "deploy-action.generated"}}', n]);
    if (inspect.stdout.trim() === 'true') continue;
    const rm = await remote.run(['docker', 'secret', 'rm', n]);
    if (rm.code === 0) removed.push(n);
  }
  if (removed.length) core.info(`Removed secrets no kept release uses: ${removed.join(', ')}`);
  return removed;
}
