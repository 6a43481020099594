// A small, strict stand-in for the GitHub Actions runner, for tests of the
// reusable workflows:
//
// - the expression language (`${{ }}`): literals, contexts, `!`, `&&`, `||`,
//   `==`, `!=`, `<`, `<=`, `>`, `>=`, `( )`, `[ ]`, and the functions
//   success, failure, always, cancelled, startsWith, endsWith, contains,
//   format, fromJSON, toJSON, with GitHub's coercions (`||` and `&&` return an
//   operand, `==` folds case and compares mixed types as numbers). It is
//   strict where GitHub is lenient: an unknown context, an unknown property
//   (an undeclared input, output or secret, a step that has not run, a job
//   that is not in `needs`), an unknown function or an object interpolated
//   into a string throws, so a test cannot pass on a silently empty value;
// - job `if:` (an implicit `success() &&` unless a status function is used);
// - a runner for one call of a reusable workflow: its `workflow_call` inputs
//   and secrets checked and defaulted, the jobs in `needs` order, each job's
//   `if:`, its steps (this action's steps through runAction, `run:` steps
//   with bash and their `env:`, checkout/setup-node skipped: the workspace is
//   already there), step outputs, job outputs and the workflow's outputs.
//   Keys it does not model (matrix, services, continue-on-error, ...) throw.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { ActionRun, RunActionOptions, parseFileCommands, runAction as realRunAction } from './action';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const OWN_ACTION = 'glasck/deploy-action';

// ================================================================ expressions

export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

/** An expression this evaluator does not support, or that refers to something undefined. */
export class ExpressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionError';
  }
}

/** The status functions' answers where they are allowed (`if:`). */
export interface Status {
  success: boolean;
  failure: boolean;
  cancelled: boolean;
}

/** Named contexts (`inputs`, `secrets`, `github`, `steps`, `needs`, `jobs`, `vars`, ...): only these exist. */
export type Contexts = Record<string, Value | undefined>;

export interface EvalOptions {
  /** Allows the status functions; without it they throw (they only belong in `if:`). */
  status?: Status;
  /** Names the expression's place in error messages. */
  where?: string;
}

type Token = { t: 'num'; v: number } | { t: 'str'; v: string } | { t: 'id'; v: string } | { t: 'op'; v: string };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new ExpressionError(`unterminated string in: ${src}`);
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += src[i++];
      }
      out.push({ t: 'str', v: s });
      continue;
    }
    const num = /^(?:0x[0-9a-fA-F]+|-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/.exec(src.slice(i));
    if (num && (c !== '-' || !out.length || out[out.length - 1].t === 'op')) {
      out.push({ t: 'num', v: Number(num[0]) });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i));
    if (id) {
      out.push({ t: 'id', v: id[0] });
      i += id[0].length;
      continue;
    }
    const op =
      ['==', '!=', '<=', '>=', '&&', '||'].find((o) => src.startsWith(o, i)) ??
      (/[!<>()[\].,*]/.test(c) ? c : undefined);
    if (!op) throw new ExpressionError(`unsupported character ${JSON.stringify(c)} in: ${src}`);
    out.push({ t: 'op', v: op });
    i += op.length;
  }
  return out;
}

type Node =
  | { k: 'lit'; v: Value }
  | { k: 'ctx'; name: string }
  | { k: 'prop'; obj: Node; name: string }
  | { k: 'index'; obj: Node; index: Node }
  | { k: 'filter'; obj: Node }
  | { k: 'call'; fn: string; args: Node[] }
  | { k: 'not'; x: Node }
  | { k: 'bin'; op: string; l: Node; r: Node };

/** Parses the text between `${{` and `}}`. */
export function parseExpression(src: string): Node {
  const toks = tokenize(src);
  let p = 0;
  const peek = (v?: string): string | undefined => {
    const tok = toks[p];
    return tok && tok.t === 'op' && (v === undefined || tok.v === v) ? tok.v : undefined;
  };
  const expect = (v: string) => {
    if (peek(v) === undefined) throw new ExpressionError(`expected "${v}" at token ${p + 1} of: ${src}`);
    p++;
  };
  const binary = (ops: string[], next: () => Node) => (): Node => {
    let l = next();
    for (let op = peek(); op !== undefined && ops.includes(op); op = peek()) {
      p++;
      l = { k: 'bin', op, l, r: next() };
    }
    return l;
  };
  const primary = (): Node => {
    const tok = toks[p++];
    if (!tok) throw new ExpressionError(`unexpected end of: ${src}`);
    if (tok.t === 'num' || tok.t === 'str') return { k: 'lit', v: tok.v };
    if (tok.t === 'op') {
      if (tok.v !== '(') throw new ExpressionError(`unexpected "${tok.v}" in: ${src}`);
      const inner = or();
      expect(')');
      return inner;
    }
    if (tok.v === 'true' || tok.v === 'false') return { k: 'lit', v: tok.v === 'true' };
    if (tok.v === 'null') return { k: 'lit', v: null };
    if (peek('(')) {
      p++;
      const args: Node[] = [];
      if (!peek(')')) {
        args.push(or());
        while (peek(',')) {
          p++;
          args.push(or());
        }
      }
      expect(')');
      return { k: 'call', fn: tok.v, args };
    }
    return { k: 'ctx', name: tok.v };
  };
  const postfix = (): Node => {
    let n = primary();
    for (;;) {
      if (peek('.')) {
        p++;
        // An object filter: `labels.*.name` is the `name` of every element.
        if (peek('*')) {
          p++;
          n = { k: 'filter', obj: n };
          continue;
        }
        const tok = toks[p++];
        if (!tok || tok.t !== 'id') throw new ExpressionError(`expected a property name or * after "." in: ${src}`);
        n = { k: 'prop', obj: n, name: tok.v };
      } else if (peek('[')) {
        p++;
        const index = or();
        expect(']');
        n = { k: 'index', obj: n, index };
      } else return n;
    }
  };
  const unary = (): Node => {
    if (peek('!')) {
      p++;
      return { k: 'not', x: unary() };
    }
    return postfix();
  };
  const cmp = binary(['<', '<=', '>', '>='], unary);
  const eq = binary(['==', '!='], cmp);
  const and = binary(['&&'], eq);
  const or = binary(['||'], and);
  const ast = or();
  if (p !== toks.length)
    throw new ExpressionError(`unexpected ${JSON.stringify((toks[p] as { v: unknown }).v)} in: ${src}`);
  return ast;
}

