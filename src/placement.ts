import { ServiceInfo, locateIn, ComposeFile } from './compose';
import { Finding } from './checks';

/** What the scheduler reads of a node. */
export interface NodeFacts {
  id: string;
  hostname: string;
  role: string;
  labels: Record<string, string>;
  engineLabels: Record<string, string>;
  os: string;
  arch: string;
  /** Ready and availability active: the scheduler places new tasks on it. */
  schedulable: boolean;
  /** `ready`, `down`, …; and `active`, `pause` or `drain`. */
  state?: string;
  availability?: string;
}

/** One remote command: every node of the swarm, one JSON object a line. */
export const NODES_SCRIPT = `docker node inspect --format '{{json .}}' $(docker node ls -q)`;

export function parseNodes(stdout: string): NodeFacts[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => {
      const n = JSON.parse(l);
      return {
        id: String(n.ID ?? ''),
        hostname: String(n.Description?.Hostname ?? ''),
        role: String(n.Spec?.Role ?? ''),
        labels: n.Spec?.Labels ?? {},
        engineLabels: n.Description?.Engine?.Labels ?? {},
        os: String(n.Description?.Platform?.OS ?? ''),
        arch: String(n.Description?.Platform?.Architecture ?? ''),
        schedulable: n.Status?.State === 'ready' && (n.Spec?.Availability ?? 'active') === 'active',
        state: String(n.Status?.State ?? ''),
        availability: String(n.Spec?.Availability ?? 'active'),
      };
    });
}

const CONSTRAINT = /^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$/;

/** The value a constraint key reads on a node (undefined: the node has no such attribute). */
function attribute(key: string, n: NodeFacts): string | undefined {
  const k = key.toLowerCase();
  if (k === 'node.id') return n.id;
  if (k === 'node.hostname') return n.hostname;
  if (k === 'node.role') return n.role;
  if (k === 'node.platform.os') return n.os;
  if (k === 'node.platform.arch') return n.arch;
  if (k.startsWith('node.labels.')) return n.labels[key.slice('node.labels.'.length)];
  if (k.startsWith('engine.labels.')) return n.engineLabels[key.slice('engine.labels.'.length)];
  return undefined;
}

/** Swarm's rule: values compare without case; a missing label matches `!=` and never `==`. */
export function meets(constraint: string, n: NodeFacts): boolean {
  const m = CONSTRAINT.exec(constraint);
  if (!m) return false;
  const value = attribute(m[1], n);
  const equal = value !== undefined && value.toLowerCase() === m[3].toLowerCase();
  return m[2] === '==' ? equal : !equal;
}

function describe(n: NodeFacts): string {
  const labels = Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  return `${n.hostname || n.id.slice(0, 12)} (${n.role}${labels ? `; labels ${labels}` : '; no labels'}${n.schedulable ? '' : '; not schedulable'})`;
}

/** Services no node can take, or whose replicas cannot fit under max_replicas_per_node. */
export function placementFindings(stack: { name: string; files: ComposeFile[] }, services: ServiceInfo[], nodes: NodeFacts[]): Finding[] {
  const out: Finding[] = [];
  const ready = nodes.filter((n) => n.schedulable);
  const nodeList = nodes.map(describe).join('; ');
  for (const s of services) {
    const { constraints, maxReplicasPerNode } = s.placement;
    const eligible = ready.filter((n) => constraints.every((c) => meets(c, n)));
    const at = locateIn(stack.files, ['services', s.name, 'deploy', 'placement']);
    const finding = (message: string): Finding => ({ rule: 'placement', severity: 'error', file: at.file.path, line: at.line, col: at.col, stack: stack.name, service: s.name, message });
    if (!eligible.length) {
      const unmet = constraints.filter((c) => !ready.some((n) => meets(c, n)));
      const which = unmet.length ? `no node meets ${unmet.map((c) => `"${c}"`).join(', ')}` : `no node meets all of ${constraints.map((c) => `"${c}"`).join(', ')} at once`;
      out.push(finding(`Service ${s.name}: ${constraints.length ? which : 'no node is ready and active'}. The swarm's nodes: ${nodeList}. Its tasks would stay pending.`));
      continue;
    }
    if (s.mode === 'replicated' && maxReplicasPerNode > 0 && eligible.length * maxReplicasPerNode < s.replicas) {
      out.push(finding(`Service ${s.name}: ${s.replicas} replicas cannot fit: max_replicas_per_node ${maxReplicasPerNode} on ${eligible.length} eligible node(s) (${eligible.map(describe).join('; ')}) holds ${eligible.length * maxReplicasPerNode}.`));
    }
  }
  return out;
}
