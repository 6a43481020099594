/** Interpolating a stack file like Docker: values, the casts Docker makes after it, and the text to upload. */
import * as YAML from 'yaml';
import { InputError } from '../errors';
import { escapeDollars, interpolateDetailed } from '../interpolate';
import { ComposeFile, NodePath, Replacement, Yaml, applyReplacements, isMergeKey, mapEntries, resolveIn } from './load';

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

/** What interpolating one file gathers while it walks the scalars. */
interface Walk {
  file: ComposeFile;
  env: Record<string, string | undefined>;
  effective: Map<YAML.Scalar, NodePath[]>;
  unset: ResolvedCompose['unset'];
  errors: ResolvedCompose['errors'];
  replacements: Replacement[];
}

/** Line and column in the file of the `offset`-th character's token of a scalar's parsed value. */
function posInScalar(
  file: ComposeFile,
  node: YAML.Scalar,
  raw: string,
  offset: number,
  token: string,
): { line: number; col: number } {
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
}

function visitScalar(w: Walk, node: YAML.Scalar, nodePath: NodePath): void {
  if (typeof node.value !== 'string' || !node.value.includes('$')) return;
  const { file } = w;
  const raw = node.value;
  const r = interpolateDetailed(raw, w.env);
  for (const u of r.unset) {
    const token = u.braced ? `\${${u.name}` : `$${u.name}`;
    w.unset.push({ name: u.name, ...posInScalar(file, node, raw, u.offset, token), path: nodePath });
  }
  for (const e of r.errors) {
    w.errors.push({
      message: e.message,
      ...posInScalar(file, node, raw, e.offset, raw.slice(e.offset, e.offset + 2)),
      path: nodePath,
    });
  }
  const target = r.value !== raw ? castFor(w.effective.get(node) ?? []) : undefined;
  const kind = target?.kind;
  const cast = kind ? castValue(kind, r.value.trim()) : undefined;
  if (target && kind && cast === undefined && !r.unset.length && !r.errors.length) {
    const where = target.path.join('.');
    w.errors.push({
      message:
        `${where}: "${r.value}" is not ` +
        `${kind === 'int' ? 'a whole number' : kind === 'float' ? 'a number' : 'a boolean'} ` +
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
    w.replacements.push({ start, end, text: (cast !== undefined ? String(cast) : JSON.stringify(escaped)) + trailing });
  }
}

function walkNode(w: Walk, node: unknown, nodePath: NodePath): void {
  if (YAML.isMap(node)) {
    for (const pair of node.items) {
      const key = YAML.isScalar(pair.key) ? pair.key.value : pair.key;
      if (isMergeKey(pair.key)) {
        // An inline merge map; aliases are interpolated where their anchor is defined.
        walkNode(w, pair.value, nodePath);
        continue;
      }
      walkNode(w, pair.value, [...nodePath, String(key)]);
    }
  } else if (YAML.isSeq(node)) {
    node.items.forEach((item, i) => walkNode(w, item, [...nodePath, i]));
  } else if (YAML.isPair(node)) {
    walkNode(w, node.value, nodePath);
  } else if (YAML.isScalar(node)) {
    visitScalar(w, node, nodePath);
  }
}

/**
 * Interpolates every scalar value of the file (not the keys, as Docker does), with the position
 * of each unset variable and each error.
 */
export function resolveCompose(file: ComposeFile, env: Record<string, string | undefined>): ResolvedCompose {
  const clone = file.doc.clone() as YAML.Document.Parsed;
  const w: Walk = { file, env, effective: effectivePaths(clone), unset: [], errors: [], replacements: [] };
  walkNode(w, clone.contents, []);
  let data: Yaml;
  try {
    data = clone.toJS({ maxAliasCount: 10_000 }) ?? {};
  } catch (e) {
    throw new InputError(`${file.path}: the YAML cannot be expanded: ${(e as Error).message}`);
  }
  return { file, data, text: applyReplacements(file.text, w.replacements), unset: w.unset, errors: w.errors };
}