const STATUS_FUNCTIONS = ['success', 'failure', 'always', 'cancelled'];

function usesStatus(n: Node): boolean {
  switch (n.k) {
    case 'call':
      return STATUS_FUNCTIONS.includes(n.fn.toLowerCase()) || n.args.some(usesStatus);
    case 'prop':
    case 'filter':
      return usesStatus(n.obj);
    case 'index':
      return usesStatus(n.obj) || usesStatus(n.index);
    case 'not':
      return usesStatus(n.x);
    case 'bin':
      return usesStatus(n.l) || usesStatus(n.r);
    default:
      return false;
  }
}

/** GitHub's falsy values: null, false, 0, NaN and ''. */
export function truthy(v: Value): boolean {
  return !(v === null || v === false || v === '' || (typeof v === 'number' && (v === 0 || Number.isNaN(v))));
}

function kind(v: Value): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function toNumber(v: Value): number {
  if (v === null) return 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '') return 0;
    return /^(?:0x[0-9a-fA-F]+|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/.test(s) ? Number(s) : NaN;
  }
  return NaN;
}

function looseEqual(a: Value, b: Value): boolean {
  if (kind(a) !== kind(b)) return toNumber(a) === toNumber(b);
  if (typeof a === 'string') return a.toLowerCase() === (b as string).toLowerCase();
  return a === b;
}

