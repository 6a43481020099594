/**
 * Loading Docker stack (compose) files: parse with positions, interpolate like Docker, render the
 * file to upload, and read what the deploy and the checks need (services, update policy,
 * healthchecks, networks, labels, referenced files).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { LineCounter } from 'yaml';
import { ComposeFileError, InputError } from './errors';
import { escapeDollars, interpolateDetailed } from './interpolate';

export interface ComposeFile {
  /** As the user wrote it, for messages and annotations. */
  path: string;
  absPath: string;
  text: string;
  doc: YAML.Document.Parsed;
  lineCounter: LineCounter;
}

export type NodePath = (string | number)[];

/** A mapping as YAML gives it: shapes are checked where each key is read, not declared. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Yaml = any;

export interface ResolvedCompose {
  file: ComposeFile;
  /**
   * Plain JS, interpolated, merge keys resolved. An interpolated value is a string, as in Docker,
   * except where Docker converts it (replicas, ports, healthcheck retries, external, …: see CASTS).
   */
  data: Yaml;
  /** YAML to upload: interpolated, every literal `$` written as `$$` (the host interpolates again). */
  text: string;
  /** `${VAR}`/`$VAR` without default whose variable is unset; `path` is the key path of the value. */
  unset: { name: string; line: number; col: number; path?: NodePath }[];
  /** Invalid interpolation syntax and failed `${VAR:?msg}`. */
  errors: { message: string; line: number; col: number; path?: NodePath }[];
}

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

export interface ReferencedFile {
  /** `env_file` entries carry the service name as `name`. */
  kind: 'config' | 'secret' | 'env_file';
  name: string;
  /** As written, relative to the compose file's folder. */
  file: string;
  /** An env_file entry with `required: false`: a missing file is skipped, as Docker Compose does. */
  optional?: true;
}

const TOP_LEVEL_KEYS = new Set(['version', 'services', 'networks', 'volumes', 'configs', 'secrets']);

/**
 * `0440` is an octal number for Docker's YAML parser (YAML 1.1 style, as in `mode: 0440` of a
 * secret) but a decimal one in YAML 1.2: read it the way Docker does.
 */
const legacyOctal: YAML.ScalarTag = {
  identify: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0,
  default: true,
  tag: 'tag:yaml.org,2002:int',
  format: 'OCT',
  test: /^[-+]?0[0-7]+$/,
  resolve: (str) => parseInt(str, 8),
};

const PARSE_OPTIONS: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions = {
  merge: true,
  uniqueKeys: true,
  prettyErrors: true,
  customTags: (tags) => [legacyOctal, ...tags],
};

