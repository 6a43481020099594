import { createHash } from 'crypto';
import { shellJoin } from './remote';

/** What the gate reads of a service (one line of `docker service inspect --format`). */
export interface ServiceState {
  id: string;
  name: string;
  /** Spec image as Swarm stores it: `repo:tag@sha256:…` when the client resolved it. */
  image: string;
  /** null for global services. */
  replicas: number | null;
  update: UpdateStatus | null;
  /** Hash of the task template: equal before and after a deploy when it did not touch the service. */
  taskSpec?: string;
}

export interface UpdateStatus {
  state: string;
  startedAt: string;
  completedAt: string;
  message: string;
}

export interface TaskState {
  id: string;
  serviceId: string;
  slot: number;
  desired: string;
  state: string;
  /** Milliseconds since epoch of the last state change. */
  at: number;
  err: string;
  image: string;
  exitCode: number | null;
  message: string;
  /** The node it was given ('' while unscheduled). */
  node?: string;
}

export interface Snapshot {
  services: Map<string, ServiceState>;
  tasks: TaskState[];
  /** The host's clock (ms) when it was read: task timestamps are compared with it, not the runner's. */
  now: number;
}

const SEP = '@@deploy-action:tasks@@';

/**
 * One remote command that reads every service of a stack and all their tasks: the gate's poll costs
 * one SSH exec whatever the number of services. It asks the Engine API itself through
 * `docker system dial-stdio` (the docker CLI on the host, no curl needed): two requests in all,
 * where `docker inspect` of N tasks makes N (one poll of 30 services took seconds that way).
 */
export function snapshotScript(stack: string): string {
  const filter = encodeURIComponent(JSON.stringify({ label: [`com.docker.stack.namespace=${stack}`] }));
  return [
    `date +%s%3N`,
    // HTTP/1.0: the engine answers without chunking and closes, so dial-stdio ends with the answer.
    `api() { printf 'GET %s HTTP/1.0\\r\\nHost: docker\\r\\n\\r\\n' "$1" | docker system dial-stdio; }`,
    `api ${shellJoin([`/services?filters=${filter}`])} || exit 1`,
    `echo; echo ${shellJoin([SEP])}`,
    `api ${shellJoin([`/tasks?filters=${filter}`])} || exit 1`,
  ].join('\n');
}

/** The JSON body of one HTTP/1.0 answer of the engine; a refusal (not a manager, engine starting) throws. */
function apiBody(answer: string, what: string): unknown {
  const text = answer.replace(/^\s+/, '');
  const end = text.indexOf('\r\n\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (end < 0 || !status)
    throw new Error(`the engine gave no answer to the ${what} request: ${text.slice(0, 200) || '(nothing)'}`);
  const body = text.slice(end + 4).trim();
  if (status[1] !== '200') {
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON: keep the text
    }
    throw new Error(`the engine refused the ${what} request (HTTP ${status[1]}): ${message.slice(0, 300)}`);
  }
  return JSON.parse(body);
}

function parseTime(s: string | undefined): number {
  if (!s) return 0;
  // Go prints nanoseconds; Date wants at most milliseconds.
  return Date.parse(s.replace(/(\.\d{3})\d+/, '$1')) || 0;
}

// The parts of the Engine API's answers the gate reads.
interface ApiService {
  ID: string;
  Version?: { Index?: number };
  Spec: {
    Name: string;
    TaskTemplate?: { ContainerSpec?: { Image?: string } };
    Mode?: { Replicated?: { Replicas?: number } };
  };
  PreviousSpec?: { TaskTemplate?: { ContainerSpec?: { Image?: string } } };
  UpdateStatus?: { State?: string; StartedAt?: string; CompletedAt?: string; Message?: string };
}
interface ApiTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  DesiredState: string;
  Spec?: { ContainerSpec?: { Image?: string } };
  Status?: {
    Timestamp?: string;
    State?: string;
    Message?: string;
    Err?: string;
    ContainerStatus?: { ExitCode?: number };
  };
}