function compare(a: Value, b: Value): number {
  if (typeof a === 'string' && typeof b === 'string') {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const x = toNumber(a);
  const y = toNumber(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return NaN;
  return x - y;
}

/** A value as GitHub writes it into a string; an object or array throws (GitHub would write "Object"/"Array"). */
export function toStr(v: Value, where = 'expression'): string {
  if (v === null) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Object.is(v, -0) ? '0' : String(v);
  if (typeof v === 'string') return v;
  throw new ExpressionError(
    `${where}: an ${kind(v)} cannot be written as a string (${JSON.stringify(v).slice(0, 80)})`,
  );
}

function findKey(obj: object, key: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(obj, key)) return key;
  const lower = key.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

/** `a.b['c']` chains rooted at a context, as a path; undefined for anything computed. */
function contextPath(n: Node): string[] | undefined {
  if (n.k === 'ctx') return [n.name];
  if (n.k === 'prop') {
    const base = contextPath(n.obj);
    return base && [...base, n.name];
  }
  if (n.k === 'index' && n.index.k === 'lit' && typeof n.index.v === 'string') {
    const base = contextPath(n.obj);
    return base && [...base, n.index.v];
  }
  return undefined;
}

/** Strict lookup: every segment must exist (case-insensitively, as on GitHub). */
function resolve(contexts: Contexts, pathParts: string[], where: string): Value {
  const rootKey = findKey(contexts, pathParts[0]);
  if (rootKey === undefined || contexts[rootKey] === undefined) {
    const known = Object.keys(contexts).filter((k) => contexts[k] !== undefined);
    throw new ExpressionError(
      `${where}: context \`${pathParts[0]}\` is not supported here (known: ${known.join(', ') || 'none'})`,
    );
  }
  let cur = contexts[rootKey] as Value;
  for (let i = 1; i < pathParts.length; i++) {
    const so = pathParts.slice(0, i).join('.');
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) {
      throw new ExpressionError(`${where}: \`${so}\` is a ${kind(cur)}, it has no property \`${pathParts[i]}\``);
    }
    const key = findKey(cur, pathParts[i]);
    if (key === undefined) {
      const known = Object.keys(cur);
      throw new ExpressionError(
        `${where}: \`${so}.${pathParts[i]}\` is not defined (${so} has: ${known.join(', ') || 'nothing'})`,
      );
    }
    cur = cur[key];
  }
  return cur;
}

function loose(obj: Value, key: Value): Value {
  if (Array.isArray(obj)) {
    const i = toNumber(key);
    return Number.isInteger(i) && i >= 0 && i < obj.length ? obj[i] : null;
  }
  if (obj !== null && typeof obj === 'object') {
    const k = findKey(obj, toStr(key));
    return k === undefined ? null : obj[k];
  }
  return null;
}

function format(fmt: string, args: Value[], where: string): string {
  return fmt.replace(/\{\{|\}\}|\{(\d+)\}/g, (m, i: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const n = Number(i);
    if (n >= args.length) throw new ExpressionError(`${where}: format() has no argument {${n}}`);
    return toStr(args[n], where);
  });
}

function call(fn: string, args: Value[], opts: EvalOptions, where: string): Value {
  const name = fn.toLowerCase();
  const arity = (n: number, max = n) => {
    if (args.length < n || args.length > max)
      throw new ExpressionError(
        `${where}: ${fn}() takes ${n === max ? n : `${n} to ${max}`} argument(s), got ${args.length}`,
      );
  };
  if (STATUS_FUNCTIONS.includes(name)) {
    arity(0);
    if (!opts.status) throw new ExpressionError(`${where}: ${fn}() is only allowed in if:`);
    if (name === 'always') return true;
    return opts.status[name as keyof Status];
  }
  switch (name) {
    case 'startswith':
      arity(2);
      return toStr(args[0], where).toLowerCase().startsWith(toStr(args[1], where).toLowerCase());
    case 'endswith':
      arity(2);
      return toStr(args[0], where).toLowerCase().endsWith(toStr(args[1], where).toLowerCase());
    case 'contains':
      arity(2);
      if (Array.isArray(args[0])) return args[0].some((x) => looseEqual(x, args[1]));
      return toStr(args[0], where).toLowerCase().includes(toStr(args[1], where).toLowerCase());
    case 'format':
      arity(1, Infinity);
      return format(toStr(args[0], where), args.slice(1), where);
    case 'fromjson':
      arity(1);
      try {
        return JSON.parse(toStr(args[0], where)) as Value;
      } catch (e) {
        throw new ExpressionError(`${where}: fromJSON(${JSON.stringify(args[0])}): ${(e as Error).message}`);
      }
    case 'tojson':
      arity(1);
      return JSON.stringify(args[0], null, 2);
    default:
      throw new ExpressionError(`${where}: function ${fn}() is not supported`);
  }
}

/** Arrays made by an object filter: a property of one is that property of each element. */
const FILTERED = new WeakSet<Value[]>();
function filtered(xs: Value[]): Value[] {
  FILTERED.add(xs);
  return xs;
}

function evalNode(n: Node, contexts: Contexts, opts: EvalOptions): Value {
  const where = opts.where ?? 'expression';
  switch (n.k) {
    case 'lit':
      return n.v;
    case 'ctx':
    case 'prop':
    case 'index': {
      const p = contextPath(n);
      if (p) return resolve(contexts, p, where);
      if (n.k === 'ctx') throw new ExpressionError(`${where}: unknown name ${n.name}`);
      const obj = evalNode(n.obj, contexts, opts);
      const key = n.k === 'prop' ? n.name : evalNode(n.index, contexts, opts);
      if (Array.isArray(obj) && FILTERED.has(obj)) return filtered(obj.map((x) => loose(x, key)));
      return loose(obj, key);
    }
    case 'filter': {
      const v = evalNode(n.obj, contexts, opts);
      return filtered(Array.isArray(v) ? [...v] : v !== null && typeof v === 'object' ? Object.values(v) : []);
    }
    case 'call':
      return call(
        n.fn,
        n.args.map((a) => evalNode(a, contexts, opts)),
        opts,
        where,
      );
    case 'not':
      return !truthy(evalNode(n.x, contexts, opts));
    case 'bin': {
      const l = evalNode(n.l, contexts, opts);
      if (n.op === '&&') return truthy(l) ? evalNode(n.r, contexts, opts) : l;
      if (n.op === '||') return truthy(l) ? l : evalNode(n.r, contexts, opts);
      const r = evalNode(n.r, contexts, opts);
      if (n.op === '==') return looseEqual(l, r);
      if (n.op === '!=') return !looseEqual(l, r);
      const c = compare(l, r);
      if (Number.isNaN(c)) return false;
      return n.op === '<' ? c < 0 : n.op === '<=' ? c <= 0 : n.op === '>' ? c > 0 : c >= 0;
    }
  }
}

const ARITY: Record<string, [number, number]> = {
  success: [0, 0],
  failure: [0, 0],
  always: [0, 0],
  cancelled: [0, 0],
  startswith: [2, 2],
  endswith: [2, 2],
  contains: [2, 2],
  format: [1, Infinity],
  fromjson: [1, 1],
  tojson: [1, 1],
};

/**
 * Checks the whole expression before evaluating it: every context path
 * resolves and every function is known, also in the branches that `&&` and
 * `||` short-circuit (a typo there would otherwise only show on another input).
 */
function validate(n: Node, contexts: Contexts, opts: EvalOptions): void {
  const where = opts.where ?? 'expression';
  const p = n.k === 'ctx' || n.k === 'prop' || n.k === 'index' ? contextPath(n) : undefined;
  if (p) {
    resolve(contexts, p, where);
    return;
  }
  switch (n.k) {
    case 'ctx':
      throw new ExpressionError(`${where}: unknown name ${n.name}`);
    case 'prop':
    case 'filter':
      return validate(n.obj, contexts, opts);
    case 'index':
      validate(n.obj, contexts, opts);
      return validate(n.index, contexts, opts);
    case 'call': {
      const a = ARITY[n.fn.toLowerCase()];
      if (!a) throw new ExpressionError(`${where}: function ${n.fn}() is not supported`);
      if (n.args.length < a[0] || n.args.length > a[1])
        throw new ExpressionError(
          `${where}: ${n.fn}() takes ${a[0] === a[1] ? a[0] : `${a[0]} or more`} argument(s), got ${n.args.length}`,
        );
      if (STATUS_FUNCTIONS.includes(n.fn.toLowerCase()) && !opts.status)
        throw new ExpressionError(`${where}: ${n.fn}() is only allowed in if:`);
      for (const x of n.args) validate(x, contexts, opts);
      return;
    }
    case 'not':
      return validate(n.x, contexts, opts);
    case 'bin':
      validate(n.l, contexts, opts);
      return validate(n.r, contexts, opts);
    default:
      return;
  }
}

function evaluateNode(n: Node, contexts: Contexts, opts: EvalOptions): Value {
  validate(n, contexts, opts);
  return evalNode(n, contexts, opts);
}

/** Evaluates the text of one expression (what is between `${{` and `}}`). */
export function evaluateExpression(expr: string, contexts: Contexts, opts: EvalOptions = {}): Value {
  return evaluateNode(parseExpression(expr), contexts, opts);
}

/** Splits a workflow value into literal text and the expressions of its `${{ }}`. */
export function templateParts(text: string): { lit?: string; expr?: string }[] {
  const parts: { lit?: string; expr?: string }[] = [];
  let pos = 0;
  for (;;) {
    const start = text.indexOf('${{', pos);
    if (start < 0) break;
    if (start > pos) parts.push({ lit: text.slice(pos, start) });
    let i = start + 3;
    let quoted = false;
    for (; i < text.length; i++) {
      if (text[i] === "'")
        quoted = !quoted; // '' inside a string toggles twice
      else if (!quoted && text.startsWith('}}', i)) break;
    }
    if (i >= text.length) throw new ExpressionError(`unterminated \${{ in: ${text.slice(start, start + 80)}`);
    parts.push({ expr: text.slice(start + 3, i) });
    pos = i + 2;
  }
  if (pos < text.length) parts.push({ lit: text.slice(pos) });
  return parts;
}

/**
 * A workflow value: a YAML scalar as is; a string that is exactly one
 * `${{ }}` keeps the expression's type; any other string is interpolated.
 */
export function evaluateValue(raw: unknown, contexts: Contexts, opts: EvalOptions = {}): Value {
  if (raw === undefined) return null;
  if (typeof raw !== 'string') {
    if (raw === null || typeof raw === 'boolean' || typeof raw === 'number') return raw;
    throw new ExpressionError(
      `${opts.where ?? 'value'}: a ${Array.isArray(raw) ? 'list' : 'map'} where a scalar was expected`,
    );
  }
  const parts = templateParts(raw);
  if (parts.length === 1 && parts[0].expr !== undefined) return evaluateExpression(parts[0].expr, contexts, opts);
  return parts
    .map((p) => (p.lit !== undefined ? p.lit : toStr(evaluateExpression(p.expr as string, contexts, opts), opts.where)))
    .join('');
}

/** evaluateValue, written as a string (what a step's `with:` or `env:` receives). */
export function evaluateString(raw: unknown, contexts: Contexts, opts: EvalOptions = {}): string {
  return toStr(evaluateValue(raw, contexts, opts), opts.where);
}

/**
 * A job's or step's `if:`. The value may be wrapped in `${{ }}` or not;
 * without a status function GitHub evaluates `success() && (<if>)`.
 */
export function evaluateIf(cond: unknown, contexts: Contexts, status: Status, where = 'if'): boolean {
  let text: string;
  if (cond === undefined || cond === null) text = 'success()';
  else if (typeof cond === 'boolean' || typeof cond === 'number') text = String(cond);
  else if (typeof cond === 'string') {
    text = cond.trim();
    const parts = templateParts(text);
    if (parts.length === 1 && parts[0].expr !== undefined) text = parts[0].expr;
    else if (parts.some((x) => x.expr !== undefined))
      throw new ExpressionError(`${where}: \${{ }} mixed with other text is not supported in if: (${text})`);
  } else throw new ExpressionError(`${where}: if: must be a scalar`);
  let ast = parseExpression(text);
  if (!usesStatus(ast)) ast = { k: 'bin', op: '&&', l: { k: 'call', fn: 'success', args: [] }, r: ast };
  return truthy(evaluateNode(ast, contexts, { status, where }));
}

// ================================================================== workflows

export type JobResult = 'success' | 'failure' | 'cancelled' | 'skipped';

export interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
  if?: unknown;
  shell?: string;
  'working-directory'?: string;
}

