/**
 * command: remove — takes stacks off the host for good (a pull request preview when it closes):
 * `docker stack rm`, then, once Swarm let go of them, the networks, configs and secrets that were
 * the stack's, and its folder under remote-dir (ledger, releases, files). Never a secret another
 * stack's ledger still names, never a shared secret in use.
 */
import * as core from '@actions/core';
import type { Outcome } from './commands';
import { connect } from './connect';
import { Inputs } from './inputs';
import { stackDir } from './ledger';
import { Shell, shellJoin } from './host/shell';
import { Clock, disposing, pollUntil } from './retry-helper';

const NAMESPACE = 'com.docker.stack.namespace';

export interface Removal {
  stack: string;
  services: string[];
  networks: string[];
  configs: string[];
  /** The stack's own secrets (label `deploy-action.stack`, or created by the stack itself). */
  secrets: string[];
  /** Shared secrets its ledger names that no other stack's ledger names. */
  shared: string[];
  /** Shared secrets its ledger names that another stack's ledger names too: they stay. */
  sharedKept: string[];
  /** Its folder under remote-dir exists. */
  folder: boolean;
}

const lines = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** Reads what the stack has on the host; changes nothing. */
export async function planRemoval(host: Shell, remoteDir: string, stack: string): Promise<Removal> {
  const dir = stackDir(remoteDir, stack);
  const ns = `label=${NAMESPACE}=${stack}`;
  const own = `label=deploy-action.stack=${stack}`;
  const q = (argv: string[]) => shellJoin(argv);
  const script = [
    `${q(['docker', 'service', 'ls', '--filter', ns, '--format', 'service {{.Name}}'])} || exit 1`,
    `${q(['docker', 'network', 'ls', '--filter', ns, '--format', 'network {{.Name}}'])} || exit 1`,
    `${q(['docker', 'config', 'ls', '--filter', ns, '--format', 'config {{.Name}}'])} || exit 1`,
    `${q(['docker', 'secret', 'ls', '--filter', ns, '--format', 'secret {{.Name}}'])} || exit 1`,
    `${q(['docker', 'secret', 'ls', '--filter', own, '--format', 'secret {{.Name}}'])} || exit 1`,
    // Only the lock this run holds (it made the folder) is no history of the stack.
    `if [ -d ${q([dir])} ] && ls -A ${q([dir])} | grep -qvx lock; then echo folder; fi`,
    // The shared secrets its kept releases used, each with whether another stack's ledger names it.
    `for n in $(grep -hoE '"shared_[A-Za-z0-9_.-]+"' ${q([`${dir}/ledger.json`])} 2>/dev/null ` +
      `| tr -d '"' | sort -u); do`,
    `  docker secret inspect "$n" >/dev/null 2>&1 || continue`,
    `  if grep -lsF -- "\\"$n\\"" ${q([`${remoteDir}/stacks`])}/*/ledger.json | grep -vqxF -- ` +
      `${q([`${dir}/ledger.json`])}; then echo "kept $n"; else echo "shared $n"; fi`,
    `done`,
    'true',
  ].join('\n');
  const res = await host.sh(script, { retry: true, silent: true });
  if (res.code !== 0) throw new Error(`${host.where}: cannot list what stack ${stack} has: ${res.stderr.trim()}`);
  const r: Removal = {
    stack,
    services: [],
    networks: [],
    configs: [],
    secrets: [],
    shared: [],
    sharedKept: [],
    folder: false,
  };
  for (const l of lines(res.stdout)) {
    const [kind, name] = l.split(' ');
    if (kind === 'folder') r.folder = true;
    else if (kind === 'service') r.services.push(name);
    else if (kind === 'network') r.networks.push(name);
    else if (kind === 'config') r.configs.push(name);
    else if (kind === 'secret' && !r.secrets.includes(name)) r.secrets.push(name);
    else if (kind === 'shared') r.shared.push(name);
    else if (kind === 'kept') r.sharedKept.push(name);
  }
  return r;
}

export function isEmpty(r: Removal): boolean {
  return !r.folder && ![r.services, r.networks, r.configs, r.secrets, r.shared].some((x) => x.length);
}

/** One line per kind, for the log and the dry run. */
export function describeRemoval(r: Removal): string {
  if (isEmpty(r)) return `${r.stack}: nothing on the host (never deployed, or already removed).`;
  const part = (what: string, xs: string[]) => (xs.length ? [`  ${what}: ${xs.join(', ')}`] : []);
  return [
    `${r.stack}:`,
    ...part('services', r.services),
    ...part('networks', r.networks),
    ...part('configs', r.configs),
    ...part('secrets', [...r.secrets, ...r.shared]),
    ...part("shared secrets kept (another stack's ledger names them)", r.sharedKept),
    ...(r.folder ? ['  its folder under remote-dir (ledger, releases, files)'] : []),
  ].join('\n');
}

export interface RemoveOptions {
  timeoutMs: number;
  pollMs: number;
  clock?: Clock;
}

/**
 * Removes what planRemoval found. Swarm removes a stack's networks, configs and secrets only once
 * every task has stopped, on every node, and `docker stack rm` does not wait: each poll removes
 * what it can until nothing is left, bounded. The folder goes last, but for the lock this run holds.
 */
