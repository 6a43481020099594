/** The files a stack references (configs, secrets, env_file, bind mounts) and the upload's rewrites of them. */
import * as path from 'path';
import * as YAML from 'yaml';
import {
  ComposeFile,
  NodePath,
  PARSE_OPTIONS,
  Replacement,
  applyReplacements,
  isPlainObject,
  mapEntries,
  resolveIn,
} from './load';
import { ResolvedCompose } from './resolve';

export interface ReferencedFile {
  /** `env_file` entries carry the service name as `name`. */
  kind: 'config' | 'secret' | 'env_file';
  name: string;
  /** As written, relative to the compose file's folder. */
  file: string;
  /** An env_file entry with `required: false`: a missing file is skipped, as Docker Compose does. */
  optional?: true;
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
  return applyReplacements(text, [...replacements.values()]);
}
