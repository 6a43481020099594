import * as core from '@actions/core';
import { createHash } from 'crypto';
import * as fs from 'fs';
import { isExternal, referencedPath } from './compose';
import { Shell, shellJoin } from './host/shell';
import { PreparedStack } from './stack';

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
  const merged = stack.merged;
  const declared =
    merged.configs && typeof merged.configs === 'object'
      ? (merged.configs as Record<string, Record<string, unknown>>)
      : {};
  const plans: ConfigPlan[] = [];
  for (const [key, entry] of Object.entries(declared)) {
    if (!entry || typeof entry !== 'object' || isExternal(entry) || entry.name) continue;
    if (typeof entry.file !== 'string' || !entry.file) continue;
    // prepareStack already checked that the file exists; Docker resolves it against the first file's folder.
    const content = fs.readFileSync(referencedPath(stack.resolved[0].file, entry.file));
    const name = contentName(stack.name, key, content);
    plans.push({ key, name, entry: { ...entry, name } });
  }
  return plans;
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
