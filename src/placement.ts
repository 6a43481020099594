import { ServiceInfo, locateIn, ComposeFile } from './compose';
import { Finding } from './checks';
import type { ApiNode } from './host/engine-facts';

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

/** The nodes as the Engine API gives them (`GET /nodes`, what `docker node inspect` prints). */
export function parseNodes(apiNodes: ApiNode[]): NodeFacts[] {
  return apiNodes.map((n) => ({
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
  }));
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
  const labels = Object.entries(n.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const name = n.hostname || n.id.slice(0, 12);
  const labelText = labels ? `; labels ${labels}` : '; no labels';
  return `${name} (${n.role}${labelText}${n.schedulable ? '' : '; not schedulable'})`;
}

/** Services no node can take, or whose replicas cannot fit under max_replicas_per_node. */
export function placementFindings(
  stack: { name: string; files: ComposeFile[] },
  services: ServiceInfo[],
  nodes: NodeFacts[],
): Finding[] {
  const out: Finding[] = [];
  const ready = nodes.filter((n) => n.schedulable);
  const nodeList = nodes.map(describe).join('; ');
  for (const s of services) {
    const { constraints, maxReplicasPerNode } = s.placement;
    const eligible = ready.filter((n) => constraints.every((c) => meets(c, n)));
    const at = locateIn(stack.files, ['services', s.name, 'deploy', 'placement']);
    const finding = (message: string): Finding => ({
      rule: 'placement',
      severity: 'error',
      file: at.file.path,
      line: at.line,
      col: at.col,
      stack: stack.name,
      service: s.name,
      message,
    });
    if (!eligible.length) {
      const unmet = constraints.filter((c) => !ready.some((n) => meets(c, n)));
      const which = unmet.length
        ? `no node meets ${unmet.map((c) => `"${c}"`).join(', ')}`
        : `no node meets all of ${constraints.map((c) => `"${c}"`).join(', ')} at once`;
      const why = constraints.length ? which : 'no node is ready and active';
      out.push(finding(`Service ${s.name}: ${why}. The swarm's nodes: ${nodeList}. Its tasks would stay pending.`));
      continue;
    }
    if (s.mode === 'replicated' && maxReplicasPerNode > 0 && eligible.length * maxReplicasPerNode < s.replicas) {
      const onNodes = `${eligible.length} eligible node(s) (${eligible.map(describe).join('; ')})`;
      const holds = eligible.length * maxReplicasPerNode;
      out.push(
        finding(
          `Service ${s.name}: ${s.replicas} replicas cannot fit: ` +
            `max_replicas_per_node ${maxReplicasPerNode} on ${onNodes} holds ${holds}.`,
        ),
      );
    }
  }
  return out;
}

/**
 * Relative bind mounts exist on the manager the action ships them to, and nowhere else: a service
 * that can run on another node would find nothing there. Warns per service, at its first bind mount.
 */
export function bindMountFindings(
  stack: { name: string; binds: { service: string; source: string; file: string; line: number; col: number }[] },
  services: ServiceInfo[],
  nodes: NodeFacts[],
  selfId: string,
): Finding[] {
  if (nodes.length <= 1) return [];
  const self = nodes.find((n) => n.id === selfId);
  const out: Finding[] = [];
  for (const s of services) {
    const binds = stack.binds.filter((b) => b.service === s.name);
    if (!binds.length) continue;
    const others = nodes.filter(
      (n) => n.id !== selfId && n.schedulable && s.placement.constraints.every((c) => meets(c, n)),
    );
    if (!others.length) continue;
    const b = binds[0];
    const pin = self?.hostname
      ? `deploy.placement.constraints: ["node.hostname == ${self.hostname}"]`
      : 'a placement constraint to this manager';
    const sources = binds.map((x) => x.source).join(', ');
    const here = self ? ` (${describe(self)})` : '';
    out.push({
      rule: 'bind-mount-node',
      severity: 'warning',
      file: b.file,
      line: b.line,
      col: b.col,
      stack: stack.name,
      service: s.name,
      message:
        `Service ${s.name} bind-mounts ${sources}: the action ships ${binds.length > 1 ? 'them' : 'it'} to ` +
        `this manager${here} only, and the service can run on ${others.length} other node(s) ` +
        `(${others.map(describe).join('; ')}), where the path does not exist. ` +
        `Pin it with ${pin}, or use a config (configs:) for a file.`,
    });
  }
  return out;
}
