import * as core from '@actions/core';
import { parse } from 'shell-quote';
import { InputError } from './errors';
import { redact } from './mask';
import { Shell, shellJoin } from './host/shell';

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
/** Bound on one request. */
const REQUEST_S = 10;
/** First bytes of the body kept: `contains` looks at these. */
const BODY_BYTES = 65536;
/** First bytes of the body shown for a failed check. */
const SHOWN_BYTES = 200;
const RETRY_MS = 1000;

const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const HOST_NAME = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;
const NETWORK = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/;
const STATUS = /^([1-5][0-9][0-9]|[1-5]xx)$/;
const KEYS = ['host', 'status', 'contains', 'network', 'image', 'within'];

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
    // `$` stays literal: a check is not a shell command.
    const parts = parse(line, (key) => `$${key}`);
    const words: string[] = [];
    for (const p of parts) {
      if (typeof p === 'string') words.push(p);
      else if ('op' in p && p.op === 'glob') words.push((p as { pattern: string }).pattern);
      else if ('comment' in p) break;
      else
        throw new InputError(
          `${where}: "${(p as { op: string }).op}" outside quotes; quote the URL or value that holds it ('…').`,
        );
    }
    let stack: string | undefined;
    if (words[0]?.endsWith(':') && !words[0].includes('/')) {
      stack = words.shift()!.slice(0, -1);
      if (!STACK_NAME.test(stack) || !stacks.includes(stack))
        throw new InputError(
          `${where}: "${stack}:" names no layer of input \`stacks\` (${stacks.join(', ') || 'none'}).`,
        );
    }
    const target = words.shift() ?? '';
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new InputError(`${where}: "${target.slice(0, 80)}" is not a URL (http:// or https://).`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new InputError(`${where}: only http:// and https:// URLs can be checked, got ${url.protocol}.`);
    const check: VerifyCheck = {
      line: i + 1,
      stack,
      url: target,
      status: ['2xx', '3xx'],
      image: DEFAULT_VERIFY_IMAGE,
      within: DEFAULT_WITHIN_S,
    };
    const seen = new Set<string>();
    let image = false;
    for (const w of words) {
      const eq = w.indexOf('=');
      const key = eq > 0 ? w.slice(0, eq) : '';
      const value = w.slice(eq + 1);
      if (!KEYS.includes(key))
        throw new InputError(
          `${where}: "${w.slice(0, 60)}" is not one of ${KEYS.map((k) => `${k}=`).join(', ')} (one URL per line).`,
        );
      if (seen.has(key)) throw new InputError(`${where}: ${key}= is given twice.`);
      seen.add(key);
      if (key === 'host') {
        if (!HOST_NAME.test(value)) throw new InputError(`${where}: host=${value.slice(0, 60)} is not a host name.`);
        check.host = value;
      } else if (key === 'status') {
        const codes = value.split(',').map((c) => c.trim().toLowerCase());
        if (!codes.length || !codes.every((c) => STATUS.test(c)))
          throw new InputError(
            `${where}: status=${value.slice(0, 40)} must be codes like 200 or 2xx, comma separated.`,
          );
        check.status = codes;
      } else if (key === 'contains') {
        if (!value) throw new InputError(`${where}: contains= is empty.`);
        check.contains = value;
      } else if (key === 'network') {
        if (!NETWORK.test(value))
          throw new InputError(`${where}: network=${value.slice(0, 60)} is not a Docker network name.`);
        check.network = value;
      } else if (key === 'image') {
        if (!IMAGE.test(value))
          throw new InputError(`${where}: image=${value.slice(0, 60)} is not an image reference.`);
        check.image = value;
        image = true;
      } else if (key === 'within') {
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 3600)
          throw new InputError(`${where}: within=${value.slice(0, 20)} must be seconds, 1 to 3600.`);
        check.within = Number(value);
      }
    }
    if (image && !check.network)
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
function shownUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return raw;
  }
}

