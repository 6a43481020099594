/**
 * Pre-flight checks of a stack's files: the mistakes that cost Swarm-behind-Traefik teams hours,
 * found before anything reaches the host. Each rule has a stable id (docs/checks.md), a severity
 * and a message that says what is wrong and how to fix it.
 */
import * as core from '@actions/core';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import {
  ComposeFile,
  ComposeValueError,
  NodePath,
  Yaml,
  ResolvedCompose,
  ServiceInfo,
  bindMounts,
  envFileEntries,
  hasPath,
  locateIn,
  mergeStack,
  networkKeys,
  positionOf,
  resolveCompose,
  serviceInfo,
  toStringMap,
} from './compose';

export type Severity = 'error' | 'warning' | 'notice';

export interface Finding {
  rule: string;
  severity: Severity;
  file: string;
  line: number;
  col: number;
  stack: string;
  service?: string;
  /** What is wrong, and the fix. */
  message: string;
}

export interface CheckOptions {
  /** Rule ids switched off for the whole run. */
  skip?: string[];
  /** Name of an existing Swarm config/secret on the host → sha256 hex of its content, when known. */
  existingObjects?: Record<string, string>;
  /**
   * Swarm networks Traefik uses by default (its providers.docker/swarm.network), read from every
   * stack of the run (traefikProviderNetworks): the proxy is usually in another stack than the app.
   * When absent, read from this stack only.
   */
  traefikNetworks?: string[];
}

/** Every rule, with its severity (the one it usually reports with) and what it catches. */
export const RULES: { id: string; severity: Severity; summary: string }[] = [
  {
    id: 'overlay-mtu',
    severity: 'error',
    summary: 'overlay network MTU above 1450, or above the host MTU − 50 when the host is known',
  },
  { id: 'undefined-network', severity: 'error', summary: 'service on a network the stack does not declare' },
  {
    id: 'traefik-network',
    severity: 'error',
    summary:
      'Traefik-routed service on several networks without a valid traefik.docker.network or Traefik default network',
  },
  {
    id: 'traefik-labels-placement',
    severity: 'warning',
    summary: 'traefik.* labels under service labels: instead of deploy.labels',
  },
  {
    id: 'monitor-window',
    severity: 'warning',
    summary: 'update_config.monitor not longer than one healthcheck cycle / start_period with failure_action rollback',
  },
  { id: 'failure-action', severity: 'warning', summary: 'update_config.failure_action missing or pause' },
  { id: 'unset-variable', severity: 'error', summary: '${VAR} without default whose variable is unset' },
  {
    id: 'interpolation',
    severity: 'error',
    summary: 'invalid ${...} syntax, or a ${VAR:?message} whose variable is missing',
  },
  {
    id: 'single-replica-stop-first',
    severity: 'warning',
    summary: 'one replica with order stop-first: downtime on every deploy',
  },
  { id: 'no-healthcheck', severity: 'notice', summary: 'service without a healthcheck in the stack' },
  { id: 'stateful-on-proxy-network', severity: 'warning', summary: 'database or cache on the network the proxy is on' },
  { id: 'immutable-object', severity: 'error', summary: 'config/secret whose content changed but whose name did not' },
  {
    id: 'missing-file',
    severity: 'error',
    summary: 'config/secret file, env_file or relative bind mount source that does not exist',
  },
  {
    id: 'bind-mount-node',
    severity: 'warning',
    summary: 'relative bind mount of a service that can run on a node other than the manager (connected)',
  },
  { id: 'swarm-ignored', severity: 'notice', summary: 'service keys that docker stack deploy ignores' },
  { id: 'invalid-value', severity: 'error', summary: 'a duration or number Docker would refuse' },
  {
    id: 'invalid-yaml',
    severity: 'error',
    summary: 'a stack file that is not valid YAML, or whose top level is not a mapping',
  },
  { id: 'unknown-key', severity: 'error', summary: 'a top-level key docker stack deploy refuses' },
  {
    id: 'timeout-too-short',
    severity: 'error',
    summary: 'an explicit `timeout` shorter than a healthy rolling update of a service takes',
  },
  {
    id: 'placement',
    severity: 'error',
    summary: 'placement constraints no node meets, or replicas that cannot fit (connected)',
  },
];

export const RULE_IDS: string[] = RULES.map((r) => r.id);

const SKIP_LABEL = 'deploy-action.skip';
const SKIP_COMMENT = /#\s*deploy-action:\s*skip\b([^#\n]*)/i;

/** Keys Swarm does not apply (docker/cli's unsupported and deprecated service properties, plus depends_on). */
const SWARM_IGNORED: Record<string, string> = {
  build: 'the image is built before the deploy (`command: build` builds it from this section) and Swarm runs `image:`',
  depends_on: 'Swarm starts services in any order; make the service retry its dependencies and use healthchecks',
  container_name: 'Swarm names tasks <stack>_<service>.<slot>.<id>; reach the service by its name on a shared network',
  restart: 'use deploy.restart_policy',
  links: 'services on a shared network reach each other by service name',
  external_links: 'attach both services to a shared (external) network',
  network_mode: 'use networks:',
  privileged: 'Swarm services cannot run privileged',
  security_opt: 'not applied to Swarm services',
  userns_mode: 'not applied to Swarm services',
  cgroup_parent: 'not applied to Swarm services',
};

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