export interface Job {
  name?: string;
  needs?: string | string[];
  if?: unknown;
  'runs-on'?: unknown;
  'timeout-minutes'?: unknown;
  environment?: unknown;
  permissions?: unknown;
  outputs?: Record<string, string>;
  steps?: Step[];
  uses?: string;
  with?: Record<string, unknown>;
  secrets?: 'inherit' | Record<string, unknown>;
}

export interface CallInput {
  type: 'string' | 'number' | 'boolean';
  required?: boolean;
  default?: unknown;
}

export interface Workflow {
  name?: string;
  on: Record<string, unknown>;
  permissions?: unknown;
  concurrency?: { group: string; 'cancel-in-progress'?: unknown };
  jobs: Record<string, Job>;
  [key: string]: unknown;
}

export interface WorkflowCall {
  inputs?: Record<string, CallInput>;
  secrets?: Record<string, { required?: boolean }>;
  outputs?: Record<string, { value: string }>;
}

/** Parses a workflow file (relative to the repository root, or absolute). */
export function loadWorkflow(file: string): Workflow {
  const abs = path.resolve(REPO_ROOT, file);
  const wf = parse(fs.readFileSync(abs, 'utf8')) as Workflow;
  if (!wf || typeof wf !== 'object' || !wf.jobs || typeof wf.jobs !== 'object')
    throw new Error(`${file}: not a workflow (no jobs)`);
  return wf;
}

