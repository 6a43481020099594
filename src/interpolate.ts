/**
 * Docker stack file variable interpolation, exactly as `docker stack deploy` does it (docker/cli's
 * `cli/compose/template`; `docker stack config -c FILE` prints its result and is the oracle of
 * __tests__/unit/interpolate-oracle.test.ts). Its rules are narrower than `docker compose`'s:
 *
 * - One regular expression finds the references:
 *   `\$(?i:(\$)|(NAME(:?[-?][^}]*)?)|{(NAME(:?[-?][^}]*)?)}|())`, NAME = `[_a-z][_a-z0-9]*`.
 * - `$$` is a literal `$` (outside a reference only).
 * - `$VAR` / `${VAR}`: the value; unset → "" (Docker warns and substitutes a blank string).
 * - `${VAR:-default}`: default when VAR is unset or empty; `${VAR-default}`: only when unset.
 * - `${VAR:?msg}`: error when unset or empty; `${VAR?msg}`: error when unset.
 * - The argument runs to the first `}` and is literal: `${P:-$2y$05$abc}` is `$2y$05$abc`,
 *   `${A:-${B}}` is `${B` followed by `}`, `${A:-{x}}` with A=a is `a}`.
 * - Without braces the argument runs to the first `}` or the end: `$A-b c` with A set is A's value.
 * - The operator is found by substring, `:-` first, then `-`, `:?`, `?`: `${X:?must-be-set}` is
 *   `be-set` (the `-` wins, and `X:?must` is no variable).
 * - Any other `$` (`a $ b`, `^re$`, `$1`, `${}`, `${X:+y}`, `${X`) is an invalid template, but
 *   Docker keeps only the error of the last reference: `$ ${B}` passes as ` b`.
 *
 * The action interpolates itself (for the checks and the file positions) and uploads the result
 * with every `$` written as `$$`, so the host's Docker only unescapes it.
 */

export interface InterpolationResult {
  value: string;
  /** Names used without any default or check that are unset: Docker substitutes "". */
  unset: string[];
  /** The invalid template or failed `${VAR:?msg}` that makes Docker refuse the value (at most one). */
  errors: string[];
}

/** One reference to an unset variable, with its offset in the template. */
export interface UnsetRef {
  name: string;
  /** Offset of its `$` in the template string. */
  offset: number;
  /** True for `${NAME}`, false for `$NAME`. */
  braced: boolean;
}

export interface InterpolationError {
  message: string;
  offset: number;
}

export interface DetailedInterpolationResult {
  value: string;
  unset: UnsetRef[];
  errors: InterpolationError[];
}

type Env = Record<string, string | undefined>;

// docker/cli's defaultPattern; JavaScript's alternation prefers the leftmost branch as Go's does.
const SUBST = '[_a-z][_a-z0-9]*(?::?[-?][^}]*)?';
const PATTERN = new RegExp(`\\$(?:(\\$)|(${SUBST})|\\{(${SUBST})\\}|())`, 'gi');

function lookup(env: Env, name: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
}

/** `s` split at the first `sep` (docker/cli's partition). */
function partition(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

function invalid(whole: string): string {
  return (
    `invalid interpolation format "${whole}" (docker stack deploy refuses it): use $VAR, \${VAR}, ` +
    `\${VAR:-default}, \${VAR-default}, \${VAR:?message}; write $$ for a literal $ (a default is taken ` +
    `literally up to the first })`
  );
}

type Outcome = { value: string } | { error: string } | undefined;

/** docker/cli's substitute functions, in its order; undefined when none applies. */
function substitute(sub: string, env: Env): Outcome {
  if (sub.includes(':-')) {
    const [name, def] = partition(sub, ':-');
    const v = lookup(env, name);
    return { value: v === undefined || v === '' ? def : v };
  }
  if (sub.includes('-')) {
    const [name, def] = partition(sub, '-');
    return { value: lookup(env, name) ?? def };
  }
  for (const sep of [':?', '?']) {
    if (!sub.includes(sep)) continue;
    const [name, msg] = partition(sub, sep);
    const v = lookup(env, name);
    if (v === undefined || (sep === ':?' && v === '')) {
      return {
        error: msg
          ? `required variable ${name} is missing a value: ${msg}`
          : `required variable ${name} is missing a value`,
      };
    }
    return { value: v };
  }
  return undefined;
}

/** Interpolates `template` as docker stack deploy does, reporting where each unset variable and the error are. */
export function interpolateDetailed(template: string, env: Env): DetailedInterpolationResult {
  const unset: UnsetRef[] = [];
  // Docker keeps one error per value, and a later valid reference clears it.
  let error: InterpolationError | undefined;
  const value = template.replace(
    PATTERN,
    (
      match,
      escaped: string | undefined,
      named: string | undefined,
      braced: string | undefined,
      _inv,
      offset: number,
    ) => {
      if (escaped) return '$';
      const sub = named || braced;
      if (!sub) {
        error = { message: invalid(template), offset };
        return '';
      }
      const r = substitute(sub, env);
      if (r && 'error' in r) {
        error = { message: r.error, offset };
        return '';
      }
      error = undefined;
      if (r) return r.value;
      const v = lookup(env, sub);
      if (v === undefined) unset.push({ name: sub, offset, braced: braced !== undefined });
      return v ?? '';
    },
  );
  return { value, unset, errors: error ? [error] : [] };
}

/** Interpolates one string the way docker stack deploy does. */
export function interpolateString(value: string, env: Env): InterpolationResult {
  const r = interpolateDetailed(value, env);
  return {
    value: r.value,
    unset: [...new Set(r.unset.map((u) => u.name))],
    errors: r.errors.map((e) => e.message),
  };
}

/** Writes every `$` as `$$`, so that a later interpolation gives the string back unchanged. */
export function escapeDollars(value: string): string {
  return value.replace(/\$/g, '$$$$');
}
