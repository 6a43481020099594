import * as core from '@actions/core';
import type { ServiceGate } from './gate';
import { Host, Shell, shellJoin } from './host/shell';
import { redact } from './mask';
import { NodeFacts, parseNodes } from './placement';
import { readApiNodes } from './host/engine-facts';
import type { TaskState } from './swarm';

/** One failed task and what Swarm said; given the swarm's nodes (more than one), where it ran. */
export function describeTask(t: TaskState, nodes?: Map<string, NodeFacts>): string {
  const exit = t.exitCode !== null && t.exitCode !== undefined && t.exitCode !== 0 ? `, exit ${t.exitCode}` : '';
  const name = t.node ? nodes?.get(t.node)?.hostname : undefined;
  const on = t.node && nodes ? ` on ${name || `node ${t.node.slice(0, 12)}`}` : '';
  // Swarm's agent falls back to a local image when the pull fails: "No such image" is a failed pull.
  const pull =
    name && /^No such image/.test(t.err)
      ? ` (${name} could not pull the image: can it reach the registry, with the credentials?)`
      : '';
  return `task ${t.id.slice(0, 12)} (slot ${t.slot})${on} ${t.state}${exit}: ${t.err || t.message}${pull}`;
}

/** The nodes the scheduler cannot use right now: the usual reason a task has nowhere to go. */
export function nodesNotTakingTasks(nodes: NodeFacts[]): string {
  const off = nodes
    .filter((n) => !n.schedulable)
    .map((n) => `${n.hostname || n.id.slice(0, 12)} (${n.state && n.state !== 'ready' ? n.state : n.availability})`);
  return off.length ? `Swarm nodes not taking new tasks: ${off.join(', ')}.` : '';
}

/** Every node of the swarm, for explaining a failure; none when they cannot be read (a worker, a lost connection). */
async function readNodes(remote: Host): Promise<NodeFacts[]> {
  // Only to explain a failure: a wedged engine must not hold the verdict up for long.
  return readApiNodes(remote.engine(), 10_000).then(parseNodes, () => []);
}

// A task that never got a container has no logs to show.
const NEVER_STARTED = new Set(['new', 'pending', 'assigned', 'accepted']);

/** The last lines a failed task printed, bounded so a chatty crash cannot flood the log; known secrets masked. */
async function logTail(remote: Shell, taskId: string, lines = 20, bytes = 4000): Promise<string> {
  const logs = shellJoin(['docker', 'service', 'logs', '--raw', '--no-trunc', '--tail', String(lines), taskId]);
  const res = await remote.sh(`${logs} 2>&1 | tail -c ${bytes}`, { retry: true, silent: true, timeoutMs: 30_000 });
  return redact(res.stdout.trim());
}

/** One failed service: Swarm's words, its failing tasks, and what the first of them printed last. */
async function explainService(remote: Shell, g: ServiceGate, nodes?: Map<string, NodeFacts>): Promise<string> {
  const tasks = (g.verdict.failedTasks ?? []).slice(0, 3);
  let text = `${g.watch.name}: ${g.verdict.detail}`;
  for (const t of tasks) text += `\n    ${describeTask(t, nodes)}`;
  if (tasks[0] && !NEVER_STARTED.has(tasks[0].state)) {
    const tail = await logTail(remote, tasks[0].id).catch(() => '');
    if (tail) {
      const last = tail.split('\n').slice(-10).join('\n      ');
      text += `\n    last log lines of task ${tasks[0].id.slice(0, 12)}:\n      ${last}`;
    }
  }
  return redact(text);
}

/**
 * Explains every service the gate failed, each logged as an error. Services Swarm is still rolling
 * back failed too: they are explained with the others.
 */
export async function explainGateFailure(remote: Host, gates: ServiceGate[]): Promise<string[]> {
  const parts: string[] = [];
  const nodeList = await readNodes(remote);
  // On one node, where a task ran says nothing.
  const nodes = nodeList.length > 1 ? new Map(nodeList.map((n) => [n.id, n])) : undefined;
  for (const g of gates.filter((x) => x.verdict.phase === 'failed' || x.verdict.phase === 'rolling-back'))
    parts.push(await explainService(remote, g, nodes));
  const off = nodesNotTakingTasks(nodeList);
  if (off && parts.length) parts[parts.length - 1] += `\n  ${off}`;
  for (const p of parts) core.error(p, { title: `Gate failed: ${p.split(':')[0]}` });
  return parts;
}