export function needsOf(job: Job): string[] {
  if (job.needs === undefined) return [];
  return Array.isArray(job.needs) ? job.needs : [job.needs];
}

/** The jobs in `needs` order (ties in file order); throws on a cycle or an unknown job. */
export function jobOrder(wf: Workflow): string[] {
  const order: string[] = [];
  const pending = Object.keys(wf.jobs);
  for (const id of pending)
    for (const n of needsOf(wf.jobs[id])) if (!(n in wf.jobs)) throw new Error(`job ${id} needs unknown job ${n}`);
  while (pending.length) {
    const i = pending.findIndex((id) => needsOf(wf.jobs[id]).every((n) => order.includes(n)));
    if (i < 0) throw new Error(`the job graph has a cycle: ${pending.join(', ')}`);
    order.push(pending.splice(i, 1)[0]);
  }
  return order;
}

/** Every job `id` depends on, directly or not. */
export function ancestorsOf(wf: Workflow, id: string): string[] {
  const out = new Set<string>();
  const walk = (j: string) => {
    for (const n of needsOf(wf.jobs[j])) {
      if (out.has(n)) continue;
      out.add(n);
      walk(n);
    }
  };
  walk(id);
  return [...out];
}

/**
 * The status functions for a job: success() when every job it needs
 * succeeded (a skipped one included: it is not a success) and the run is not
 * cancelled; failure() when any ancestor failed.
 */
export function jobStatus(
  needs: string[],
  ancestors: string[],
  results: Record<string, JobResult>,
  cancelled = false,
): Status {
  return {
    success: !cancelled && needs.every((n) => results[n] === 'success'),
    failure: ancestors.some((n) => results[n] === 'failure'),
    cancelled,
  };
}

/** The `workflow_call` trigger of a reusable workflow. */
export function workflowCall(wf: Workflow, file = 'workflow'): WorkflowCall {
  const call = wf.on?.workflow_call as WorkflowCall | null | undefined;
  if (!call || typeof call !== 'object') throw new Error(`${file}: no on.workflow_call`);
  return call;
}

/** The caller's `with:` checked against the declared inputs, typed, and completed with the defaults. */
export function callInputs(call: WorkflowCall, given: Record<string, Value>, file = 'workflow'): Record<string, Value> {
  const declared = call.inputs ?? {};
  const out: Record<string, Value> = {};
  for (const key of Object.keys(given))
    if (!(key in declared)) throw new Error(`${file}: input \`${key}\` is not declared in on.workflow_call.inputs`);
  for (const [key, spec] of Object.entries(declared)) {
    if (key in given) {
      const v = given[key];
      if (spec.type === 'string') {
        out[key] = toStr(v, `${file} input ${key}`);
      } else if (spec.type === 'number') {
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
        if (Number.isNaN(n)) throw new Error(`${file}: input \`${key}\` is a number, got ${JSON.stringify(v)}`);
        out[key] = n;
      } else if (spec.type === 'boolean') {
        if (typeof v === 'boolean') out[key] = v;
        else if (v === 'true' || v === 'false') out[key] = v === 'true';
        else throw new Error(`${file}: input \`${key}\` is a boolean, got ${JSON.stringify(v)}`);
      } else throw new Error(`${file}: input \`${key}\` has unsupported type ${String(spec.type)}`);
    } else if (spec.required && spec.default === undefined) {
      throw new Error(`${file}: required input \`${key}\` not given`);
    } else {
      out[key] =
        spec.default === undefined
          ? spec.type === 'boolean'
            ? false
            : spec.type === 'number'
              ? 0
              : ''
          : (spec.default as Value);
    }
  }
  return out;
}

/** The caller's `secrets:` checked against the declared secrets; the ones not passed are ''. */
export function callSecrets(
  call: WorkflowCall,
  given: Record<string, string>,
  file = 'workflow',
): Record<string, string> {
  const declared = call.secrets ?? {};
  const out: Record<string, string> = {};
  for (const key of Object.keys(given))
    if (!(key in declared)) throw new Error(`${file}: secret \`${key}\` is not declared in on.workflow_call.secrets`);
  for (const [key, spec] of Object.entries(declared)) {
    if (spec?.required && !(key in given)) throw new Error(`${file}: required secret \`${key}\` not passed`);
    out[key] = given[key] ?? '';
  }
  return out;
}

