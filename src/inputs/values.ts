import { InputError } from '../errors';

export const COMMANDS = ['deploy', 'build', 'check', 'rollback', 'remove', 'comment'] as const;
export type Command = (typeof COMMANDS)[number];

/** Reads one input by name: the runner's value, else the default of action.yml, else ''. */
export type Get = (name: string) => string;

/**
 * The runner fills these from action.yml; repeated here so a missing variable behaves the same
 * (a unit test keeps them equal).
 */
export const DEFAULTS: Record<string, string> = {
  command: 'deploy',
  'working-directory': '.',
  services: 'service/*',
  'release-tag-check': 'warn',
  port: '22',
  timeout: 'auto',
  stability: 'auto',
  'rollback-to': 'previous',
  'keep-releases': '10',
  'lock-timeout': '300',
  'lock-stale-after': '3600',
  'remote-dir': '.deploy-action',
  'dry-run': 'false',
  rebuild: 'false',
  'hook-timeout': '300',
  'max-previews': '0',
};

export function withDefaults(raw: Get): Get {
  return (n) => raw(n) || DEFAULTS[n] || '';
}

export function positiveInt(get: Get, name: string, min = 1): number {
  const raw = get(name).trim();
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min)
    throw new InputError(`Input \`${name}\` must be a whole number ≥ ${min}, got "${raw}".`);
  return n;
}

export function oneOf<T extends string>(get: Get, name: string, allowed: readonly T[]): T {
  const v = get(name).trim() as T;
  if (!allowed.includes(v)) throw new InputError(`Input \`${name}\` must be one of ${allowed.join(', ')}; got "${v}".`);
  return v;
}

export function bool(get: Get, name: string): boolean {
  const v = get(name).trim().toLowerCase();
  if (!['', 'true', 'false'].includes(v)) throw new InputError(`Input \`${name}\` must be true or false, got "${v}".`);
  return v === 'true';
}

/** `auto` (undefined) or a whole number of seconds, at least `min`. */
export function autoOrSeconds(get: Get, name: string, min: number): number | undefined {
  const raw = (get(name) || 'auto').trim();
  if (raw === 'auto') return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min) {
    const atLeast = min ? ` (at least ${min})` : '';
    throw new InputError(`Input \`${name}\` must be \`auto\` or a number of seconds${atLeast}, got "${raw}".`);
  }
  return Number(raw);
}

/** Words separated by commas or white space. */
export function words(raw: string): string[] {
  return raw
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
// What a bad key of a secret line must look like to be named in the error: a word, not free text.
const READABLE_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * `KEY=VALUE` lines; blank lines and `#` comments are skipped; a value may contain `=`.
 * With `secret`, an error names the line number and at most a name-like key: a line without `=`,
 * or with free text before it, may be a pasted value, and an error reaches the log, annotation and summary.
 */
export function parseKeyValues(
  text: string,
  inputName: string,
  opts: { secret?: boolean } = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!ENV_KEY.test(key)) {
      const where = `Input \`${inputName}\` line ${i + 1}`;
      const rule = 'expected KEY=VALUE with KEY made of letters, digits and _';
      if (!opts.secret) throw new InputError(`${where}: ${rule}, got "${line.slice(0, 40)}".`);
      const why =
        eq < 0
          ? 'there is no ='
          : !key
            ? 'there is no KEY before the ='
            : READABLE_KEY.test(key)
              ? `KEY "${key}" is not allowed`
              : 'the text before the first = is not a KEY';
      throw new InputError(`${where}: ${rule}; ${why} (the line is not shown: it may hold a secret).`);
    }
    out[key] = line.slice(eq + 1);
  });
  return out;
}
