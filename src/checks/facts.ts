/** Facts several rules read: stateful services, proxies, Swarm network names, where a key is written. */
import { ComposeFile, NodePath, ServiceInfo, Yaml, isExternal, isPlainObject, locateIn, positionOf } from '../compose';
import { StackModel } from '../model';
import { Raw } from './types';

const STATEFUL_WORDS = [
  'redis',
  'postgres',
  'mysql',
  'mariadb',
  'mongo',
  'rabbitmq',
  'minio',
  'memcached',
  'elasticsearch',
  'valkey',
  'keydb',
];
const PROXY = /traefik|nginx|caddy|haproxy|proxy/i;

/** Repository path of an image, lower-case, without registry port, tag or digest. */
export function imageRepo(image: string | undefined): string {
  if (!image) return '';
  let s = image.toLowerCase().split('@')[0];
  const slash = s.lastIndexOf('/');
  const colon = s.lastIndexOf(':');
  if (colon > slash) s = s.slice(0, colon);
  return s;
}

function tokens(s: string): string[] {
  return s
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** The stateful word a service's image or name matches (redis, postgres, …, cache, db), if any. */
export function statefulKind(name: string, image?: string): string | undefined {
  for (const t of [...tokens(imageRepo(image)), ...tokens(name)]) {
    const word = STATEFUL_WORDS.find((w) => t.includes(w));
    if (word) return word;
    if (t === 'db' || t.endsWith('db')) return 'db';
    if (t === 'cache' || t.endsWith('cache')) return 'cache';
  }
  return undefined;
}

export function isProxyByName(name: string, image?: string): boolean {
  return PROXY.test(imageRepo(image)) || PROXY.test(name);
}

export function isTrue(v: string | undefined): boolean {
  return (v ?? '').trim().toLowerCase() === 'true';
}

export function fmt(seconds: number): string {
  if (Number.isInteger(seconds)) return `${seconds}s`;
  return `${Math.round(seconds * 1000)}ms`;
}

/** Swarm's name of a network key of the stack (stack-prefixed unless `name:` or external). */
export function swarmNetworkName(stack: string, key: string, networks: Record<string, Yaml> | undefined): string {
  const decl = networks?.[key];
  if (isPlainObject(decl)) {
    const ext = decl.external;
    if (isPlainObject(ext)) return String(ext.name ?? decl.name ?? key);
    if (ext === true || String(ext).toLowerCase() === 'true') return String(decl.name ?? key);
    if (decl.name) return String(decl.name);
  }
  return `${stack}_${key}`;
}

/** Named volumes a service mounts (not bind mounts, not anonymous volumes): two tasks would share them. */
export function namedVolumes(svc: Record<string, Yaml>): string[] {
  const out: string[] = [];
  for (const v of Array.isArray(svc.volumes) ? svc.volumes : []) {
    let source: string | undefined;
    if (typeof v === 'string') {
      const parts = v.split(':');
      if (parts.length >= 2) source = parts[0];
    } else if (isPlainObject(v) && (v.type === undefined || v.type === 'volume') && v.source) {
      source = String(v.source);
    }
    // A source that is a path is a bind mount.
    if (source && !/^[./~]/.test(source) && !source.includes('/')) out.push(source);
  }
  return out;
}

export function traefikNetworkLabel(labels: Record<string, string>): { key: string; value: string } | undefined {
  for (const key of ['traefik.docker.network', 'traefik.swarm.network']) {
    if (labels[key] !== undefined && labels[key] !== '') return { key, value: labels[key] };
  }
  return undefined;
}

/**
 * Networks the proxy is on: those of proxy services (by image or name), and for a service Traefik
 * routes, the network Traefik reaches it on (its traefik.docker.network, or its only network).
 */
export function proxyNetworks(m: StackModel, netName: (key: string) => string): Map<string, string> {
  const proxyNets = new Map<string, string>(); // Swarm network name → proxy service that is on it
  for (const info of Object.values(m.services)) {
    const enabled = isTrue(info.labels['traefik.enable']);
    if (isProxyByName(info.name, info.image)) {
      for (const n of info.networks) if (!proxyNets.has(netName(n))) proxyNets.set(netName(n), info.name);
    } else if (enabled) {
      const label = traefikNetworkLabel(info.labels);
      const target = label ? label.value : info.networks.length === 1 ? netName(info.networks[0]) : undefined;
      if (target && !proxyNets.has(target)) proxyNets.set(target, `Traefik (via ${info.name})`);
    }
  }
  return proxyNets;
}

/** Path of a service's network entry in the file that names it (list or map form). */
export function networkAt(m: StackModel, service: string, key: string): NodePath {
  for (let i = m.resolved.length - 1; i >= 0; i--) {
    const n = m.resolved[i].data?.services?.[service]?.networks;
    if (Array.isArray(n) && n.map(String).includes(key))
      return ['services', service, 'networks', n.map(String).indexOf(key)];
    if (isPlainObject(n) && key in n) return ['services', service, 'networks', key];
  }
  return ['services', service, 'networks'];
}

/** Path of a deploy label in the file that defines it (list or map form). */
export function labelAt(
  m: StackModel,
  service: string,
  label: string,
): { file: ComposeFile; line: number; col: number } {
  for (let i = m.resolved.length - 1; i >= 0; i--) {
    const labels = m.resolved[i].data?.services?.[service]?.deploy?.labels;
    const base: NodePath = ['services', service, 'deploy', 'labels'];
    let p: NodePath | undefined;
    if (Array.isArray(labels)) {
      const idx = labels.findIndex((l) => typeof l === 'string' && (l === label || l.startsWith(`${label}=`)));
      if (idx >= 0) p = [...base, idx];
    } else if (isPlainObject(labels) && label in labels) {
      p = [...base, label];
    }
    if (p) return { file: m.files[i], ...positionOf(m.files[i], p) };
  }
  return locateIn(m.files, ['services', service, 'deploy', 'labels']);
}

/** replicated-job / global-job services run to completion: no rolling update, no healthcheck to gate on. */
export function isJob(svc: Record<string, Yaml>): boolean {
  return /-job$/.test(String(svc?.deploy?.mode ?? ''));
}

/** At most one finding per service, in the order of the stack. */
export function perService(
  m: StackModel,
  f: (name: string, info: ServiceInfo, svc: Record<string, Yaml>) => Raw | undefined,
): Raw[] {
  return Object.entries(m.services)
    .map(([name, info]) => f(name, info, m.raw[name]))
    .filter((r): r is Raw => !!r);
}

/** The top-level configs and secrets the stack creates from a `file:` (not external ones). */
export function fileObjects(
  m: StackModel,
): { section: 'configs' | 'secrets'; kind: string; key: string; entry: Yaml }[] {
  const out: { section: 'configs' | 'secrets'; kind: string; key: string; entry: Yaml }[] = [];
  for (const [section, kind] of [
    ['configs', 'config'],
    ['secrets', 'secret'],
  ] as const) {
    const entries = isPlainObject(m.merged[section]) ? m.merged[section] : {};
    for (const [key, entry] of Object.entries(entries)) {
      if (!isPlainObject(entry) || isExternal(entry) || typeof entry.file !== 'string' || !entry.file) continue;
      out.push({ section, kind, key, entry });
    }
  }
  return out;
}
