/**
 * Reading one Docker stack (compose) file: parse with positions, refuse what Docker would not load,
 * and the YAML node helpers the other compose modules share (merge keys, aliases, replacements).
 */
import * as fs from 'fs';
import * as YAML from 'yaml';
import { LineCounter } from 'yaml';
import { ComposeFileError, InputError } from '../errors';

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

export const PARSE_OPTIONS: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions = {
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
  // Where a node starts, for a refusal that points at it.
  const refuse = (
    rule: ComposeFileError['rule'],
    node: YAML.Node | null | undefined,
    reason: string,
  ): ComposeFileError => {
    const pos = node?.range ? lineCounter.linePos(node.range[0]) : { line: 1, col: 1 };
    return new ComposeFileError(rule, file.path, pos.line, pos.col, reason);
  };
  if (!YAML.isMap(top)) {
    const empty = top ? '' : '; the file is empty';
    throw refuse(
      'invalid-yaml',
      top,
      `the top level of a stack file must be a mapping (services:, networks:, …)${empty}.`,
    );
  }
  for (const pair of top.items) {
    const key = YAML.isScalar(pair.key) ? pair.key.value : pair.key;
    if (typeof key === 'string' && (TOP_LEVEL_KEYS.has(key) || key.startsWith('x-'))) continue;
    throw refuse(
      'unknown-key',
      pair.key as YAML.Node | null,
      `unknown top-level key "${String(key)}": a stack file has only version, services, networks, volumes, ` +
        `configs, secrets and x-* extensions (docker stack deploy refuses anything else).`,
    );
  }
  return file;
}

/** A `<<` merge key (the yaml package parses it as a Symbol with `merge: true`). */
export function isMergeKey(key: unknown): boolean {
  return YAML.isScalar(key) && (key.value === '<<' || (typeof key.value === 'symbol' && key.source === '<<'));
}

export function isPlainObject(v: unknown): v is Record<string, Yaml> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An `external:` network, volume, config or secret: `true`, `"true"` or `{name: …}` (old form). */
export function isExternal(decl: unknown): boolean {
  if (!isPlainObject(decl)) return false;
  const ext = decl.external;
  return isPlainObject(ext) || ext === true || String(ext).toLowerCase() === 'true';
}

/**
 * The entries of a map as Docker sees them: its own keys, then those of its merge keys (`<<`, the
 * first source winning, recursively), never over a key already there.
 */
export function mapEntries(doc: YAML.Document, map: YAML.YAMLMap, seenMaps = new Set<unknown>()): [string, unknown][] {
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

export function resolveIn(doc: YAML.Document, node: unknown): unknown {
  let n = node;
  for (let guard = 0; YAML.isAlias(n) && guard < 100; guard++) n = n.resolve(doc);
  return n;
}

export interface Replacement {
  start: number;
  end: number;
  text: string;
}

/** `text` with each replacement made, the last first so that earlier offsets hold. */
export function applyReplacements(text: string, replacements: Replacement[]): string {
  for (const r of [...replacements].sort((a, b) => b.start - a.start))
    text = text.slice(0, r.start) + r.text + text.slice(r.end);
  return text;
}
