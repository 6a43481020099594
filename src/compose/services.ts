/** Merging a stack's files as docker stack deploy does, and reading its services with Docker's defaults. */
import { InputError } from '../errors';
import { NodePath, Yaml, isPlainObject } from './load';
import { locateIn } from './positions';
import { ResolvedCompose } from './resolve';

export interface HealthcheckInfo {
  test?: unknown;
  /** Seconds. */
  interval: number;
  timeout: number;
  retries: number;
  startPeriod: number;
  /** `disable: true` or `test: ["NONE"]`. */
  disabled: boolean;
}

export interface ServiceInfo {
  name: string;
  image?: string;
  replicas: number;
  mode: 'replicated' | 'global';
  healthcheck?: HealthcheckInfo;
  /** deploy.update_config, Docker defaults filled in; durations in seconds. */
  update: { monitor: number; failureAction: string; order: string; parallelism: number; delay: number };
  /** Seconds Docker waits for a task to stop before killing it (stop_grace_period, default 10 s). */
  stopGracePeriod: number;
  /** deploy.placement: constraints as written, and max_replicas_per_node (0: no limit). */
  placement: { constraints: string[]; maxReplicasPerNode: number };
  /** Network keys as written in the stack (`default` when the service names none). */
  networks: string[];
  /** deploy.labels, list or map form. */
  labels: Record<string, string>;
}

/** `["a=b", "c"]` or `{a: b}` → `{a: "b", c: ""}`. */
export function toStringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      if (item === null || item === undefined) continue;
      const s = String(item);
      const eq = s.indexOf('=');
      if (eq < 0) out[s] = '';
      else out[s.slice(0, eq)] = s.slice(eq + 1);
    }
  } else if (isPlainObject(v)) {
    for (const [k, val] of Object.entries(v)) out[k] = val === null || val === undefined ? '' : String(val);
  }
  return out;
}

/** Service `networks:` in list or map form → keys. */
export function networkKeys(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x) => x !== null && x !== undefined).map(String);
  if (isPlainObject(v)) return Object.keys(v);
  return [];
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (isPlainObject(a) && isPlainObject(b)) {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? deepMerge(out[k], v) : v;
    return out;
  }
  return b === undefined ? a : b;
}

/** Label and network lists in map form, so that a list in one file merges with a map in another. */
function normalizeService(svc: unknown): Record<string, Yaml> {
  if (!isPlainObject(svc)) return {};
  const out: Record<string, Yaml> = { ...svc };
  if (out.labels !== undefined) out.labels = toStringMap(out.labels);
  if (Array.isArray(out.networks)) out.networks = Object.fromEntries(networkKeys(out.networks).map((n) => [n, null]));
  if (isPlainObject(out.deploy) && out.deploy.labels !== undefined) {
    out.deploy = { ...out.deploy, labels: toStringMap(out.deploy.labels) };
  }
  return out;
}

/**
 * The stack as `docker stack deploy -c a.yml -c b.yml` sees it: later files override per key
 * (maps merged deeply, a later scalar or list wins). Label and service network lists are turned
 * into maps first.
 */
export function mergeStack(resolved: ResolvedCompose[]): Record<string, Yaml> {
  let merged: Record<string, Yaml> = {};
  for (const r of resolved) {
    const data = isPlainObject(r.data) ? { ...r.data } : {};
    if (isPlainObject(data.services)) {
      data.services = Object.fromEntries(Object.entries(data.services).map(([k, v]) => [k, normalizeService(v)]));
    }
    merged = deepMerge(merged, data) as Record<string, Yaml>;
  }
  return merged;
}

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, μs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * A Go duration (`1m30s`, `500ms`, `5s`, `1.5h`, `0`) in seconds, as Docker parses it;
 * undefined when it is not one.
 */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return v === 0 ? 0 : undefined;
  if (typeof v !== 'string') return undefined;
  let s = v.trim();
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (!s) return undefined;
  const re = /([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let i = 0;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m || m[1] === '' || m[1] === '.') return undefined;
    total += parseFloat(m[1]) * UNITS[m[2]];
    i = re.lastIndex;
  }
  return sign * total;
}

/** A value of the stack that Docker would refuse; `path` says where (e.g. services.web.deploy.replicas). */
export class ComposeValueError extends InputError {
  constructor(
    message: string,
    readonly path: NodePath,
  ) {
    super(message);
  }
}

