import { parse } from 'shell-quote';
import { InputError } from './errors';

/** One line of input `verify`: a request that must answer as expected once its layer is healthy. */
export interface VerifyCheck {
  /** Line of the input, for messages. */
  line: number;
  /** The layer it belongs to; undefined: the last layer. */
  stack?: string;
  url: string;
  /** Host header (and TLS name with curl) sent to the URL's address. */
  host?: string;
  /** Accepted statuses: `200`, `2xx`…; default 2xx and 3xx. */
  status: string[];
  contains?: string;
  /** Sent from a short-lived container on this Docker network instead of from the host. */
  network?: string;
  /** Image of that container (needs `sh` and `curl` or `wget`). */
  image: string;
  /** Seconds the check may keep failing before it fails the layer. */
  within: number;
}

export const DEFAULT_VERIFY_IMAGE = 'curlimages/curl:8.11.1';
export const DEFAULT_WITHIN_S = 30;
const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const HOST_NAME = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;
const NETWORK = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/;
const STATUS = /^([1-5][0-9][0-9]|[1-5]xx)$/;
/** How each `key=value` of a line is read into its check: an error text when the value is wrong. */
const OPTIONS: Record<string, (c: VerifyCheck, value: string) => string | undefined> = {
  host: (c, v) => (HOST_NAME.test(v) ? set(c, { host: v }) : `host=${v.slice(0, 60)} is not a host name.`),
  status: (c, v) => {
    const codes = v.split(',').map((x) => x.trim().toLowerCase());
    if (codes.length && codes.every((x) => STATUS.test(x))) return set(c, { status: codes });
    return `status=${v.slice(0, 40)} must be codes like 200 or 2xx, comma separated.`;
  },
  contains: (c, v) => (v ? set(c, { contains: v }) : 'contains= is empty.'),
  network: (c, v) =>
    NETWORK.test(v) ? set(c, { network: v }) : `network=${v.slice(0, 60)} is not a Docker network name.`,
  image: (c, v) => (IMAGE.test(v) ? set(c, { image: v }) : `image=${v.slice(0, 60)} is not an image reference.`),
  within: (c, v) =>
    /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 3600
      ? set(c, { within: Number(v) })
      : `within=${v.slice(0, 20)} must be seconds, 1 to 3600.`,
};
const KEYS = Object.keys(OPTIONS);

function set(c: VerifyCheck, fields: Partial<VerifyCheck>): undefined {
  Object.assign(c, fields);
  return undefined;
}

/** The words of a line, split like a shell does; `$` stays literal (a check is not a shell command). */
function words(line: string, where: string): string[] {
  const out: string[] = [];
  for (const p of parse(line, (key) => `$${key}`)) {
    if (typeof p === 'string') out.push(p);
    else if ('op' in p && p.op === 'glob') out.push((p as { pattern: string }).pattern);
    else if ('comment' in p) break;
    else
      throw new InputError(
        `${where}: "${(p as { op: string }).op}" outside quotes; quote the URL or value that holds it ('…').`,
      );
  }
  return out;
}

/** `[STACK:] URL …`: takes the layer and the URL off the front of the words. */
function target(ws: string[], where: string, stacks: string[]): { stack?: string; url: string } {
  let stack: string | undefined;
  if (ws[0]?.endsWith(':') && !ws[0].includes('/')) {
    stack = ws.shift()!.slice(0, -1);
    if (!STACK_NAME.test(stack) || !stacks.includes(stack))
      throw new InputError(
        `${where}: "${stack}:" names no layer of input \`stacks\` (${stacks.join(', ') || 'none'}).`,
      );
  }
  const raw = ws.shift() ?? '';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InputError(`${where}: "${raw.slice(0, 80)}" is not a URL (http:// or https://).`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InputError(`${where}: only http:// and https:// URLs can be checked, got ${url.protocol}.`);
  return { stack, url: raw };
}

/**
 * Input `verify`: one check per line, `[STACK:] URL [host=NAME] [status=CODE[,CODE…]] [contains=TEXT]
 * [within=SECONDS] [network=NAME [image=REF]]`. Words are split like a shell does (quote a value with
 * spaces, or a URL with `&`); nothing is expanded.
 */
export function parseVerify(text: string, stacks: string[]): VerifyCheck[] {
  const out: VerifyCheck[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const where = `Input \`verify\` line ${i + 1}`;
    const ws = words(line, where);
    const { stack, url } = target(ws, where, stacks);
    const check: VerifyCheck = {
      line: i + 1,
      stack,
      url,
      status: ['2xx', '3xx'],
      image: DEFAULT_VERIFY_IMAGE,
      within: DEFAULT_WITHIN_S,
    };
    const seen = new Set<string>();
    for (const w of ws) {
      const eq = w.indexOf('=');
      const key = eq > 0 ? w.slice(0, eq) : '';
      if (!KEYS.includes(key)) {
        const keys = KEYS.map((k) => `${k}=`).join(', ');
        throw new InputError(`${where}: "${w.slice(0, 60)}" is not one of ${keys} (one URL per line).`);
      }
      if (seen.has(key)) throw new InputError(`${where}: ${key}= is given twice.`);
      seen.add(key);
      const wrong = OPTIONS[key](check, w.slice(eq + 1));
      if (wrong) throw new InputError(`${where}: ${wrong}`);
    }
    if (seen.has('image') && !check.network)
      throw new InputError(`${where}: image= only applies with network= (the check runs on the host otherwise).`);
    out.push(check);
  });
  return out;
}

/** The checks of one layer: those naming its stack, and those naming none when it is the last layer. */
export function checksFor(checks: VerifyCheck[], stack: string, last: boolean): VerifyCheck[] {
  return checks.filter((c) => c.stack === stack || (c.stack === undefined && last));
}

/** The URL with any password replaced: it is shown in the log and the summary. */