/** Reads and parses one stack file; throws InputError for anything Docker would refuse to load. */
export function loadComposeFile(absPath: string, displayPath: string): ComposeFile {
  let text: string;
  try {
    text = fs.readFileSync(absPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`Stack file ${displayPath} not found (looked for ${absPath}).`);
    if (code === 'EISDIR') throw new InputError(`Stack file ${displayPath} is a folder, not a file.`);
    throw new InputError(`Stack file ${displayPath} cannot be read: ${(e as Error).message}`);
  }
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { ...PARSE_OPTIONS, lineCounter });
  const file: ComposeFile = { path: displayPath, absPath, text, doc, lineCounter };

  if (doc.errors.length) {
    const err = doc.errors[0];
    const pos = err.linePos?.[0] ?? lineCounter.linePos(err.pos[0]);
    const reason = err.message.split(' at line ')[0].replace(/\s+$/, '');
    const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more YAML error(s))` : '';
    throw new ComposeFileError('invalid-yaml', file.path, pos.line, pos.col, `invalid YAML: ${reason}${more}.`);
  }
  const top = doc.contents;
  if (!YAML.isMap(top)) {
    const pos = top?.range ? lineCounter.linePos(top.range[0]) : { line: 1, col: 1 };
    throw new ComposeFileError(
      'invalid-yaml',
      file.path,
      pos.line,
      pos.col,
      `the top level of a stack file must be a mapping (services:, networks:, …)${top ? '' : '; the file is empty'}.`,
    );
  }
  for (const pair of top.items) {
    const key = YAML.isScalar(pair.key) ? pair.key.value : pair.key;
    if (typeof key === 'string' && (TOP_LEVEL_KEYS.has(key) || key.startsWith('x-'))) continue;
    const node = pair.key as YAML.Node | null;
    const pos = node?.range ? lineCounter.linePos(node.range[0]) : { line: 1, col: 1 };
    throw new ComposeFileError(
      'unknown-key',
      file.path,
      pos.line,
      pos.col,
      `unknown top-level key "${String(key)}": a stack file has only version, services, networks, volumes, configs, secrets and x-* extensions (docker stack deploy refuses anything else).`,
    );
  }
  return file;
}

/** A `<<` merge key (the yaml package parses it as a Symbol with `merge: true`). */
function isMergeKey(key: unknown): boolean {
  return YAML.isScalar(key) && (key.value === '<<' || (typeof key.value === 'symbol' && key.source === '<<'));
}

function isPlainObject(v: unknown): v is Record<string, Yaml> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Where docker/cli converts an interpolated string to another type (its `interpolateTypeCastMapping`):
 * it does so only for a value that interpolation changed, so the file we upload must already carry
 * the converted value (a quoted "3" for `replicas` would be refused as "must be a integer").
 * `*` is any key, `[]` any list item.
 */
type CastKind = 'int' | 'float' | 'bool';
const CASTS: [string[], CastKind][] = [
  [['services', '*', 'configs', '[]', 'mode'], 'int'],
  [['services', '*', 'secrets', '[]', 'mode'], 'int'],
  [['services', '*', 'healthcheck', 'retries'], 'int'],
  [['services', '*', 'healthcheck', 'disable'], 'bool'],
  [['services', '*', 'deploy', 'replicas'], 'int'],
  [['services', '*', 'deploy', 'update_config', 'parallelism'], 'int'],
  [['services', '*', 'deploy', 'update_config', 'max_failure_ratio'], 'float'],
  [['services', '*', 'deploy', 'rollback_config', 'parallelism'], 'int'],
  [['services', '*', 'deploy', 'rollback_config', 'max_failure_ratio'], 'float'],
  [['services', '*', 'deploy', 'restart_policy', 'max_attempts'], 'int'],
  [['services', '*', 'deploy', 'placement', 'max_replicas_per_node'], 'int'],
  [['services', '*', 'ports', '[]', 'target'], 'int'],
  [['services', '*', 'ports', '[]', 'published'], 'int'],
  [['services', '*', 'ulimits', '*'], 'int'],
  [['services', '*', 'ulimits', '*', 'hard'], 'int'],
  [['services', '*', 'ulimits', '*', 'soft'], 'int'],
  [['services', '*', 'privileged'], 'bool'],
  [['services', '*', 'read_only'], 'bool'],
  [['services', '*', 'stdin_open'], 'bool'],
  [['services', '*', 'tty'], 'bool'],
  [['services', '*', 'volumes', '[]', 'read_only'], 'bool'],
  [['services', '*', 'volumes', '[]', 'volume', 'nocopy'], 'bool'],
  [['networks', '*', 'external'], 'bool'],
  [['networks', '*', 'internal'], 'bool'],
  [['networks', '*', 'attachable'], 'bool'],
  [['volumes', '*', 'external'], 'bool'],
  [['secrets', '*', 'external'], 'bool'],
  [['configs', '*', 'external'], 'bool'],
];

function castFor(paths: NodePath[]): { kind: CastKind; path: NodePath } | undefined {
  for (const p of paths) {
    for (const [pattern, kind] of CASTS) {
      if (pattern.length !== p.length) continue;
      const ok = pattern.every((seg, i) =>
        seg === '[]' ? typeof p[i] === 'number' : seg === '*' ? typeof p[i] === 'string' : seg === p[i],
      );
      if (ok) return { kind, path: p };
    }
  }
  return undefined;
}

/** Docker's casts (strconv.Atoi, ParseFloat, YAML 1.1 booleans); undefined when Docker would refuse. */
function castValue(kind: CastKind, v: string): number | boolean | undefined {
  if (kind === 'int') return /^[+-]?[0-9]+$/.test(v) ? parseInt(v, 10) : undefined;
  if (kind === 'float') return /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(v) ? Number(v) : undefined;
  const b = v.toLowerCase();
  if (['y', 'yes', 'true', 'on'].includes(b)) return true;
  if (['n', 'no', 'false', 'off'].includes(b)) return false;
  return undefined;
}

/**
 * The entries of a map as Docker sees them: its own keys, then those of its merge keys (`<<`, the
 * first source winning, recursively), never over a key already there.
 */
function mapEntries(doc: YAML.Document, map: YAML.YAMLMap, seenMaps = new Set<unknown>()): [string, unknown][] {
  if (seenMaps.has(map)) return [];
  seenMaps.add(map);
  const out: [string, unknown][] = [];
  const seen = new Set<string>();
  const sources: unknown[] = [];
  for (const pair of map.items) {
    if (isMergeKey(pair.key)) {
      const v = resolveIn(doc, pair.value);
      if (YAML.isSeq(v)) sources.push(...v.items);
      else sources.push(v);
      continue;
    }
    const k = String(YAML.isScalar(pair.key) ? pair.key.value : pair.key);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push([k, pair.value]);
  }
  for (const src of sources) {
    const v = resolveIn(doc, src);
    if (!YAML.isMap(v)) continue;
    for (const [k, value] of mapEntries(doc, v, seenMaps)) {
      if (seen.has(k)) continue;
      seen.add(k);
      out.push([k, value]);
    }
  }
  return out;
}

function resolveIn(doc: YAML.Document, node: unknown): unknown {
  let n = node;
  for (let guard = 0; YAML.isAlias(n) && guard < 100; guard++) n = n.resolve(doc);
  return n;
}

/**
 * Every path at which each scalar of the document ends up once aliases and merge keys are resolved
 * (an anchored value can be used by several services).
 */
function effectivePaths(doc: YAML.Document): Map<YAML.Scalar, NodePath[]> {
  const out = new Map<YAML.Scalar, NodePath[]>();
  let budget = 200_000; // alias bombs stop here; a real stack is far below
  const walk = (node: unknown, p: NodePath, depth: number): void => {
    if (depth > 64 || --budget < 0) return;
    const n = resolveIn(doc, node);
    if (YAML.isScalar(n)) {
      const list = out.get(n) ?? [];
      list.push(p);
      out.set(n, list);
    } else if (YAML.isSeq(n)) {
      n.items.forEach((item, i) => walk(item, [...p, i], depth + 1));
    } else if (YAML.isMap(n)) {
      for (const [k, v] of mapEntries(doc, n)) walk(v, [...p, k], depth + 1);
    }
  };
  walk(doc.contents, [], 0);
  return out;
}

interface Replacement {
  start: number;
  end: number;
  text: string;
}

/**
 * Interpolates every scalar value of the file (not the keys, as Docker does), with the position
 * of each unset variable and each error.
 */
export function resolveCompose(file: ComposeFile, env: Record<string, string | undefined>): ResolvedCompose {
  const clone = file.doc.clone() as YAML.Document.Parsed;
  const effective = effectivePaths(clone);
  const unset: ResolvedCompose['unset'] = [];
  const errors: ResolvedCompose['errors'] = [];
  const replacements: Replacement[] = [];

  const posInScalar = (
    node: YAML.Scalar,
    raw: string,
    offset: number,
    token: string,
  ): { line: number; col: number } => {
    const [start, end] = node.range as [number, number, number];
    const source = file.text.slice(start, end);
    // Which occurrence of the token this is, counted in the parsed value.
    let nth = 0;
    for (let i = raw.indexOf(token); i >= 0 && i < offset; i = raw.indexOf(token, i + 1)) nth++;
    let at = -1;
    for (let k = 0, i = source.indexOf(token); i >= 0; i = source.indexOf(token, i + 1), k++) {
      if (k === nth) {
        at = i;
        break;
      }
    }
    return file.lineCounter.linePos(at >= 0 ? start + at : start);
  };

  const visitScalar = (node: YAML.Scalar, nodePath: NodePath): void => {
    if (typeof node.value !== 'string' || !node.value.includes('$')) return;
    const raw = node.value;
    const r = interpolateDetailed(raw, env);
    for (const u of r.unset) {
      const token = u.braced ? `\${${u.name}` : `$${u.name}`;
      unset.push({ name: u.name, ...posInScalar(node, raw, u.offset, token), path: nodePath });
    }
    for (const e of r.errors) {
      errors.push({
        message: e.message,
        ...posInScalar(node, raw, e.offset, raw.slice(e.offset, e.offset + 2)),
        path: nodePath,
      });
    }
    const target = r.value !== raw ? castFor(effective.get(node) ?? []) : undefined;
    const kind = target?.kind;
    const cast = kind ? castValue(kind, r.value.trim()) : undefined;
    if (target && kind && cast === undefined && !r.unset.length && !r.errors.length) {
      const where = target.path.join('.');
      errors.push({
        message:
          `${where}: "${r.value}" is not ${kind === 'int' ? 'a whole number' : kind === 'float' ? 'a number' : 'a boolean'} ` +
          `(Docker converts this value after interpolation and refuses it)`,
        ...file.lineCounter.linePos((node.range as [number, number, number])[0]),
        path: nodePath,
      });
    }
    node.value = cast ?? r.value;
    const escaped = escapeDollars(r.value);
    if ((cast !== undefined || escaped !== raw) && node.range) {
      const [start, end] = node.range;
      const source = file.text.slice(start, end);
      const trailing = /\n$/.test(source) ? '\n' : '';
      replacements.push({ start, end, text: (cast !== undefined ? String(cast) : JSON.stringify(escaped)) + trailing });
    }
  };

  const walk = (node: unknown, nodePath: NodePath): void => {
    if (YAML.isMap(node)) {
      for (const pair of node.items) {
        const key = YAML.isScalar(pair.key) ? pair.key.value : pair.key;
        if (isMergeKey(pair.key)) {
          // An inline merge map; aliases are interpolated where their anchor is defined.
          walk(pair.value, nodePath);
          continue;
        }
        walk(pair.value, [...nodePath, String(key)]);
      }
    } else if (YAML.isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...nodePath, i]));
    } else if (YAML.isPair(node)) {
      walk(node.value, nodePath);
    } else if (YAML.isScalar(node)) {
      visitScalar(node, nodePath);
    }
  };
  walk(clone.contents, []);

  let data: Yaml;
  try {
    data = clone.toJS({ maxAliasCount: 10_000 }) ?? {};
  } catch (e) {
    throw new InputError(`${file.path}: the YAML cannot be expanded: ${(e as Error).message}`);
  }

  let text = file.text;
  for (const r of replacements.sort((a, b) => b.start - a.start)) {
    text = text.slice(0, r.start) + r.text + text.slice(r.end);
  }
  return { file, data, text, unset, errors };
}

// ---------------------------------------------------------------------------------------------
// Positions

function nodePos(file: ComposeFile, node: YAML.Node | null | undefined): { line: number; col: number } | undefined {
  if (!node || !node.range) return undefined;
  return file.lineCounter.linePos(node.range[0]);
}

function resolveAlias(file: ComposeFile, node: unknown): unknown {
  return resolveIn(file.doc, node);
}

/** The pair of `map` whose key is `key`, looking into merge keys (`<<`) after the direct keys. */
function findPair(file: ComposeFile, map: YAML.YAMLMap, key: string, seen = new Set<unknown>()): YAML.Pair | undefined {
  if (seen.has(map)) return undefined;
  seen.add(map);
  for (const pair of map.items) {
    const k = YAML.isScalar(pair.key) ? pair.key.value : pair.key;
    if (!isMergeKey(pair.key) && String(k) === key) return pair as YAML.Pair;
  }
  for (const pair of map.items) {
    if (!isMergeKey(pair.key)) continue;
    const v = resolveAlias(file, pair.value);
    const sources = YAML.isSeq(v) ? v.items.map((i) => resolveAlias(file, i)) : [v];
    for (const src of sources) {
      if (!YAML.isMap(src)) continue;
      const found = findPair(file, src, key, seen);
      if (found) return found;
    }
  }
  return undefined;
}

interface Located {
  /** How many segments of the path exist. */
  depth: number;
  line: number;
  col: number;
}

function locate(file: ComposeFile, nodePath: NodePath): Located {
  let node: unknown = file.doc.contents;
  let best: Located = { depth: 0, ...(nodePos(file, node as YAML.Node) ?? { line: 1, col: 1 }) };
  for (let i = 0; i < nodePath.length; i++) {
    node = resolveAlias(file, node);
    const seg = nodePath[i];
    if (YAML.isMap(node)) {
      const pair = findPair(file, node, String(seg));
      if (!pair) break;
      const pos = nodePos(file, pair.key as YAML.Node) ?? nodePos(file, pair.value as YAML.Node);
      if (pos) best = { depth: i + 1, ...pos };
      node = pair.value;
    } else if (YAML.isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      const pos = nodePos(file, item as YAML.Node);
      if (pos) best = { depth: i + 1, ...pos };
      node = item;
    } else {
      break;
    }
  }
  return best;
}

/**
 * 1-based line/col of the node at `nodePath` (the key, for a map entry), looking through aliases
 * and merge keys; falls back to the nearest existing parent.
 */
export function positionOf(file: ComposeFile, nodePath: NodePath): { line: number; col: number } {
  const { line, col } = locate(file, nodePath);
  return { line, col };
}

/** Whether the full path exists in the file (through aliases and merge keys). */
export function hasPath(file: ComposeFile, nodePath: NodePath): boolean {
  return locate(file, nodePath).depth === nodePath.length;
}

/**
 * Of several files for one stack, the one that defines `nodePath` (the last one, as later files
 * override), else the one with the deepest part of it, and the position there.
 */
export function locateIn(files: ComposeFile[], nodePath: NodePath): { file: ComposeFile; line: number; col: number } {
  let best: { file: ComposeFile; loc: Located } | undefined;
  for (let i = files.length - 1; i >= 0; i--) {
    const loc = locate(files[i], nodePath);
    if (!best || loc.depth > best.loc.depth) best = { file: files[i], loc };
    if (loc.depth === nodePath.length) break;
  }
  if (!best) throw new Error('locateIn: no file');
  return { file: best.file, line: best.loc.line, col: best.loc.col };
}

// ---------------------------------------------------------------------------------------------
// Merging several files and reading services

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

/**
 * Files the stack needs on the host: top-level `configs:`/`secrets:` entries with `file:` and the
 * services' `env_file:` entries, as written (relative to the compose file's folder).
 */
export function referencedFiles(resolved: ResolvedCompose): ReferencedFile[] {
  const out: ReferencedFile[] = [];
  const data = isPlainObject(resolved.data) ? resolved.data : {};
  for (const [section, kind] of [
    ['configs', 'config'],
    ['secrets', 'secret'],
  ] as const) {
    const entries = data[section];
    if (!isPlainObject(entries)) continue;
    for (const [name, entry] of Object.entries(entries)) {
      if (isPlainObject(entry) && typeof entry.file === 'string' && entry.file)
        out.push({ kind, name, file: entry.file });
    }
  }
  const services = isPlainObject(data.services) ? data.services : {};
  for (const [name, svc] of Object.entries(services)) {
    if (!isPlainObject(svc)) continue;
    for (const e of envFileEntries(svc.env_file))
      out.push({ kind: 'env_file', name, file: e.file, ...(e.required ? {} : { optional: true as const }) });
  }
  return out;
}

/** Absolute path of a file referenced by a compose file. */
export function referencedPath(file: ComposeFile, ref: string): string {
  return path.resolve(path.dirname(file.absPath), ref);
}

/** A service's `env_file:`: a string, a list of strings, or (long syntax) `{path, required}` items. */
export function envFileEntries(v: unknown): { file: string; required: boolean; index?: number }[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  const out: { file: string; required: boolean; index?: number }[] = [];
  list.forEach((item: unknown, i: number) => {
    const file = isPlainObject(item) ? item.path : item;
    if (typeof file !== 'string' || !file) return;
    const required = !(
      isPlainObject(item) &&
      (item.required === false || String(item.required).toLowerCase() === 'false')
    );
    out.push({ file, required, ...(Array.isArray(v) ? { index: i } : {}) });
  });
  return out;
}

/**
 * The stack file text with every long-syntax `env_file:` list written in the short syntax that
 * docker stack deploy knows ("env_file.0 must be a string" otherwise), leaving out the optional
 * (`required: false`) files that `exists` says are missing, as Docker Compose skips them.
 */
export function shortEnvFiles(text: string, exists: (file: string) => boolean): string {
  const doc = YAML.parseDocument(text, PARSE_OPTIONS);
  const services = resolveIn(doc, doc.get('services', true));
  if (!YAML.isMap(services)) return text;
  // Keyed by position: a list an anchor brings to several services is rewritten once, where it is written.
  const replacements = new Map<number, Replacement>();
  for (const [, svcNode] of mapEntries(doc, services)) {
    const svc = resolveIn(doc, svcNode);
    if (!YAML.isMap(svc)) continue;
    const node = resolveIn(doc, mapEntries(doc, svc).find(([k]) => k === 'env_file')?.[1]);
    if (!YAML.isSeq(node) || !node.range || !node.items.some((i) => YAML.isMap(resolveIn(doc, i)))) continue;
    const keep = envFileEntries(node.toJS(doc))
      .filter((e) => e.required || exists(e.file))
      .map((e) => e.file);
    // A block list's range can take the line break after it: keep it.
    const trailing = /\n$/.test(text.slice(node.range[0], node.range[1])) ? '\n' : '';
    replacements.set(node.range[0], {
      start: node.range[0],
      end: node.range[1],
      text: JSON.stringify(keep) + trailing,
    });
  }
  return applyReplacements(text, [...replacements.values()]);
}

/** `text` with each replacement made, the last first so that earlier offsets hold. */
function applyReplacements(text: string, replacements: Replacement[]): string {
  for (const r of [...replacements].sort((a, b) => b.start - a.start))
    text = text.slice(0, r.start) + r.text + text.slice(r.end);
  return text;
}

/** A bind mount whose source is relative to the stack's folder: Docker resolves it on the host. */
export interface BindMount {
  service: string;
  /** Index in the service's `volumes:` list. */
  index: number;
  /** The source as written (interpolated), e.g. `./config/traefik.yml`. */
  source: string;
  /** Key path of the source in the file: the list item (short syntax) or its `source` (long syntax). */
  path: NodePath;
}

/** A source Docker reads as a path relative to the compose folder (not absolute, not `~`). */
function relativeSource(source: string): boolean {
  return (
    !!source &&
    !source.startsWith('/') &&
    !source.startsWith('~') &&
    !/^[A-Za-z]:[\\/]/.test(source) &&
    !source.startsWith('\\\\')
  );
}

/**
 * The relative bind mounts of one file's services, read the way docker/cli does: a short-syntax
 * `SOURCE:TARGET[:MODE]` whose source starts with `.` is a bind (any other source names a volume),
 * a long-syntax item with `type: bind`. Absolute and `~` sources are the host's own paths: left alone.
 */
export function bindMounts(data: unknown): BindMount[] {
  const out: BindMount[] = [];
  const services = isPlainObject(data) && isPlainObject(data.services) ? data.services : {};
  for (const [service, svc] of Object.entries(services)) {
    if (!isPlainObject(svc) || !Array.isArray(svc.volumes)) continue;
    svc.volumes.forEach((v: unknown, index: number) => {
      if (typeof v === 'string') {
        const colon = v.indexOf(':');
        const source = colon > 0 ? v.slice(0, colon) : '';
        if (source.startsWith('.')) out.push({ service, index, source, path: ['services', service, 'volumes', index] });
      } else if (isPlainObject(v) && v.type === 'bind' && typeof v.source === 'string' && relativeSource(v.source)) {
        out.push({ service, index, source: v.source, path: ['services', service, 'volumes', index, 'source'] });
      }
    });
  }
  return out;
}

/**
 * The stack file text with the source of every relative bind mount replaced by `rewrite(source)`
 * (undefined: left as written). `text` is the interpolated text to upload, where a literal `$` is
 * written `$$`: sources are handed over unescaped.
 */
export function rewriteBindSources(text: string, rewrite: (source: string) => string | undefined): string {
  const doc = YAML.parseDocument(text, PARSE_OPTIONS);
  const services = resolveIn(doc, doc.get('services', true));
  if (!YAML.isMap(services)) return text;
  const replacements = new Map<number, Replacement>();
  const unescape = (s: string) => s.replace(/\$\$/g, '$');
  for (const [, svcNode] of mapEntries(doc, services)) {
    const svc = resolveIn(doc, svcNode);
    if (!YAML.isMap(svc)) continue;
    const volumes = resolveIn(doc, mapEntries(doc, svc).find(([k]) => k === 'volumes')?.[1]);
    if (!YAML.isSeq(volumes)) continue;
    for (const itemNode of volumes.items) {
      const item = resolveIn(doc, itemNode);
      let node: YAML.Scalar | undefined;
      let source = '';
      let rest = '';
      if (YAML.isScalar(item) && typeof item.value === 'string') {
        const colon = item.value.indexOf(':');
        if (colon <= 0 || !item.value.startsWith('.')) continue;
        node = item;
        source = item.value.slice(0, colon);
        rest = item.value.slice(colon);
      } else if (YAML.isMap(item)) {
        const entries = mapEntries(doc, item);
        const type = resolveIn(doc, entries.find(([k]) => k === 'type')?.[1]);
        const src = resolveIn(doc, entries.find(([k]) => k === 'source')?.[1]);
        if (
          !YAML.isScalar(type) ||
          type.value !== 'bind' ||
          !YAML.isScalar(src) ||
          typeof src.value !== 'string' ||
          !relativeSource(src.value)
        )
          continue;
        node = src;
        source = src.value;
      }
      if (!node?.range) continue;
      const next = rewrite(unescape(source));
      if (next === undefined) continue;
      // The new source is the action's own path: no `$` to escape.
      replacements.set(node.range[0], { start: node.range[0], end: node.range[1], text: JSON.stringify(next + rest) });
    }
  }
  for (const r of [...replacements.values()].sort((a, b) => b.start - a.start))
    text = text.slice(0, r.start) + r.text + text.slice(r.end);
  return text;
}