export async function removeStack(host: Shell, remoteDir: string, r: Removal, opts: RemoveOptions): Promise<void> {
  const q = (argv: string[]) => shellJoin(argv);
  if (r.services.length || r.networks.length || r.configs.length) {
    const rm = await host.run(['docker', 'stack', 'rm', r.stack], { retry: true });
    // Its networks may be busy a while yet; the loop below removes them.
    if (rm.code !== 0 && !/network|not found|Nothing found/i.test(rm.stderr))
      throw new Error(`${host.where}: docker stack rm ${r.stack} failed: ${rm.stderr.trim()}`);
  }
  const ns = `label=${NAMESPACE}=${r.stack}`;
  const objects = [
    ...r.networks.map((n) => ['network', n]),
    ...r.configs.map((n) => ['config', n]),
    ...r.secrets.map((n) => ['secret', n]),
    ...r.shared.map((n) => ['secret', n]),
  ];
  // Each poll: with no service left, remove what is left and print what still is.
  const script = [
    `s=$(${q(['docker', 'service', 'ls', '-q', '--filter', ns])}) || exit 1`,
    `if [ -n "$s" ]; then echo "services $(echo $s | wc -w)"; exit 0; fi`,
    ...objects.map(
      ([kind, n]) =>
        `if ${q(['docker', kind, 'inspect', n])} >/dev/null 2>&1 && ` +
        `! ${q(['docker', kind, 'rm', n])} >/dev/null 2>&1; then echo ${q([`${kind} ${n}`])}; fi`,
    ),
    'true',
  ].join('\n');
  await pollUntil({ timeoutMs: opts.timeoutMs, clock: opts.clock }, async (p) => {
    const res = await host.sh(script, { retry: true, silent: true });
    const left = res.code === 0 ? lines(res.stdout) : [`(could not read: ${res.stderr.trim()})`];
    if (!left.length) return { done: undefined };
    if (!p.expired()) return { waitMs: opts.pollMs };
    throw new Error(
      `${host.where}: stack ${r.stack} was not fully removed within ${Math.round(opts.timeoutMs / 1000)} s; ` +
        `still there: ${left.join(', ')}. Run the remove again, or look at the host (docker stack ps ${r.stack}).`,
    );
  });
  if (r.folder) {
    const dir = stackDir(remoteDir, r.stack);
    const res = await host.sh(`find ${q([dir])} -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +`, {
      retry: true,
    });
    if (res.code !== 0) throw new Error(`${host.where}: cannot remove ${dir}: ${res.stderr.trim()}`);
  }
  core.info(`Removed ${r.stack}.`);
}

/** After its lock is released: the stack's folder, if nothing (another run's lock) came back into it. */
export async function removeEmptyFolder(host: Shell, remoteDir: string, stack: string): Promise<void> {
  await host.sh(`rmdir ${shellJoin([stackDir(remoteDir, stack)])} 2>/dev/null; true`, { retry: true });
}

/**
 * Every stack of `stacks`, last layer first, inside their deploy locks (no deploy of them can
 * interleave). What is there is read first; a dry run prints it and takes no lock.
 */
export async function commandRemove(inputs: Inputs): Promise<Outcome> {
  // Nothing is pulled: no registry login on the host.
  const { remote, ctx, finish } = await connect(
    { ...inputs, registryUsername: '', registryPassword: '' },
    inputs.dryRun,
  );
  // The folders go once the locks are released, and only if no other run's lock came back into them.
  return disposing(remote, async () => {
    try {
      return await removeAll(inputs, remote, ctx.pollMs);
    } finally {
      await finish();
      if (!inputs.dryRun)
        for (const s of inputs.stacks) await removeEmptyFolder(remote, inputs.remoteDir, s.name).catch(() => undefined);
    }
  });
}

/** Reads what every stack has, then removes it (a dry run prints it). */
async function removeAll(inputs: Inputs, remote: Shell, pollMs: number): Promise<Outcome> {
  const notes: string[] = [];
  const outcome = (result: Outcome['result']): Outcome => {
    return { result, release: inputs.release, versions: {}, images: {}, layers: [], notes };
  };
  const plans: Removal[] = [];
  for (const s of [...inputs.stacks].reverse()) plans.push(await planRemoval(remote, inputs.remoteDir, s.name));
  for (const p of plans) core.info(`${inputs.dryRun ? 'Would remove ' : ''}${describeRemoval(p)}`);
  if (inputs.dryRun) {
    notes.push('dry-run: nothing was removed.');
    return outcome('checked');
  }
  for (const p of plans) {
    if (isEmpty(p)) continue;
    await core.group(`Remove ${p.stack}`, () =>
      removeStack(remote, inputs.remoteDir, p, {
        timeoutMs: (inputs.timeout ?? REMOVE_TIMEOUT_S) * 1000,
        pollMs: pollMs * 4,
      }),
    );
    const kept = p.sharedKept.length
      ? ` (kept the shared secret(s) ${p.sharedKept.join(', ')}: another stack's ledger names them)`
      : '';
    notes.push(`Removed ${p.stack}${kept}.`);
  }
  if (plans.every(isEmpty))
    notes.push(`Nothing to remove: ${plans.map((p) => p.stack).join(', ')} not on ${remote.where}.`);
  return outcome('removed');
}

/** How long Swarm may take to stop a stack's tasks and let go of its networks (input `timeout` wins). */
export const REMOVE_TIMEOUT_S = 120;