export function parseSnapshot(stdout: string): Snapshot {
  const at = stdout.indexOf(`\n${SEP}\n`);
  if (at < 0) throw new Error(`the snapshot has no task part: ${stdout.slice(0, 200)}`);
  const head = stdout.slice(0, at);
  const nl = head.indexOf('\n');
  const clock = Number(head.slice(0, nl));
  const services = new Map<string, ServiceState>();
  for (const svc of apiBody(head.slice(nl + 1), 'services') as ApiService[]) {
    const upd = svc.UpdateStatus;
    const template = svc.Spec.TaskTemplate;
    services.set(svc.Spec.Name, {
      id: svc.ID,
      name: svc.Spec.Name,
      image: template?.ContainerSpec?.Image ?? '',
      // Replicated (a count) or global (null); a replicated service scaled to 0 has no Replicas field.
      replicas: svc.Spec.Mode?.Replicated ? (svc.Spec.Mode.Replicated.Replicas ?? 0) : null,
      update: upd
        ? {
            state: upd.State ?? '',
            startedAt: upd.StartedAt ?? '',
            completedAt: upd.CompletedAt ?? '',
            message: upd.Message ?? '',
          }
        : null,
      taskSpec: template === undefined ? undefined : createHash('sha1').update(JSON.stringify(template)).digest('hex'),
    });
  }
  const tasks: TaskState[] = (apiBody(stdout.slice(at + SEP.length + 2), 'tasks') as ApiTask[]).map((t) => ({
    id: t.ID,
    serviceId: t.ServiceID,
    slot: t.Slot ?? 0,
    desired: t.DesiredState,
    state: t.Status?.State ?? '',
    at: parseTime(t.Status?.Timestamp),
    err: t.Status?.Err ?? '',
    image: t.Spec?.ContainerSpec?.Image ?? '',
    // The API leaves out a zero ExitCode.
    exitCode: t.Status?.ContainerStatus ? (t.Status.ContainerStatus.ExitCode ?? 0) : null,
    message: t.Status?.Message ?? '',
    node: t.NodeID ?? '',
  }));
  return { services, tasks, now: Number.isFinite(clock) && clock > 0 ? clock : Date.now() };
}

/** `docker.io/library/redis:7@sha256:…` and `redis:7` are the same image to the gate. */
export function normalizeImage(ref: string): string {
  const [name, digest] = ref.split('@');
  let r = name;
  const lastSlash0 = r.lastIndexOf('/');
  // Pinned by digest only: the digest is the identity.
  if (digest && !r.slice(lastSlash0 + 1).includes(':'))
    return `${r.replace(/^docker\.io\/(library\/)?/, '').replace(/^library\//, '')}@${digest}`;
  r = r
    .replace(/^docker\.io\/library\//, '')
    .replace(/^docker\.io\//, '')
    .replace(/^library\//, '');
  const lastSlash = r.lastIndexOf('/');
  if (!r.slice(lastSlash + 1).includes(':')) r += ':latest';
  return r;
}

/**
 * Whether a service's tasks are on its current spec, by what Swarm guarantees rather than an exact
 * count: after an engine restart, or a restart racing a rollback, it can show more running tasks than
 * replicas for minutes. Enough tasks of this spec running, none of another one still running.
 */
export function onCurrentSpec(
  svc: ServiceState,
  tasks: TaskState[],
): { converged: boolean; need: number; current: TaskState[]; running: TaskState[]; otherRunning: TaskState[] } {
  const desired = tasks.filter((t) => t.desired === 'running');
  const current = desired.filter((t) => t.image === svc.image);
  const running = current.filter((t) => t.state === 'running');
  const otherRunning = desired.filter((t) => t.image !== svc.image && t.state === 'running');
  const need = svc.replicas ?? desired.length;
  const converged = need > 0 ? running.length >= need && !otherRunning.length : svc.replicas === 0 && !desired.length;
  return { converged, need, current, running, otherRunning };
}

/** "2 running, 1 starting": tasks counted by state, in the order first seen. */
export function countStates(tasks: TaskState[]): string {
  const counts: Record<string, number> = {};
  for (const t of tasks) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return Object.entries(counts)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
}
