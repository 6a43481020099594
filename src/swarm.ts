import { createHash } from 'crypto';
import type { Engine } from './host/engine-api';

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

/**
 * Every service of a stack and all their tasks: two requests to the Engine API whatever the number
 * of services, where `docker inspect` of N tasks makes N (one poll of 30 services took seconds that way).
 */
export async function readStack(engine: Engine, stack: string, timeoutMs: number): Promise<Snapshot> {
  const filter = encodeURIComponent(JSON.stringify({ label: [`com.docker.stack.namespace=${stack}`] }));
  const services = (await engine.get(`/services?filters=${filter}`, timeoutMs)) as ApiService[];
  const tasks = (await engine.get(`/tasks?filters=${filter}`, timeoutMs)) as ApiTask[];
  return snapshotOf(services, tasks, engine.hostNow());
}

function parseTime(s: string | undefined): number {
  if (!s) return 0;
  // Go prints nanoseconds; Date wants at most milliseconds.
  return Date.parse(s.replace(/(\.\d{3})\d+/, '$1')) || 0;
}

// The parts of the Engine API's answers the gate reads.
export interface ApiService {
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
export interface ApiTask {
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

/** The gate's view of the Engine API's answers; `now` is the host's clock. */
export function snapshotOf(apiServices: ApiService[], apiTasks: ApiTask[], now: number): Snapshot {
  const services = new Map<string, ServiceState>();
  for (const svc of apiServices) {
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
  const tasks: TaskState[] = apiTasks.map((t) => ({
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
  return { services, tasks, now };
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
