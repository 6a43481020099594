import type { ServiceGate } from './gate';
import type { Snapshot } from './swarm';

/** One service of a layer, as the job summary shows it. */
export interface ServiceRow {
  stack: string;
  service: string;
  before: string;
  after: string;
  /** The image the service runs at the verdict (`repo:tag@sha256:<12 hex>`). */
  image: string;
  replicas: string;
  state: string;
  seconds: number;
  detail: string;
}

/** The tag of an image reference (the reference itself when it has none); `—` for no image. */
export const tag = (image?: string | null) =>
  image ? (image.split('@')[0].split('/').pop() ?? '').split(':').slice(1).join(':') || image : '—';

/** When the layer's gate started, when each service got its verdict, and when the gate reported. */
export interface GateTimes {
  t0: number;
  reportedAt: number;
  finishedAt: Map<string, number>;
}

/** One row per watched service, read from a snapshot; `state` says what the row shows for each. */
export function serviceRows(
  stack: string,
  gates: ServiceGate[],
  snap: Snapshot,
  times: GateTimes,
  state: (g: ServiceGate) => string,
): ServiceRow[] {
  return gates.map((g) => {
    const svc = snap.services.get(g.watch.name);
    const running = svc
      ? snap.tasks.filter((t) => t.serviceId === svc.id && t.desired === 'running' && t.state === 'running').length
      : 0;
    return {
      stack,
      service: g.watch.name,
      before: tag(g.watch.before?.image),
      after: tag(g.watch.expectedImage),
      image: (svc?.image ?? g.watch.expectedImage).replace(/@sha256:([0-9a-f]{12})[0-9a-f]+$/, '@sha256:$1'),
      replicas: svc ? `${running}/${svc.replicas ?? 'global'}` : '—',
      state: state(g),
      seconds: Math.round(((times.finishedAt.get(g.watch.name) ?? times.reportedAt) - times.t0) / 100) / 10,
      detail: g.verdict.detail,
    };
  });
}