export interface CallerJob {
  /** The called workflow, as a path in this repository (`.github/workflows/deploy.yml`). */
  workflow: string;
  with: Record<string, Value>;
  secrets: Record<string, string>;
}

/**
 * A calling job (e.g. a starter workflow's `deploy` job): its `with:` and
 * `secrets:` evaluated in the caller's contexts (`inputs`, `vars`, `secrets`,
 * `github`), and the reusable workflow of this repository it calls.
 */
export function evaluateCaller(file: string, jobId: string, contexts: Contexts): CallerJob {
  const job = loadWorkflow(file).jobs[jobId];
  if (!job?.uses) throw new Error(`${file}: job ${jobId} calls no reusable workflow`);
  const m = new RegExp(`^${OWN_ACTION}/(\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml)@[A-Za-z0-9_.-]+$`).exec(job.uses);
  if (!m) throw new Error(`${file}: job ${jobId} calls ${job.uses}, not a reusable workflow of ${OWN_ACTION}`);
  if (job.secrets === 'inherit') throw new Error(`${file}: secrets: inherit is not modelled`);
  const w: Record<string, Value> = {};
  for (const [k, v] of Object.entries(job.with ?? {}))
    w[k] = evaluateValue(v, contexts, { where: `${file} ${jobId} with.${k}` });
  const s: Record<string, string> = {};
  for (const [k, v] of Object.entries(job.secrets ?? {}))
    s[k] = evaluateString(v, contexts, { where: `${file} ${jobId} secrets.${k}` });
  return { workflow: m[1], with: w, secrets: s };
}

// ===================================================================== runner

export interface StepRecord {
  job: string;
  id?: string;
  name: string;
  kind: 'action' | 'run' | 'setup';
  uses?: string;
  /** The action's inputs, as evaluated from `with:`. */
  with?: Record<string, string>;
  /** A run step's evaluated `env:`. */
  env?: Record<string, string>;
  outcome: 'success' | 'failure' | 'skipped';
  outputs: Record<string, string>;
  /** Main and post output of an action step; stdout and stderr of a run step. */
  log: string;
  summary: string;
  action?: ActionRun;
  ms: number;
}

export interface JobRecord {
  id: string;
  result: JobResult;
  /** The evaluated `if:` (false: skipped). */
  ran: boolean;
  environment?: Value;
  runsOn?: Value;
  timeoutMinutes?: number;
  outputs: Record<string, string>;
  steps: StepRecord[];
  ms: number;
}

export interface WorkflowRun {
  file: string;
  /** The inputs after defaults and typing, as the jobs saw them. */
  inputs: Record<string, Value>;
  concurrency?: string;
  /** Jobs in the order they were taken (all of them, run or skipped). */
  order: string[];
  /** Only the jobs that ran. */
  ran: string[];
  results: Record<string, JobResult>;
  jobs: Record<string, JobRecord>;
  /** The workflow's `on.workflow_call.outputs`, evaluated. */
  outputs: Record<string, string>;
  steps: StepRecord[];
}

export interface RunWorkflowOptions {
  /** The reusable workflow, relative to the repository root. */
  workflow: string;
  /** The caller's `with:` (checked, typed and defaulted against workflow_call.inputs). */
  inputs: Record<string, Value>;
  /** The caller's `secrets:`. */
  secrets: Record<string, string>;
  /** The `github` context (only what the workflow reads; anything else throws). */
  github: Record<string, Value>;
  /** The checked-out repository: every step runs here. */
  workspace: string;
  /** Runner variables for every step (GITHUB_SHA, GITHUB_REF, GITHUB_RUN_ID, ...), the same across jobs as in one run. */
  runnerEnv?: Record<string, string>;
  /** Actions this runner skips (the workspace is already there): prefixes of `uses`. */
  skip?: string[];
  /** Called after each job (e.g. to drop the local images between build and deploy). */
  afterJob?: (job: JobRecord) => void | Promise<void>;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Replaces runAction (unit tests). */
  runAction?: (opts: RunActionOptions) => Promise<ActionRun>;
}

const STEP_KEYS = new Set(['id', 'name', 'uses', 'with', 'run', 'env', 'if', 'shell', 'working-directory']);
const JOB_KEYS = new Set([
  'name',
  'needs',
  'if',
  'runs-on',
  'timeout-minutes',
  'environment',
  'permissions',
  'outputs',
  'steps',
]);
const WORKFLOW_KEYS = new Set(['name', 'run-name', 'on', 'permissions', 'concurrency', 'jobs']);
const DEFAULT_SKIP = ['actions/checkout@', 'actions/setup-node@'];

function actionOutputNames(): string[] {
  const doc = parse(fs.readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, unknown>;
    outputs: Record<string, unknown>;
  };
  return Object.keys(doc.outputs ?? {});
}

function actionInputNames(): string[] {
  const doc = parse(fs.readFileSync(path.join(REPO_ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown> };
  return Object.keys(doc.inputs ?? {});
}

export function isOwnAction(uses: string | undefined): boolean {
  return uses === './' || (uses ?? '').startsWith(`${OWN_ACTION}@`);
}

/** The test process's environment without runner variables, as the base of a step's. */
function baseEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(INPUT_|STATE_|GITHUB_|RUNNER_|ACTIONS_)/.test(k)) continue;
    out[k] = v;
  }
  return out;
}

