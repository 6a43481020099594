/** Positions in stack files: where a key path is written, through aliases and merge keys. */
import * as YAML from 'yaml';
import { ComposeFile, NodePath, isMergeKey, resolveIn } from './load';

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
