import { ServiceInfo } from './compose';

// Measured on the lab (engine 20.10): a rolling update runs its batches one after the other, each
// waiting for its new tasks to become healthy, then `delay`; Swarm marks it completed `monitor`
// after the last batch (3 replicas, parallelism 1, delay 5 s, monitor 10 s, interval 2 s: 38 s).
/** Creating and starting one batch's tasks, besides its healthcheck (measured: 2–3 s). */
export const BATCH_START_S = 10;
/** Pulling a new image on the nodes, once per layer. */
export const PULL_MARGIN_S = 60;
/** What the gate uses when nothing is known of the services (a release recorded by an older version). */
export const FALLBACK_TIMEOUT_S = 300;

/** `auto`: the service's monitor plus one healthcheck cycle, at least 10 s. */
export function stabilitySeconds(svc: ServiceInfo, fixed?: number): number {
  if (fixed !== undefined) return fixed;
  const hc = svc.healthcheck && !svc.healthcheck.disabled ? svc.healthcheck.interval * svc.healthcheck.retries : 0;
  return Math.max(10, Math.ceil(svc.update.monitor + hc));
}

export interface ServiceTiming {
  service: string;
  batches: number;
  /** Seconds no healthy release can take less than: below it, the gate would roll a good one back. */
  minimum: number;
  /** The figure `timeout: auto` uses: every wait at its longest, plus the pull margin. */
  auto: number;
  /** How `auto` was computed, for the log. */
  explain: string;
}

/** One service's rolling update, as Swarm sequences it, followed by the gate's stability window. */
export function serviceTiming(svc: ServiceInfo, stability: number, nodes = 1): ServiceTiming {
  const replicas = svc.mode === 'global' ? Math.max(1, nodes) : svc.replicas;
  const { parallelism, delay, monitor, order } = svc.update;
  const batches = Math.max(1, Math.ceil(replicas / (parallelism > 0 ? parallelism : Math.max(1, replicas))));
  const hc = svc.healthcheck && !svc.healthcheck.disabled ? svc.healthcheck : undefined;
  // A task is healthy at its first passing check at the earliest, and at the last check before it
  // would turn unhealthy at the latest.
  const firstCheck = hc ? Math.min(hc.interval, hc.startPeriod > 0 ? 5 : hc.interval) : 0;
  const toHealthy = hc ? hc.startPeriod + hc.interval * hc.retries + hc.timeout : 0;
  // stop-first waits for the old task to stop: up to its grace period when it ignores SIGTERM.
  const stop = order === 'start-first' ? 0 : svc.stopGracePeriod;
  const perBatch = BATCH_START_S + stop + toHealthy + delay;
  const minimum = Math.ceil(batches * (firstCheck + delay) + monitor + stability);
  const auto = Math.ceil(batches * perBatch + monitor + stability + PULL_MARGIN_S);
  const explain =
    `${batches} batch(es) × (${BATCH_START_S} s start${stop ? ` + ${fmt(stop)} s stop` : ''}` +
    `${hc ? ` + ${fmt(toHealthy)} s to healthy` : ''}${delay ? ` + ${fmt(delay)} s delay` : ''})` +
    ` + monitor ${fmt(monitor)} s + stability ${fmt(stability)} s + pulls ${PULL_MARGIN_S} s`;
  return { service: svc.name, batches, minimum, auto, explain };
}

const fmt = (s: number) => String(Math.round(s * 10) / 10);

export interface LayerTiming {
  /** Seconds the layer's gate waits: the input, or the longest service's `auto`. */
  seconds: number;
  auto: boolean;
  /** The service that sets the figure (auto) or needs the most (explicit). */
  longest?: ServiceTiming;
  services: ServiceTiming[];
}

/** Swarm updates a stack's services side by side: the layer takes as long as its slowest service. */
export function layerTiming(
  services: ServiceInfo[],
  opts: { timeout?: number; stability?: number; nodes?: number },
): LayerTiming {
  const timings = services.map((s) => serviceTiming(s, stabilitySeconds(s, opts.stability), opts.nodes));
  if (opts.timeout !== undefined) {
    const longest = [...timings].sort((a, b) => b.minimum - a.minimum)[0];
    return { seconds: opts.timeout, auto: false, longest, services: timings };
  }
  const longest = [...timings].sort((a, b) => b.auto - a.auto)[0];
  return { seconds: longest?.auto ?? FALLBACK_TIMEOUT_S, auto: true, longest, services: timings };
}

/** The line the gate prints when it starts. */
export function describeTiming(stack: string, t: LayerTiming): string {
  if (!t.auto) return `timeout ${t.seconds} s (input)`;
  if (!t.longest) return `timeout ${t.seconds} s (auto, no service)`;
  return `timeout ${t.seconds} s (auto, set by ${stack}_${t.longest.service}: ${t.longest.explain})`;
}

/** Services an explicit timeout cannot fit: a healthy release of theirs would be rolled back. */
export function tooShort(t: LayerTiming): ServiceTiming[] {
  return t.auto ? [] : t.services.filter((s) => s.minimum > t.seconds);
}