function isPlainObject(v: unknown): v is Record<string, Yaml> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Repository path of an image, lower-case, without registry port, tag or digest. */
function imageRepo(image: string | undefined): string {
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

function isProxyByName(name: string, image?: string): boolean {
  return PROXY.test(imageRepo(image)) || PROXY.test(name);
}

function isTrue(v: string | undefined): boolean {
  return (v ?? '').trim().toLowerCase() === 'true';
}

function parseRuleList(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function fmt(seconds: number): string {
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

function isExternal(decl: unknown): boolean {
  if (!isPlainObject(decl)) return false;
  const ext = decl.external;
  return isPlainObject(ext) || ext === true || String(ext).toLowerCase() === 'true';
}

/** Docker's overlay MTU when none is given: 1500 − 50 bytes of VXLAN, whatever the host's interface. */
export const DOCKER_OVERLAY_MTU = 1450;

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

/** `providers.docker.network` / `providers.swarm.network` of a Traefik static configuration file. */
function staticFileNetworks(file: string, text: string): string[] {
  if (/\.toml$/i.test(file)) {
    // TOML: the network key of a [providers.docker] or [providers.swarm] table.
    const out: string[] = [];
    let inProvider = false;
    for (const line of text.split(/\r?\n/)) {
      const table = /^\s*\[([^\]]+)\]/.exec(line);
      if (table) inProvider = /^\s*providers\.(docker|swarm)\s*$/i.test(table[1]);
      const m = inProvider && /^\s*network\s*=\s*["']([^"']+)["']/.exec(line);
      if (m) out.push(m[1]);
    }
    return out;
  }
  try {
    const doc = YAML.parse(text);
    const providers = isPlainObject(doc) && isPlainObject(doc.providers) ? doc.providers : {};
    return ['docker', 'swarm']
      .map((k) => providers[k]?.network)
      .filter((n): n is string => typeof n === 'string' && n !== '');
  } catch {
    return [];
  }
}

/**
 * Networks Traefik picks by default for every service it routes, from its command
 * (`--providers.docker.network=NAME` v2, `--providers.swarm.network=NAME` v3), its environment
 * (TRAEFIK_PROVIDERS_DOCKER_NETWORK, TRAEFIK_PROVIDERS_SWARM_NETWORK) or its static configuration
 * file (a config or bind-mounted traefik.yml/toml), in any of the given stacks.
 */
export function traefikProviderNetworks(
  stacks: { name: string; files: ComposeFile[] }[],
  env: Record<string, string | undefined>,
): string[] {
  const out = new Set<string>();
  for (const stack of stacks) {
    if (!stack.files.length) continue;
    const merged = mergeStack(stack.files.map((f) => resolveCompose(f, env)));
    const baseDir = path.dirname(stack.files[0].absPath);
    const services: Record<string, Yaml> = isPlainObject(merged.services) ? merged.services : {};
    for (const svc of Object.values(services)) {
      if (!isPlainObject(svc)) continue;
      const args: string[] = Array.isArray(svc.command)
        ? svc.command.map(String)
        : typeof svc.command === 'string'
          ? svc.command.split(/\s+/)
          : [];
      args.forEach((a, i) => {
        const m = /^--providers\.(docker|swarm)\.network(?:=(.*))?$/i.exec(a);
        const v = m ? (m[2] ?? args[i + 1]) : undefined;
        if (v) out.add(v.replace(/^["']|["']$/g, ''));
      });
      const environment = toStringMap(svc.environment);
      for (const k of ['TRAEFIK_PROVIDERS_DOCKER_NETWORK', 'TRAEFIK_PROVIDERS_SWARM_NETWORK'])
        if (environment[k]) out.add(environment[k]);
      if (!/traefik/.test(imageRepo(svc.image))) continue;
      // Its static configuration: files given as configs, or bind-mounted.
      const files: string[] = [];
      const configs = isPlainObject(merged.configs) ? merged.configs : {};
      for (const c of Array.isArray(svc.configs) ? svc.configs : []) {
        const entry = configs[isPlainObject(c) ? String(c.source) : String(c)];
        if (isPlainObject(entry) && typeof entry.file === 'string') files.push(entry.file);
      }
      for (const v of Array.isArray(svc.volumes) ? svc.volumes : []) {
        const source =
          typeof v === 'string' ? v.split(':')[0] : isPlainObject(v) && v.type === 'bind' ? String(v.source ?? '') : '';
        if (/^[./~]/.test(source)) files.push(source);
      }
      for (const f of files.filter((x) => /\.(ya?ml|toml)$/i.test(x))) {
        let text: string;
        try {
          text = fs.readFileSync(path.resolve(baseDir, f), 'utf8');
        } catch {
          continue;
        }
        staticFileNetworks(f, text).forEach((n) => out.add(n));
      }
    }
  }
  return [...out];
}

/** Rules switched off for one service / network / config entry: a skip comment on or above its key, a service's skip label. */
function entitySkips(files: ComposeFile[], services: Record<string, Yaml>, entity: NodePath): Set<string> {
  const out = new Set<string>();
  for (const f of files) {
    if (!hasPath(f, entity)) continue;
    const { line } = positionOf(f, entity);
    const lines = f.text.split(/\r?\n/);
    for (const l of [line, line - 1]) {
      const m = SKIP_COMMENT.exec(lines[l - 1] ?? '');
      if (m) parseRuleList(m[1]).forEach((r) => out.add(r));
    }
  }
  if (entity[0] === 'services') {
    const svc = services[entity[1] as string];
    const labels = toStringMap(isPlainObject(svc?.deploy) ? svc.deploy.labels : undefined);
    if (labels[SKIP_LABEL] !== undefined) parseRuleList(labels[SKIP_LABEL]).forEach((r) => out.add(r));
  }
  return out;
}

/** An overlay network the stack creates, with where it is declared (or first used, for `default`). */
export interface OverlayNetwork {
  stack: string;
  /** Key in the stack file. */
  key: string;
  /** Swarm name. */
  name: string;
  /** Explicit com.docker.network.driver.mtu; undefined = Docker's 1450. */
  mtu?: number;
  file: string;
  line: number;
  col: number;
}

/** The overlay networks a stack creates (not external ones), the implicit `default` when a service uses it. */
export function overlayNetworks(
  stack: { name: string; files: ComposeFile[] },
  env: Record<string, string | undefined>,
): OverlayNetwork[] {
  if (!stack.files.length) return [];
  const merged = mergeStack(stack.files.map((f) => resolveCompose(f, env)));
  const networks: Record<string, Yaml> = isPlainObject(merged.networks) ? merged.networks : {};
  const out: OverlayNetwork[] = [];
  const at = (p: NodePath) => {
    const l = locateIn(stack.files, p);
    return { file: l.file.path, line: l.line, col: l.col };
  };
  const services: Record<string, Yaml> = isPlainObject(merged.services) ? merged.services : {};
  // As in checkStack: a skip comment on the network (or on the service that brings in `default`).
  const off = (entity: NodePath) => {
    const s = entitySkips(stack.files, services, entity);
    return s.has('overlay-mtu') || s.has('all');
  };
  for (const [key, decl] of Object.entries(networks)) {
    const d = isPlainObject(decl) ? decl : {};
    if (isExternal(decl) || String(d.driver ?? 'overlay') !== 'overlay' || off(['networks', key])) continue;
    const raw = isPlainObject(d.driver_opts) ? d.driver_opts['com.docker.network.driver.mtu'] : undefined;
    const mtu = raw === undefined || raw === null || raw === '' ? undefined : Number(String(raw).trim());
    const where =
      mtu === undefined ? ['networks', key] : ['networks', key, 'driver_opts', 'com.docker.network.driver.mtu'];
    out.push({ stack: stack.name, key, name: swarmNetworkName(stack.name, key, networks), mtu, ...at(where) });
  }
  if (!('default' in networks)) {
    const user = Object.entries(services).find(
      ([, svc]) =>
        !isPlainObject(svc) || networkKeys(svc.networks).length === 0 || networkKeys(svc.networks).includes('default'),
    );
    if (user && !off(['services', user[0]]))
      out.push({ stack: stack.name, key: 'default', name: `${stack.name}_default`, ...at(['services', user[0]]) });
  }
  return out;
}

/**
 * overlay-mtu with facts from the host: VXLAN needs 50 bytes of every node's interface MTU, and
 * Docker gives an overlay network 1450 whatever the interface, so on a node below 1500 every
 * overlay network must set com.docker.network.driver.mtu to at most the smallest MTU − 50.
 * `nodeMtus`: node name → MTU of the interface Swarm traffic uses.
 */
export function hostMtuFindings(nodeMtus: Record<string, number>, networks: OverlayNetwork[]): Finding[] {
  const known = Object.entries(nodeMtus).filter(([, m]) => Number.isFinite(m) && m > 0);
  if (!known.length) return [];
  const min = Math.min(...known.map(([, m]) => m));
  const nodes = known.filter(([, m]) => m === min).map(([n]) => n);
  const want = min - 50;
  const out: Finding[] = [];
  for (const n of networks) {
    const effective = n.mtu ?? DOCKER_OVERLAY_MTU;
    if (Number.isInteger(effective) && effective <= want) continue;
    out.push({
      rule: 'overlay-mtu',
      severity: 'error',
      file: n.file,
      line: n.line,
      col: n.col,
      stack: n.stack,
      message:
        `Network ${n.key} (${n.name}, overlay) has MTU ${n.mtu === undefined ? `${DOCKER_OVERLAY_MTU} (Docker's default)` : n.mtu}, ` +
        `but node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')} ${nodes.length > 1 ? 'have' : 'has'} interface MTU ${min}: ` +
        `VXLAN adds 50 bytes, so large packets between nodes are dropped and big requests hang. ` +
        `${n.key === 'default' ? 'Declare it: networks: default: driver_opts:' : `Under networks.${n.key}, set driver_opts:`} ` +
        `com.docker.network.driver.mtu: ${want}.`,
    });
  }
  return out;
}

/** Runs every rule over one stack (its files merged in order, as docker stack deploy does). */
export function checkStack(
  stack: { name: string; files: ComposeFile[] },
  env: Record<string, string | undefined>,
  opts: CheckOptions = {},
): Finding[] {
  const files = stack.files;
  if (!files.length) return [];
  const skipAll = new Set(opts.skip ?? []);
  const findings: Finding[] = [];
  const resolved: ResolvedCompose[] = files.map((f) => resolveCompose(f, env));
  const merged = mergeStack(resolved);
  const services: Record<string, Yaml> = isPlainObject(merged.services) ? merged.services : {};
  const networks: Record<string, Yaml> = isPlainObject(merged.networks) ? merged.networks : {};
  // docker stack deploy resolves relative paths against the folder of the first compose file.
  const baseDir = path.dirname(files[0].absPath);

  // --- switching rules off for one service / network / config entry --------------------------
  const skipCache = new Map<string, Set<string>>();
  const skipsFor = (entity: NodePath): Set<string> => {
    const key = JSON.stringify(entity);
    let s = skipCache.get(key);
    if (!s) {
      s = entitySkips(files, services, entity);
      skipCache.set(key, s);
    }
    return s;
  };
  const skipped = (rule: string, entity?: NodePath): boolean => {
    if (skipAll.has(rule) || skipAll.has('all')) return true;
    if (!entity) return false;
    const s = skipsFor(entity);
    return s.has(rule) || s.has('all');
  };

  const add = (
    rule: string,
    severity: Severity,
    at: NodePath | { file: ComposeFile; line: number; col: number },
    message: string,
    entity?: NodePath,
  ): void => {
    if (skipped(rule, entity)) return;
    const loc = Array.isArray(at) ? locateIn(files, at) : at;
    const service = entity && entity[0] === 'services' ? String(entity[1]) : undefined;
    findings.push({
      rule,
      severity,
      file: loc.file.path,
      line: loc.line,
      col: loc.col,
      stack: stack.name,
      service,
      message,
    });
  };
  const entityOf = (p: NodePath | undefined): NodePath | undefined =>
    p && p.length >= 2 && ['services', 'networks', 'configs', 'secrets'].includes(String(p[0]))
      ? p.slice(0, 2)
      : undefined;

  // --- interpolation ---------------------------------------------------------------------------
  resolved.forEach((r) => {
    const seen = new Set<string>();
    for (const u of r.unset) {
      const k = `${u.name}@${u.line}:${u.col}`;
      if (seen.has(k)) continue;
      seen.add(k);
      add(
        'unset-variable',
        'error',
        { file: r.file, line: u.line, col: u.col },
        `Variable ${u.name} is not set and has no default: Docker would substitute an empty string and deploy ` +
          `anyway (an image tag \`app:\${${u.name}}\` becomes \`app:\`). Set it (input \`env\`; <SERVICE>_VERSION ` +
          `comes from the service's VERSION file), or give it a default: \${${u.name}:-value}.`,
        entityOf(u.path),
      );
    }
    for (const e of r.errors) {
      add('interpolation', 'error', { file: r.file, line: e.line, col: e.col }, `${e.message}.`, entityOf(e.path));
    }
  });

  // --- per service ----------------------------------------------------------------------------
  const infos: Record<string, ServiceInfo> = {};
  for (const [name, svc] of Object.entries(services)) {
    try {
      infos[name] = serviceInfo(name, isPlainObject(svc) ? svc : {});
    } catch (e) {
      if (!(e instanceof ComposeValueError)) throw e;
      add('invalid-value', 'error', e.path, `${e.message}`, ['services', name]);
    }
  }

  const netName = (key: string): string => swarmNetworkName(stack.name, key, networks);
  const declared = (key: string): boolean => key === 'default' || Object.prototype.hasOwnProperty.call(networks, key);
  const traefikDefaults = opts.traefikNetworks ?? traefikProviderNetworks([stack], env);
  /** Path of a service's network entry in the file that names it (list or map form). */
  const networkAt = (service: string, key: string): NodePath => {
    for (let i = resolved.length - 1; i >= 0; i--) {
      const n = resolved[i].data?.services?.[service]?.networks;
      if (Array.isArray(n) && n.map(String).includes(key))
        return ['services', service, 'networks', n.map(String).indexOf(key)];
      if (isPlainObject(n) && key in n) return ['services', service, 'networks', key];
    }
    return ['services', service, 'networks'];
  };
  const traefikNetworkLabel = (labels: Record<string, string>): { key: string; value: string } | undefined => {
    for (const key of ['traefik.docker.network', 'traefik.swarm.network']) {
      if (labels[key] !== undefined && labels[key] !== '') return { key, value: labels[key] };
    }
    return undefined;
  };

  /** Path of a deploy label in the file that defines it (list or map form). */
  const labelAt = (service: string, label: string): { file: ComposeFile; line: number; col: number } => {
    for (let i = resolved.length - 1; i >= 0; i--) {
      const labels = resolved[i].data?.services?.[service]?.deploy?.labels;
      const base: NodePath = ['services', service, 'deploy', 'labels'];
      let p: NodePath | undefined;
      if (Array.isArray(labels)) {
        const idx = labels.findIndex((l) => typeof l === 'string' && (l === label || l.startsWith(`${label}=`)));
        if (idx >= 0) p = [...base, idx];
      } else if (isPlainObject(labels) && label in labels) {
        p = [...base, label];
      }
      if (p) return { file: files[i], ...positionOf(files[i], p) };
    }
    return locateIn(files, ['services', service, 'deploy', 'labels']);
  };

  // Networks the proxy is on: those of proxy services (by image or name), and for a service Traefik
  // routes, the network Traefik reaches it on (its traefik.docker.network, or its only network).
  const proxyNets = new Map<string, string>(); // Swarm network name → proxy service that is on it
  for (const info of Object.values(infos)) {
    const enabled = isTrue(info.labels['traefik.enable']);
    if (isProxyByName(info.name, info.image)) {
      for (const n of info.networks) if (!proxyNets.has(netName(n))) proxyNets.set(netName(n), info.name);
    } else if (enabled) {
      const label = traefikNetworkLabel(info.labels);
      const target = label ? label.value : info.networks.length === 1 ? netName(info.networks[0]) : undefined;
      if (target && !proxyNets.has(target)) proxyNets.set(target, `Traefik (via ${info.name})`);
    }
  }

  for (const [name, info] of Object.entries(infos)) {
    const svc: Record<string, Yaml> = isPlainObject(services[name]) ? services[name] : {};
    const entity: NodePath = ['services', name];
    const sp = (...rest: (string | number)[]): NodePath => ['services', name, ...rest];
    const hc = info.healthcheck;
    const u = info.update;
    // replicated-job / global-job services run to completion: no rolling update, no healthcheck to gate on.
    const job = /-job$/.test(String(svc?.deploy?.mode ?? ''));

    // undefined-network: docker stack deploy refuses the whole stack ("undefined network").
    for (const k of info.networks.filter((n) => !declared(n))) {
      add(
        'undefined-network',
        'error',
        networkAt(name, k),
        `Service ${name} is on network ${k}, which the stack does not declare: docker stack deploy refuses it ` +
          `("undefined network"). Declare it under the top-level networks: (external: true for one created ` +
          `outside the stack, e.g. by the proxy's stack), or use a declared one` +
          `${Object.keys(networks).length ? ` (${Object.keys(networks).join(', ')})` : ''}.`,
        entity,
      );
    }

    // swarm-ignored
    const ignored = Object.keys(SWARM_IGNORED).filter((k) => svc[k] !== undefined);
    if (ignored.length) {
      add(
        'swarm-ignored',
        'notice',
        sp(ignored[0]),
        `Service ${name}: docker stack deploy ignores ${ignored.map((k) => `\`${k}\``).join(', ')} — ` +
          ignored.map((k) => `${k}: ${SWARM_IGNORED[k]}`).join('; ') +
          '.',
        entity,
      );
    }

    // no-healthcheck
    if (!hc && !job) {
      add(
        'no-healthcheck',
        'notice',
        entity,
        `Service ${name} has no healthcheck in the stack: the gate can only see its tasks "running", not whether ` +
          `the app answers. If the image defines a HEALTHCHECK, Swarm still uses it (this check cannot see images); ` +
          `otherwise add healthcheck: (test, interval, retries, start_period).`,
        entity,
      );
    } else if (hc && hc.disabled && !job) {
      add(
        'no-healthcheck',
        'notice',
        sp('healthcheck'),
        `Service ${name} disables its healthcheck (also the image's HEALTHCHECK): the gate can only see its tasks ` +
          `"running", not whether the app answers. Remove disable: true / test: ["NONE"] and give a real test.`,
        entity,
      );
    }

    // failure-action
    if (u.failureAction === 'pause' && !job) {
      const missing = svc?.deploy?.update_config?.failure_action === undefined;
      add(
        'failure-action',
        'warning',
        sp('deploy', 'update_config', 'failure_action'),
        `Service ${name}: update_config.failure_action is ${missing ? "not set (Docker's default is pause)" : 'pause'}: ` +
          `a failed update stays paused half-done, some tasks on the new version and some on the old. The action's ` +
          `gate rolls back itself, but set deploy.update_config.failure_action: rollback so that Swarm does it too ` +
          `(deploys without the action, or a runner lost mid-deploy).`,
        entity,
      );
    }

    // monitor-window
    if (u.failureAction === 'rollback' && hc && !hc.disabled && !job) {
      const cycle = hc.interval * hc.retries;
      const threshold = Math.max(hc.startPeriod, cycle);
      if (u.monitor <= threshold) {
        const suggested = Math.ceil(threshold + Math.max(hc.interval, 5));
        const what =
          hc.startPeriod > cycle
            ? `the healthcheck's start_period (${fmt(hc.startPeriod)})`
            : `one healthcheck cycle (interval × retries = ${fmt(hc.interval)} × ${hc.retries} = ${fmt(cycle)})`;
        const monitorSet = svc?.deploy?.update_config?.monitor !== undefined;
        add(
          'monitor-window',
          'warning',
          sp('deploy', 'update_config', 'monitor'),
          `Service ${name}: update_config.monitor (${fmt(u.monitor)}${monitorSet ? '' : ", Docker's default"}) is not ` +
            `longer than ${what}, so Swarm's automatic rollback misses failures that come after the first healthy ` +
            `check. Measured on Docker 20.10: Swarm keeps a task with a healthcheck in "starting" until its first ` +
            `healthy check, and monitor only counts from "running"; so a release that never becomes healthy IS ` +
            `rolled back whatever monitor is, but a release that is healthy for a while and then crashes after ` +
            `monitor has elapsed leaves the update "completed" and the service crash-looping on the new version. A ` +
            `monitor window shorter than one healthcheck cycle (interval × retries = ${fmt(cycle)}) sees nothing of ` +
            `the first unhealthy period. Set monitor to at least interval × retries plus a margin (here ` +
            `monitor: ${suggested}s). The action's gate also watches its own stability window after "completed" ` +
            `(input \`stability\`).`,
          entity,
        );
      }
    }

    // single-replica-stop-first
    const hostPorts = Array.isArray(svc.ports) && svc.ports.some((p: unknown) => isPlainObject(p) && p.mode === 'host');
    const stateful = statefulKind(name, info.image);
    const volumes = namedVolumes(svc);
    if (info.mode === 'replicated' && !job && info.replicas === 1 && !hostPorts) {
      const orderAt =
        svc?.deploy?.update_config?.order !== undefined
          ? sp('deploy', 'update_config', 'order')
          : sp('deploy', 'replicas');
      const vols = volumes.join(', ');
      if (volumes.length && u.order === 'stop-first') {
        // Two copies on one data folder can corrupt it (databases, Prometheus' TSDB) or fail on its lock.
        add(
          'single-replica-stop-first',
          'notice',
          orderAt,
          `Service ${name} runs one replica with order stop-first and named volume${volumes.length > 1 ? 's' : ''} ${vols}: ` +
            `keep stop-first. start-first would run the new task next to the old one on the same data folder, which ` +
            `can corrupt it or fail on its lock; the price is a short downtime on each deploy of this service.`,
          entity,
        );
      } else if (volumes.length && u.order === 'start-first') {
        add(
          'single-replica-stop-first',
          'warning',
          orderAt,
          `Service ${name} has order start-first and named volume${volumes.length > 1 ? 's' : ''} ${vols}: each deploy ` +
            `runs two copies of it on the same data folder for a while, which can corrupt it (databases, ` +
            `Prometheus, Portainer) or leave the new one failing on the old one's lock. Use order: stop-first.`,
          entity,
        );
      } else if (u.order === 'stop-first' && !stateful) {
        add(
          'single-replica-stop-first',
          'warning',
          orderAt,
          `Service ${name} runs one replica with update order stop-first (Docker's default): every deploy stops the ` +
            `old task before the new one starts, so the service is down for the whole start-up. Fix: ` +
            `${hc && !hc.disabled ? '' : 'add a healthcheck (so that Swarm waits until the new task answers before stopping the old one) and '}` +
            `set deploy.update_config.order: start-first (or run 2 or more replicas).`,
          entity,
        );
      }
    }

    // traefik-labels-placement
    const serviceLabels = toStringMap(svc.labels);
    const misplaced = Object.keys(serviceLabels).filter((k) => k.startsWith('traefik.'));
    if (misplaced.length) {
      add(
        'traefik-labels-placement',
        'warning',
        sp('labels'),
        `Service ${name} has Traefik labels under labels: (${misplaced.slice(0, 3).join(', ')}${misplaced.length > 3 ? ', …' : ''}), ` +
          `which are container labels: in Swarm mode Traefik reads only the service labels. Move them under deploy.labels.`,
        entity,
      );
    }

    // traefik-network
    if (isTrue(info.labels['traefik.enable'])) {
      const label = traefikNetworkLabel(info.labels);
      const names = info.networks.map(netName);
      const shared = names.filter((n) => proxyNets.has(n) && !/^Traefik \(via /.test(proxyNets.get(n) as string));
      const describe = info.networks.map((k) => (netName(k) === k ? k : `${k} (Swarm: ${netName(k)})`)).join(', ');
      const byDefault = names.filter((n) => traefikDefaults.includes(n));
      if (!label && info.networks.length > 1 && !byDefault.length) {
        // Suggest only networks the stack declares (an undeclared one is its own error).
        const ok = names.filter((n, i) => declared(info.networks[i]));
        const hint =
          shared.find((n) => ok.includes(n)) ??
          ok.find((n) => isExternal(networks[info.networks[names.indexOf(n)]])) ??
          ok[0];
        const fixText = hint
          ? `Add deploy.labels traefik.docker.network=${hint} (the Swarm name of the network Traefik shares with it; ` +
            `traefik.swarm.network with Traefik v3's swarm provider)`
          : `Declare its networks, then add deploy.labels traefik.docker.network=<the network Traefik shares with it>`;
        add(
          'traefik-network',
          'error',
          labelAt(name, 'traefik.enable'),
          `Service ${name} is routed by Traefik (traefik.enable=true) and is on ${info.networks.length} networks ` +
            `(${describe}) without a traefik.docker.network label: Traefik may pick a network it is not on, and ` +
            `requests time out or get 502/504. ${fixText}, or give Traefik a default network ` +
            `(--providers.swarm.network / --providers.docker.network, read from every stack of the run)` +
            `${traefikDefaults.length ? `; Traefik's default network (${traefikDefaults.join(', ')}) is not one of its networks` : ''}.`,
          entity,
        );
      } else if (label && !names.includes(label.value)) {
        const byKey = info.networks.indexOf(label.value) >= 0 ? netName(label.value) : undefined;
        add(
          'traefik-network',
          'error',
          labelAt(name, label.key),
          `Service ${name}: ${label.key}=${label.value} names a network the service is not on; its networks are ` +
            `named ${names.join(', ')} in Swarm (a network declared in the stack is prefixed with the stack name ` +
            `unless it has name:; external networks keep their name). ` +
            (byKey ? `Use ${label.key}=${byKey}.` : `Attach the service to that network, or name one of its networks.`),
          entity,
        );
      }
    }

    // stateful-on-proxy-network
    if (stateful && !isTrue(info.labels['traefik.enable']) && !isProxyByName(name, info.image)) {
      const onProxy = info.networks.filter((k) => proxyNets.has(netName(k)));
      if (onProxy.length) {
        const k = onProxy[0];
        const netPath: NodePath = Array.isArray(svc.networks) ? sp('networks') : sp('networks', k);
        add(
          'stateful-on-proxy-network',
          'warning',
          svc.networks === undefined ? entity : netPath,
          `Service ${name} (${stateful}) is on network ${k}${netName(k) !== k ? ` (${netName(k)})` : ''}, which the ` +
            `proxy is on (${proxyNets.get(netName(k))}): the proxy, and everything it exposes, can reach it. Keep ` +
            `databases and caches on an internal network (e.g. backend, with internal: true) shared only with the ` +
            `services that use them.`,
          entity,
        );
      }
    }
  }

  // --- networks -------------------------------------------------------------------------------
  for (const [key, decl] of Object.entries(networks)) {
    if (isExternal(decl)) continue;
    const d = isPlainObject(decl) ? decl : {};
    const driver = String(d.driver ?? 'overlay');
    const opts = isPlainObject(d.driver_opts) ? d.driver_opts : {};
    const mtuRaw = opts['com.docker.network.driver.mtu'];
    const entity: NodePath = ['networks', key];
    const mtuPath: NodePath = ['networks', key, 'driver_opts', 'com.docker.network.driver.mtu'];
    const fix = 'set driver_opts: com.docker.network.driver.mtu: 1450 (or lower)';
    // Why no MTU is only a notice: Docker gives an overlay network 1450 (1500 − 50 of VXLAN); it is
    // too high only on a host whose interface is below 1500, which `deploy` compares (hostMtuFindings).
    const lowHost =
      `Docker gives it MTU 1450, right for hosts whose interface MTU is 1500; on a host below 1500 (some clouds ` +
      `use 1450 or 1400, VPNs less) large requests between nodes hang: then set ` +
      `driver_opts: com.docker.network.driver.mtu to that host MTU − 50`;
    if (driver === 'overlay') {
      if (mtuRaw === undefined || mtuRaw === null || mtuRaw === '') {
        add(
          'overlay-mtu',
          'notice',
          entity,
          `Network ${key} (overlay${d.driver ? '' : ', the default driver in a stack'}) has no ` +
            `com.docker.network.driver.mtu: ${lowHost}.`,
          entity,
        );
      } else {
        const mtu = Number(String(mtuRaw).trim());
        if (!Number.isInteger(mtu) || mtu > DOCKER_OVERLAY_MTU || mtu <= 0) {
          add(
            'overlay-mtu',
            'error',
            mtuPath,
            `Network ${key} (overlay) has com.docker.network.driver.mtu ${String(mtuRaw)}: VXLAN adds 50 bytes to ` +
              `every packet, so above 1450 (host 1500 − 50) large requests between nodes hang. ` +
              `${fix[0].toUpperCase()}${fix.slice(1)}: the host's interface MTU − 50.`,
            entity,
          );
        }
      }
    } else if (driver === 'bridge' && (mtuRaw === undefined || mtuRaw === null || mtuRaw === '')) {
      add(
        'overlay-mtu',
        'notice',
        entity,
        `Network ${key} (bridge) has no com.docker.network.driver.mtu: if the host's interface has an MTU below ` +
          `1500 (many clouds and VPNs), large requests can hang; ${fix} to match it.`,
        entity,
      );
    }
  }
  // The stack's implicit `default` network is an overlay network at Docker's MTU too.
  if (!('default' in networks)) {
    const users = Object.values(infos)
      .filter((i) => i.networks.includes('default'))
      .map((i) => i.name);
    if (users.length) {
      add(
        'overlay-mtu',
        'notice',
        ['services', users[0]],
        `Service${users.length > 1 ? 's' : ''} ${users.join(', ')} ${users.length > 1 ? 'are' : 'is'} on the ` +
          `stack's implicit default network (${stack.name}_default), an overlay network: Docker gives it MTU 1450, ` +
          `right for hosts whose interface MTU is 1500. On a host below 1500, declare it: networks: default: ` +
          `driver_opts: com.docker.network.driver.mtu: <host MTU − 50>.`,
        ['services', users[0]],
      );
    }
  }

  // --- configs and secrets --------------------------------------------------------------------
  for (const [section, kind] of [
    ['configs', 'config'],
    ['secrets', 'secret'],
  ] as const) {
    const entries = merged[section];
    if (!isPlainObject(entries)) continue;
    for (const [key, entry] of Object.entries(entries)) {
      if (!isPlainObject(entry) || isExternal(entry) || typeof entry.file !== 'string' || !entry.file) continue;
      const entity: NodePath = [section, key];
      const abs = path.resolve(baseDir, entry.file);
      let content: Buffer;
      try {
        content = fs.readFileSync(abs);
      } catch {
        add(
          'missing-file',
          'error',
          [section, key, 'file'],
          `The ${kind} ${key} reads file ${entry.file}, which does not exist (looked for ${abs}; Docker resolves it ` +
            `against the folder of the stack's first compose file). Add the file or fix the path.`,
          entity,
        );
        continue;
      }
      // A config from a file without a name of its own is named by its content at deploy (secrets.ts).
      if (section === 'configs' && !entry.name) continue;
      const swarmName = entry.name ? String(entry.name) : `${stack.name}_${key}`;
      const existing = opts.existingObjects?.[swarmName];
      if (existing !== undefined && existing.toLowerCase() !== sha256(content)) {
        add(
          'immutable-object',
          'error',
          entry.name ? [section, key, 'name'] : entity,
          `The ${kind} ${swarmName} already exists on the swarm with other content, and Swarm ${section} are ` +
            `immutable: the deploy would fail ("only updates to Labels are allowed"). Use a versioned name that ` +
            `changes with the content, e.g. name: ${swarmName}_\${${key.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION}.`,
          entity,
        );
      }
    }
  }
  for (const [name, svc] of Object.entries(services)) {
    if (!isPlainObject(svc)) continue;
    for (const e of envFileEntries(svc.env_file)) {
      // required: false → Docker Compose skips a missing file, and the deploy leaves it out (stack.ts).
      if (!e.required) continue;
      const abs = path.resolve(baseDir, e.file);
      if (fs.existsSync(abs)) continue;
      add(
        'missing-file',
        'error',
        e.index !== undefined ? ['services', name, 'env_file', e.index] : ['services', name, 'env_file'],
        `Service ${name}: env_file ${e.file} does not exist (looked for ${abs}; Docker resolves it against the folder ` +
          `of the stack's first compose file). Add the file, fix the path, or make it optional ` +
          `(env_file: [{path: ${e.file}, required: false}]).`,
        ['services', name],
      );
    }
  }

  // A relative bind mount Docker resolves on the host; the deploy ships it (files.ts). Missing here,
  // Swarm would fail the task ("bind source path does not exist") or mount an empty folder.
  for (const r of resolved) {
    for (const b of bindMounts(r.data)) {
      const abs = path.resolve(baseDir, b.source);
      if (fs.existsSync(abs)) continue;
      const { line, col } = positionOf(r.file, b.path);
      add(
        'missing-file',
        'error',
        { file: r.file, line, col },
        `Service ${b.service}: bind mount source ${b.source} does not exist (looked for ${abs}; Docker resolves it ` +
          `against the folder of the stack's first compose file). Add the file or folder (the deploy ships it with ` +
          `the release), or fix the path.`,
        ['services', b.service],
      );
    }
  }

  const order = new Map(files.map((f, i) => [f.path, i]));
  return findings.sort(
    (a, b) =>
      (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) ||
      a.line - b.line ||
      a.col - b.col ||
      a.rule.localeCompare(b.rule),
  );
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/**
 * Emits each finding as a GitHub annotation and returns the counts and a markdown table for the
 * job summary (the caller writes it).
 */
export function reportFindings(findings: Finding[]): {
  errors: number;
  warnings: number;
  notices: number;
  markdown: string;
} {
  let errors = 0;
  let warnings = 0;
  let notices = 0;
  for (const f of findings) {
    const props = { title: f.rule, file: f.file, startLine: f.line, startColumn: f.col };
    const msg = `[${f.stack}${f.service ? `/${f.service}` : ''}] ${f.message}`;
    if (f.severity === 'error') {
      errors++;
      core.error(msg, props);
    } else if (f.severity === 'warning') {
      warnings++;
      core.warning(msg, props);
    } else {
      notices++;
      core.notice(msg, props);
    }
  }
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
  const lines = [
    `Pre-flight checks: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}, ${plural(notices, 'notice')}.`,
    '',
  ];
  if (findings.length) {
    lines.push('| File | Rule | Severity | Stack / service | Message |', '| --- | --- | --- | --- | --- |');
    for (const f of findings) {
      lines.push(
        `| ${cell(`${f.file}:${f.line}:${f.col}`)} | \`${f.rule}\` | ${f.severity} | ${cell(f.stack + (f.service ? ` / ${f.service}` : ''))} | ${cell(f.message)} |`,
      );
    }
    lines.push('');
  }
  return { errors, warnings, notices, markdown: lines.join('\n') };
}