/** `GET URL (Host: NAME) from network NET`, as the log names a check. */
export function describeCheck(c: VerifyCheck): string {
  return `GET ${shownUrl(c.url)}${c.host ? ` (Host: ${c.host})` : ''}${c.network ? ` from a container on network ${c.network}` : ''}`;
}

/**
 * The shell script of one request: curl when there is one, else wget (GNU or busybox). It prints
 * `@@verify CODE` (000: no answer), one line of error text, then the first bytes of the body.
 */
export function requestScript(c: VerifyCheck, maxTimeS: number): string {
  const t = String(Math.max(1, Math.round(maxTimeS)));
  const u = new URL(c.url);
  const curl = ['-w', '%{http_code}', '--max-time', t];
  let curlUrl = c.url;
  if (c.host && u.protocol === 'https:') {
    // TLS must see the name (SNI, certificate): connect to the URL's address, speak to the host name.
    const port = u.port || '443';
    const [name, hostPort] = c.host.split(':');
    curl.push('--connect-to', `${name}:${hostPort ?? '443'}:${u.hostname}:${port}`);
    const v = new URL(c.url);
    v.hostname = name;
    v.port = hostPort && hostPort !== '443' ? hostPort : '';
    curlUrl = v.toString();
  } else if (c.host) curl.push('-H', `Host: ${c.host}`);
  curl.push('--', curlUrl);
  const wget = ['-S', '-T', t];
  if (c.host) wget.push('--header', `Host: ${c.host}`);
  // The body goes to the temp file "$b": the only unquoted word.
  const q = (cmd: string, argv: string[]) => `${cmd} -O "$b" ${shellJoin(argv)}`;
  const wgetRun =
    c.host && u.protocol === 'https:'
      ? `echo 'host= with an https URL needs curl where the request runs' >"$e"`
      : [
          `h=$(wget --help 2>&1); set --`,
          // GNU wget: keep the body of an error answer, and report a redirect rather than follow it.
          `case "$h" in *content-on-error*) set -- "$@" --content-on-error;; esac`,
          `case "$h" in *max-redirect*) set -- "$@" --max-redirect=0;; esac`,
          `${q('wget', wget)} "$@" ${shellJoin([c.url])} 2>"$e"`,
          `s=$(grep -o 'HTTP/[0-9.]* [0-9][0-9][0-9]' "$e" | tail -n 1 | cut -d ' ' -f 2)`,
        ].join('\n');
  return [
    `b=$(mktemp) && e=$(mktemp) || exit 1`,
    `trap 'rm -f "$b" "$e"' EXIT`,
    `s=`,
    `if command -v curl >/dev/null 2>&1; then s=$(curl -sS -o "$b" ${shellJoin(curl)} 2>"$e")`,
    `elif command -v wget >/dev/null 2>&1; then`,
    wgetRun,
    `else echo 'neither curl nor wget is installed where the request runs' >"$e"; fi`,
    `printf '@@verify %s\\n' "\${s:-000}"`,
    `printf '%s\\n' "$(grep -v '^ ' "$e" | tail -n 1 | head -c 300)"`,
    `head -c ${BODY_BYTES} "$b"`,
  ].join('\n');
}

export interface Answer {
  /** 0: no HTTP answer. */
  status: number;
  error: string;
  body: string;
}

export function parseAnswer(stdout: string): Answer | undefined {
  const m = /^@@verify (\d{3})\n([^\n]*)\n?/.exec(stdout.slice(stdout.indexOf('@@verify ')));
  if (!m) return undefined;
  return { status: Number(m[1]), error: m[2].trim(), body: stdout.slice(stdout.indexOf('@@verify ') + m[0].length) };
}

function statusOk(c: VerifyCheck, status: number): boolean {
  return c.status.some((s) => (s.endsWith('xx') ? Math.floor(status / 100) === Number(s[0]) : Number(s) === status));
}

/** Why the answer does not pass, or undefined when it does. */
export function judge(c: VerifyCheck, a: Answer): string | undefined {
  if (!a.status) return `no answer${a.error ? `: ${a.error}` : ''}`;
  if (!statusOk(c, a.status)) return `status ${a.status}, expected ${c.status.join(' or ')}`;
  if (c.contains !== undefined && !a.body.includes(c.contains))
    return `status ${a.status}, but the body does not contain ${JSON.stringify(c.contains)}`;
  return undefined;
}