function duration(v: unknown, fallback: number, at: NodePath): number {
  if (v === undefined || v === null || v === '') return fallback;
  const d = parseDuration(v);
  if (d === undefined) {
    throw new ComposeValueError(
      `${at.join('.')}: "${String(v)}" is not a duration; Docker wants a number with a unit, e.g. 30s, 1m30s or 500ms.`,
      at,
    );
  }
  return d;
}

function integer(v: unknown, fallback: number, at: NodePath): number {
  if (v === undefined || v === null || v === '') return fallback;
  const n = typeof v === 'number' ? v : /^\s*[0-9]+\s*$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0)
    throw new ComposeValueError(`${at.join('.')}: "${String(v)}" is not a whole number.`, at);
  return n;
}

function healthcheckOf(name: string, hc: unknown): HealthcheckInfo | undefined {
  if (!isPlainObject(hc)) return undefined;
  const where = ['services', name, 'healthcheck'];
  const test = hc.test;
  const none =
    (Array.isArray(test) && String(test[0]).toUpperCase() === 'NONE') ||
    (typeof test === 'string' && test.trim().toUpperCase() === 'NONE');
  return {
    test,
    interval: duration(hc.interval, 30, [...where, 'interval']),
    timeout: duration(hc.timeout, 30, [...where, 'timeout']),
    retries: integer(hc.retries, 3, [...where, 'retries']),
    startPeriod: duration(hc.start_period, 0, [...where, 'start_period']),
    disabled: hc.disable === true || String(hc.disable).toLowerCase() === 'true' || none,
  };
}

/** One service of a merged stack (see mergeStack). */
export function serviceInfo(name: string, svc: Record<string, Yaml>): ServiceInfo {
  const deploy = isPlainObject(svc.deploy) ? svc.deploy : {};
  const uc = isPlainObject(deploy.update_config) ? deploy.update_config : {};
  const placement = isPlainObject(deploy.placement) ? deploy.placement : {};
  const where = ['services', name, 'deploy'];
  const uwhere = [...where, 'update_config'];
  const mode = String(deploy.mode ?? 'replicated').startsWith('global') ? 'global' : 'replicated';
  const networks = networkKeys(svc.networks);
  return {
    name,
    image: svc.image === undefined || svc.image === null ? undefined : String(svc.image),
    replicas: integer(deploy.replicas, 1, [...where, 'replicas']),
    mode,
    healthcheck: healthcheckOf(name, svc.healthcheck),
    update: {
      monitor: duration(uc.monitor, 5, [...uwhere, 'monitor']),
      failureAction:
        uc.failure_action === undefined || uc.failure_action === null ? 'pause' : String(uc.failure_action),
      order: uc.order === undefined || uc.order === null ? 'stop-first' : String(uc.order),
      parallelism: integer(uc.parallelism, 1, [...uwhere, 'parallelism']),
      delay: duration(uc.delay, 0, [...uwhere, 'delay']),
    },
    stopGracePeriod: duration(svc.stop_grace_period, 10, ['services', name, 'stop_grace_period']),
    placement: {
      constraints: Array.isArray(placement.constraints) ? placement.constraints.map(String) : [],
      maxReplicasPerNode: integer(placement.max_replicas_per_node, 0, [...where, 'placement', 'max_replicas_per_node']),
    },
    networks: networks.length ? networks : ['default'],
    labels: toStringMap(deploy.labels),
  };
}

/**
 * Services of one stack deployed from several files, Docker defaults filled in. Throws InputError
 * (with file:line) for a value Docker would refuse, such as a duration without a unit.
 */
export function stackServices(resolved: ResolvedCompose[]): Record<string, ServiceInfo> {
  const merged = mergeStack(resolved);
  const out: Record<string, ServiceInfo> = {};
  const services = isPlainObject(merged.services) ? merged.services : {};
  for (const [name, svc] of Object.entries(services)) {
    try {
      out[name] = serviceInfo(name, isPlainObject(svc) ? svc : {});
    } catch (e) {
      if (e instanceof ComposeValueError && resolved.length) {
        const at = locateIn(
          resolved.map((r) => r.file),
          e.path,
        );
        throw new InputError(`${at.file.path}:${at.line}:${at.col}: ${e.message}`);
      }
      throw e;
    }
  }
  return out;
}
