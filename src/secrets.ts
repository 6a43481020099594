import * as YAML from 'yaml';
import { isExternal } from './compose';
import { InputError } from './errors';
import type { ConfigPlan } from './configs';
import { SHARED_PREFIX } from './secrets-host';
import { PreparedStack } from './stack';

export { planConfigs, pruneConfigs } from './configs';
export type { ConfigPlan } from './configs';
export {
  SHARED_PREFIX,
  ensureSecrets,
  nameSecrets,
  prunableSecrets,
  pruneSecrets,
  secretKeyFile,
} from './secrets-host';
export type { SecretsReport } from './secrets-host';

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
  const merged = stack.merged;
  const declared =
    merged.secrets && typeof merged.secrets === 'object'
      ? (merged.secrets as Record<string, { external?: unknown; file?: unknown }>)
      : {};
  const plans: SecretPlan[] = [];
  for (const [key, entry] of Object.entries(declared)) {
    const external = isExternal(entry);
    const value = lookup(values, key);
    const generated = generate.includes(key);
    if (!external) {
      if (value !== undefined || generated)
        throw new InputError(
          `Stack "${stack.name}": secret "${key}" must be declared \`external: true\` for the action to create ` +
            `it (a \`file:\` secret would put the value on the host's disk).`,
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
        `Input \`shared-secrets\`: secret "${key}" of stack "${stack.name}" is neither given (input \`secrets\`) ` +
          `nor generated (input \`generate-secrets\`).`,
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
      const secrets = p.merged.secrets;
      return !!secrets && typeof secrets === 'object' && key in secrets;
    });
    if (!declared)
      throw new InputError(
        `Input \`shared-secrets\`: no stack of this run (${stacks.map((p) => p.name).join(', ')}) declares a ` +
          `secret "${key}".`,
      );
  }
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