export interface VerifyFailure {
  check: VerifyCheck;
  reason: string;
  status: number;
  /** First bytes of the last body, secrets masked. */
  bodyStart: string;
  attempts: number;
  seconds: number;
}

/** Text of a failed check for the log, the annotation and the summary. */
export function describeFailure(f: VerifyFailure): string {
  const body = f.bodyStart ? `; body starts: ${JSON.stringify(f.bodyStart)}` : '; empty body';
  return `${describeCheck(f.check)} → ${f.reason} (${f.attempts} attempt(s) in ${f.seconds} s, line ${f.check.line} of input verify)${f.status ? body : ''}`;
}

/** One request, from the host or from a container on the check's network. Never throws. */
async function attempt(remote: Shell, c: VerifyCheck, maxTimeS: number): Promise<Answer> {
  const script = requestScript(c, maxTimeS);
  const cmd = c.network
    ? `${shellJoin(['docker', 'run', '--rm', '--network', c.network, '--label', 'deploy-action.verify=1', '--entrypoint', 'sh', c.image, '-c', script])} 2>&1`
    : script;
  // A container may need its image pulled first.
  const res = await remote
    .sh(cmd, { retry: true, silent: true, timeoutMs: (maxTimeS + (c.network ? 90 : 15)) * 1000 })
    .catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
  return (
    parseAnswer(res.stdout) ?? {
      status: 0,
      error: (res.stderr || res.stdout).trim().split('\n').slice(-1)[0]?.slice(0, 300) ?? `exit ${res.code}`,
      body: '',
    }
  );
}

/**
 * Sends each check's request until it passes or its `within` runs out (polling, one round per
 * second). Returns the checks that failed, each with its last status and body start.
 */
export async function runVerify(remote: Shell, stack: string, checks: VerifyCheck[]): Promise<VerifyFailure[]> {
  const t0 = Date.now();
  const pending = checks.map((check) => ({
    check,
    deadline: t0 + check.within * 1000,
    attempts: 0,
    last: undefined as Answer | undefined,
    reason: '',
  }));
  const failures: VerifyFailure[] = [];
  core.info(`Verify: ${checks.length} request(s) for ${stack}, each until it passes or its time is up.`);
  while (pending.length) {
    const round = Date.now();
    for (const p of [...pending]) {
      const left = (p.deadline - Date.now()) / 1000;
      p.attempts++;
      p.last = await attempt(remote, p.check, Math.min(REQUEST_S, Math.max(1, left)));
      const reason = judge(p.check, p.last);
      const seconds = Math.round((Date.now() - t0) / 100) / 10;
      if (!reason) {
        core.info(`Verify: ${describeCheck(p.check)} → ${p.last.status} (attempt ${p.attempts}, ${seconds} s).`);
        pending.splice(pending.indexOf(p), 1);
      } else if (Date.now() >= p.deadline) {
        pending.splice(pending.indexOf(p), 1);
        failures.push({
          check: p.check,
          reason,
          status: p.last.status,
          bodyStart: redact(p.last.body.slice(0, SHOWN_BYTES)),
          attempts: p.attempts,
          seconds,
        });
      } else if (reason !== p.reason)
        core.info(`Verify: ${describeCheck(p.check)} → ${redact(reason)}; trying again until ${p.check.within} s.`);
      p.reason = reason ?? '';
    }
    const wait = RETRY_MS - (Date.now() - round);
    const untilDeadline = Math.min(...pending.map((p) => p.deadline)) - Date.now();
    if (pending.length && wait > 0 && untilDeadline > 0)
      await new Promise((r) => setTimeout(r, Math.min(wait, untilDeadline)));
  }
  for (const f of failures) core.error(redact(describeFailure(f)), { title: `Verify failed: ${stack}` });
  return failures;
}
