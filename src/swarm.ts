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
  previousImage: string | null;
  versionIndex: number;
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
}

export interface Snapshot {
  services: Map<string, ServiceState>;
  tasks: TaskState[];
  /** The host's clock (ms) when it was read: task timestamps are compared with it, not the runner's. */
  now: number;
}

const SEP = '@@deploy-action:tasks@@';

// One JSON array per line: robust against tabs and quotes in messages, and cheap to parse.
const SERVICE_FORMAT =
  '[{{json .ID}},{{json .Spec.Name}},{{json .Spec.TaskTemplate.ContainerSpec.Image}},' +
  '{{if .Spec.Mode.Replicated}}{{json .Spec.Mode.Replicated.Replicas}}{{else}}null{{end}},' +
  '{{if .UpdateStatus}}{{json .UpdateStatus}}{{else}}null{{end}},' +
  '{{if .PreviousSpec}}{{json .PreviousSpec.TaskTemplate.ContainerSpec.Image}}{{else}}null{{end}},' +
  '{{json .Version.Index}},{{json .Spec.TaskTemplate}}]';
const TASK_FORMAT =
  '[{{json .ID}},{{json .ServiceID}},{{json .Slot}},{{json .DesiredState}},{{json .Status.State}},' +
  '{{json .Status.Timestamp}},{{json .Status.Err}},{{json .Spec.ContainerSpec.Image}},' +
  '{{if .Status.ContainerStatus}}{{json .Status.ContainerStatus.ExitCode}}{{else}}null{{end}},{{json .Status.Message}}]';

/**
 * One remote command that reads every service of a stack and all their tasks:
 * the gate's poll costs one SSH exec whatever the number of services.
 */
export function snapshotScript(stack: string, names?: string[]): string {
  // The gate knows its services' names: one docker call fewer per poll than listing the stack.
  const ls = names?.length ? `echo ${shellJoin(names)}` : shellJoin(['docker', 'service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${stack}`]);
  return [
    `date +%s%3N`,
    `ids=$(${ls}) || exit 1`,
    `[ -n "$ids" ] || { echo ${shellJoin([SEP])}; exit 0; }`,
    `${shellJoin(['docker', 'service', 'inspect', '--format', SERVICE_FORMAT])} $ids || exit 1`,
    `echo ${shellJoin([SEP])}`,
    `tids=$(${shellJoin(['docker', 'service', 'ps', '-q', '--no-trunc'])} $ids) || exit 1`,
    // A task can vanish between the two commands: inspect prints the others, and that is enough.
    `[ -z "$tids" ] || ${shellJoin(['docker', 'inspect', '--type', 'task', '--format', TASK_FORMAT])} $tids 2>/dev/null; true`,
  ].join('\n');
}

function parseTime(s: string | undefined): number {
  if (!s) return 0;
  // Go prints nanoseconds; Date wants at most milliseconds.
  return Date.parse(s.replace(/(\.\d{3})\d+/, '$1')) || 0;
}

export function parseSnapshot(stdout: string): Snapshot {
  const [head, taskPart = ''] = stdout.split(SEP);
  const lines = head.split('\n');
  const clock = Number(lines[0]);
  const services = new Map<string, ServiceState>();
  for (const line of lines.slice(1)) {
    if (!line.trim()) continue;
    const [id, name, image, replicas, upd, prev, index, template] = JSON.parse(line);
    services.set(name, {
      id,
      name,
      image,
      replicas,
      update: upd ? { state: upd.State ?? '', startedAt: upd.StartedAt ?? '', completedAt: upd.CompletedAt ?? '', message: upd.Message ?? '' } : null,
      previousImage: prev,
      versionIndex: index,
      taskSpec: template === undefined ? undefined : createHash('sha1').update(JSON.stringify(template)).digest('hex'),
    });
  }
  const tasks: TaskState[] = [];
  for (const line of taskPart.split('\n')) {
    if (!line.trim()) continue;
    const [id, serviceId, slot, desired, state, ts, err, image, exitCode, message] = JSON.parse(line);
    tasks.push({ id, serviceId, slot, desired, state, at: parseTime(ts), err: err ?? '', image, exitCode, message: message ?? '' });
  }
  return { services, tasks, now: Number.isFinite(clock) && clock > 0 ? clock : Date.now() };
}

/** `docker.io/library/redis:7@sha256:…` and `redis:7` are the same image to the gate. */
export function normalizeImage(ref: string): string {
  const [name, digest] = ref.split('@');
  let r = name;
  const lastSlash0 = r.lastIndexOf('/');
  // Pinned by digest only: the digest is the identity.
  if (digest && !r.slice(lastSlash0 + 1).includes(':')) return `${r.replace(/^docker\.io\/(library\/)?/, '').replace(/^library\//, '')}@${digest}`;
  r = r.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '').replace(/^library\//, '');
  const lastSlash = r.lastIndexOf('/');
  if (!r.slice(lastSlash + 1).includes(':')) r += ':latest';
  return r;
}