function bash(
  script: string,
  shell: string | undefined,
  env: Record<string, string>,
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number | null; log: string }> {
  // The runner's shells: no `shell:` is `bash -e {0}`; `shell: bash` adds --noprofile --norc and pipefail.
  let args: string[];
  if (shell === undefined) args = ['-e'];
  else if (shell === 'bash') args = ['--noprofile', '--norc', '-eo', 'pipefail'];
  else throw new Error(`shell: ${shell} is not modelled`);
  const file = path.join(env.RUNNER_TEMP, `step-${process.hrtime.bigint()}.sh`);
  fs.writeFileSync(file, script);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [...args, file], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => chunks.push(b));
    child.stderr!.on('data', (b: Buffer) => chunks.push(b));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      reject(new Error(`run step did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    child.on('close', (code) => (clearTimeout(timer), resolve({ code, log: Buffer.concat(chunks).toString('utf8') })));
  });
}

function readText(file: string): string {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

/**
 * Runs one call of a reusable workflow: jobs in `needs` order, each job's
 * `if:`, then its steps. A job whose step failed is `failure`; the run goes
 * on with the jobs whose `if:` still holds, as on GitHub. Throws (instead of
 * running something wrong) on any expression, key or action it does not model.
 */
export async function runWorkflow(opts: RunWorkflowOptions): Promise<WorkflowRun> {
  const file = opts.workflow;
  const wf = loadWorkflow(file);
  for (const key of Object.keys(wf))
    if (!WORKFLOW_KEYS.has(key)) throw new Error(`${file}: top-level \`${key}\` is not modelled`);
  const call = workflowCall(wf, file);
  const inputs = callInputs(call, opts.inputs, file);
  const secrets = callSecrets(call, opts.secrets, file);
  const log = opts.log ?? (() => undefined);
  const doRun = opts.runAction ?? realRunAction;
  const skip = opts.skip ?? DEFAULT_SKIP;
  const outputNames = actionOutputNames();
  const inputNames = actionInputNames();
  const base = { inputs, github: opts.github } as Contexts;

  const run: WorkflowRun = {
    file,
    inputs,
    concurrency: wf.concurrency
      ? evaluateString(wf.concurrency.group, base, { where: `${file} concurrency.group` })
      : undefined,
    order: jobOrder(wf),
    ran: [],
    results: {},
    jobs: {},
    outputs: {},
    steps: [],
  };
  const needsContext = (id: string): Record<string, Value> =>
    Object.fromEntries(needsOf(wf.jobs[id]).map((n) => [n, { result: run.results[n], outputs: run.jobs[n].outputs }]));

  for (const id of run.order) {
    const job = wf.jobs[id];
    for (const key of Object.keys(job))
      if (!JOB_KEYS.has(key)) throw new Error(`${file} job ${id}: \`${key}\` is not modelled`);
    const started = Date.now();
    const status = jobStatus(needsOf(job), ancestorsOf(wf, id), run.results);
    const jobCtx: Contexts = { ...base, needs: needsContext(id) };
    const runs = evaluateIf(job.if, jobCtx, status, `${file} job ${id} if`);
    const declaredOutputs = Object.keys(job.outputs ?? {});
    const rec: JobRecord = {
      id,
      result: 'skipped',
      ran: runs,
      outputs: Object.fromEntries(declaredOutputs.map((k) => [k, ''])),
      steps: [],
      ms: 0,
    };
    run.jobs[id] = rec;
    if (!runs) {
      run.results[id] = 'skipped';
      log(`job ${id}: skipped (if: false)`);
      await opts.afterJob?.(rec);
      continue;
    }
    run.ran.push(id);
    rec.runsOn = evaluateValue(job['runs-on'], jobCtx, { where: `${file} job ${id} runs-on` });
    rec.environment =
      job.environment === undefined
        ? undefined
        : evaluateValue(job.environment, jobCtx, { where: `${file} job ${id} environment` });
    const tm =
      job['timeout-minutes'] === undefined
        ? 360
        : Number(evaluateValue(job['timeout-minutes'], jobCtx, { where: `${file} job ${id} timeout-minutes` }));
    if (!(tm > 0)) throw new Error(`${file} job ${id}: timeout-minutes is not a positive number`);
    rec.timeoutMinutes = tm;
    const timeoutMs = tm * 60_000;
    log(`job ${id}: runs (environment ${rec.environment ?? '-'})`);

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `wf-${id}-`));
    const steps: Record<string, Value> = {};
    const jobEnv: Record<string, string> = {};
    let failed = false;
    try {
      for (const [i, step] of (job.steps ?? []).entries()) {
        for (const key of Object.keys(step))
          if (!STEP_KEYS.has(key)) throw new Error(`${file} job ${id} step ${i + 1}: \`${key}\` is not modelled`);
        const name = step.name ?? step.id ?? step.uses ?? `step ${i + 1}`;
        const where = `${file} job ${id} step "${name}"`;
        const ctx: Contexts = { ...jobCtx, secrets, steps };
        const t0 = Date.now();
        const srec: StepRecord = {
          job: id,
          id: step.id,
          name,
          kind: step.run !== undefined ? 'run' : isOwnAction(step.uses) ? 'action' : 'setup',
          uses: step.uses,
          outcome: 'skipped',
          outputs: {},
          log: '',
          summary: '',
          ms: 0,
        };
        const record = () => {
          srec.ms = Date.now() - t0;
          rec.steps.push(srec);
          run.steps.push(srec);
          if (step.id) steps[step.id] = { outputs: srec.outputs, outcome: srec.outcome, conclusion: srec.outcome };
          log(`  ${id} / ${name}: ${srec.outcome} (${(srec.ms / 1000).toFixed(1)} s)`);
        };
        if (!evaluateIf(step.if, ctx, { success: !failed, failure: failed, cancelled: false }, `${where} if`)) {
          record();
          continue;
        }
        const cwd = step['working-directory']
          ? path.resolve(opts.workspace, evaluateString(step['working-directory'], ctx, { where }))
          : opts.workspace;
        const runnerTemp = path.join(tmp, `temp-${i}`);
        fs.mkdirSync(runnerTemp);
        if (step.run !== undefined && step.uses !== undefined) throw new Error(`${where}: both run and uses`);
        if (step.run !== undefined) {
          const env: Record<string, string> = {};
          for (const [k, v] of Object.entries(step.env ?? {}))
            env[k] = evaluateString(v, ctx, { where: `${where} env.${k}` });
          srec.env = env;
          const script = evaluateString(step.run, ctx, { where: `${where} run` });
          const files = {
            GITHUB_OUTPUT: path.join(tmp, `${i}-output`),
            GITHUB_ENV: path.join(tmp, `${i}-env`),
            GITHUB_PATH: path.join(tmp, `${i}-path`),
            GITHUB_STEP_SUMMARY: path.join(tmp, `${i}-summary.md`),
          };
          for (const f of Object.values(files)) fs.writeFileSync(f, '');
          const full = {
            ...baseEnv(),
            CI: 'true',
            GITHUB_ACTIONS: 'true',
            GITHUB_WORKSPACE: opts.workspace,
            GITHUB_JOB: id,
            ...(opts.runnerEnv ?? {}),
            RUNNER_TEMP: runnerTemp,
            ...files,
            ...jobEnv,
            ...env,
          };
          const r = await bash(script, step.shell, full, cwd, timeoutMs);
          srec.log = r.log;
          srec.outcome = r.code === 0 ? 'success' : 'failure';
          srec.outputs = parseFileCommands(readText(files.GITHUB_OUTPUT));
          srec.summary = readText(files.GITHUB_STEP_SUMMARY);
          Object.assign(jobEnv, parseFileCommands(readText(files.GITHUB_ENV)));
          if (readText(files.GITHUB_PATH).trim()) throw new Error(`${where}: GITHUB_PATH is not modelled`);
        } else if (isOwnAction(step.uses)) {
          const w: Record<string, string> = {};
          for (const [k, v] of Object.entries(step.with ?? {})) {
            if (!inputNames.includes(k)) throw new Error(`${where}: \`${k}\` is not an input of action.yml`);
            w[k] = evaluateString(v, ctx, { where: `${where} with.${k}` });
          }
          srec.with = w;
          if (step.env) throw new Error(`${where}: env: on an action step is not modelled`);
          const r = await doRun({
            inputs: w,
            cwd,
            timeoutMs,
            env: { GITHUB_JOB: id, GITHUB_WORKFLOW: wf.name ?? file, ...(opts.runnerEnv ?? {}), ...jobEnv },
          });
          srec.action = r;
          srec.log = r.log + (r.postLog ? `\n--- post\n${r.postLog}` : '');
          srec.summary = r.summary;
          // Outputs the action declares but did not set read as '' (as on GitHub); others throw.
          srec.outputs = { ...Object.fromEntries(outputNames.map((n) => [n, ''])), ...r.outputs };
          srec.outcome = r.code === 0 && (r.postCode === null || r.postCode === 0) ? 'success' : 'failure';
          Object.assign(jobEnv, r.exportedEnv);
        } else if (step.uses && skip.some((s) => step.uses!.startsWith(s))) {
          srec.kind = 'setup';
          srec.outcome = 'success';
        } else {
          throw new Error(`${where}: uses ${String(step.uses)}, which this runner does not model`);
        }
        if (srec.outcome === 'failure') failed = true;
        record();
      }
      rec.result = failed ? 'failure' : 'success';
      rec.outputs = {};
      for (const [k, v] of Object.entries(job.outputs ?? {}))
        rec.outputs[k] = evaluateString(v, { ...jobCtx, steps }, { where: `${file} job ${id} outputs.${k}` });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    run.results[id] = rec.result;
    rec.ms = Date.now() - started;
    log(`job ${id}: ${rec.result} (${(rec.ms / 1000).toFixed(1)} s)`);
    await opts.afterJob?.(rec);
  }

  const jobs: Record<string, Value> = Object.fromEntries(
    run.order.map((id) => [id, { result: run.results[id], outputs: run.jobs[id].outputs }]),
  );
  for (const [k, spec] of Object.entries(call.outputs ?? {}))
    run.outputs[k] = evaluateString(spec.value, { jobs }, { where: `${file} outputs.${k}` });
  return run;
}
