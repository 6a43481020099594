/**
 * Docker Compose variable interpolation, with the semantics of compose-go's `template` package
 * (v2.13, what `docker compose` uses; a superset of the older docker/cli loader that
 * `docker stack deploy` uses, see the notes below).
 *
 * - `$$` is a literal `$`.
 * - `$VAR` / `${VAR}`: the value; unset → "" (Docker warns and substitutes a blank string).
 * - `${VAR:-default}`: default when VAR is unset or empty; `${VAR-default}`: only when unset.
 * - `${VAR:?msg}`: error when unset or empty; `${VAR?msg}`: error when unset.
 * - `${VAR:+alt}`: alt when VAR is set and not empty, else ""; `${VAR+alt}`: alt when set.
 * - The argument (default, alt, message) is itself interpolated, and only when it is used:
 *   `${A:-${B:-x}}`.
 * - A `$` followed by anything else (`a $ b`, `^re$`, `$1`) stays a literal `$`.
 * - `${` without its closing brace, or whose content is not `NAME[op arg]` (`${}`, `${ x}`,
 *   `${x!}`), is an invalid template: an error.
 *
 * docker/cli's own loader (used by `docker stack deploy`) knows neither `:+`/`+` nor nested
 * defaults and rejects a lone `$`; the action therefore interpolates itself and uploads the
 * result with every literal `$` written as `$$`, so the host only unescapes it.
 */

export interface InterpolationResult {
  value: string;
  /** Names used without any default or check that are unset: Docker substitutes "". */
  unset: string[];
  /** Invalid syntax and failed `${VAR:?msg}` checks, worded like Docker's. */
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

const NAME_START = /[_a-zA-Z]/;
const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** Index of the `}` that closes the `{` at `open`, counting nested braces; -1 if none. */
function closingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function lookup(env: Env, name: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
}

function invalid(whole: string, fragment: string): string {
  return (
    `invalid interpolation "${fragment}" in "${whole}": use $VAR, \${VAR}, \${VAR:-default}, ` +
    `\${VAR-default}, \${VAR:?message}, \${VAR:+alternative}; write $$ for a literal $`
  );
}

/**
 * Interpolates `template`, reporting where each unset variable and each error is.
 * Offsets of references found inside a default are those of the nested `$` in `template`.
 */
export function interpolateDetailed(template: string, env: Env): DetailedInterpolationResult {
  const unset: UnsetRef[] = [];
  const errors: InterpolationError[] = [];

  const run = (start: number, end: number): string => {
    let out = '';
    let i = start;
    while (i < end) {
      const dollar = template.indexOf('$', i);
      if (dollar < 0 || dollar >= end) {
        out += template.slice(i, end);
        break;
      }
      out += template.slice(i, dollar);
      const next = dollar + 1 < end ? template[dollar + 1] : '';
      if (next === '$') {
        out += '$';
        i = dollar + 2;
        continue;
      }
      if (next === '{') {
        const close = closingBrace(template, dollar + 1);
        if (close < 0 || close >= end) {
          errors.push({ message: invalid(template, template.slice(dollar, end)), offset: dollar });
          i = end;
          break;
        }
        out += braced(dollar, close);
        i = close + 1;
        continue;
      }
      if (next && NAME_START.test(next)) {
        const name = (NAME.exec(template.slice(dollar + 1, end)) as RegExpExecArray)[0];
        const value = lookup(env, name);
        if (value === undefined) unset.push({ name, offset: dollar, braced: false });
        out += value ?? '';
        i = dollar + 1 + name.length;
        continue;
      }
      // A `$` followed by anything else is kept as it is.
      out += '$';
      i = dollar + 1;
    }
    return out;
  };

  /** `${...}` from `dollar` to the closing brace at `close`. */
  const braced = (dollar: number, close: number): string => {
    const contentStart = dollar + 2;
    const content = template.slice(contentStart, close);
    const m = NAME.exec(content);
    if (!m) {
      errors.push({ message: invalid(template, template.slice(dollar, close + 1)), offset: dollar });
      return '';
    }
    const name = m[0];
    const rest = content.slice(name.length);
    const value = lookup(env, name);
    if (rest === '') {
      if (value === undefined) unset.push({ name, offset: dollar, braced: true });
      return value ?? '';
    }
    const op = /^:?[-?+]/.exec(rest);
    if (!op) {
      errors.push({ message: invalid(template, template.slice(dollar, close + 1)), offset: dollar });
      return '';
    }
    const argStart = contentStart + name.length + op[0].length;
    const arg = (): string => run(argStart, close);
    const empty = value === undefined || value === '';
    switch (op[0]) {
      case ':-':
        return empty ? arg() : (value as string);
      case '-':
        return value === undefined ? arg() : value;
      case ':+':
        return empty ? '' : arg();
      case '+':
        return value === undefined ? '' : arg();
      case ':?':
      case '?': {
        const missing = op[0] === ':?' ? empty : value === undefined;
        if (!missing) return value as string;
        const reason = arg();
        errors.push({
          message: reason
            ? `required variable ${name} is missing a value: ${reason}`
            : `required variable ${name} is missing a value`,
          offset: dollar,
        });
        return '';
      }
    }
    return '';
  };

  const value = run(0, template.length);
  return { value, unset, errors };
}

/** Interpolates one string the way Docker Compose does. */
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
