import * as core from '@actions/core';
import { redact } from './mask';
import { Shell, shellJoin } from './host/shell';
import { Clock, pollUntil, systemClock } from './retry-helper';
import { VerifyCheck } from './verify-input';

export { DEFAULT_VERIFY_IMAGE, DEFAULT_WITHIN_S, checksFor, parseVerify } from './verify-input';
export type { VerifyCheck } from './verify-input';

/** Bound on one request. */
const REQUEST_S = 10;
/** First bytes of the body kept: `contains` looks at these. */
const BODY_BYTES = 65536;
/** First bytes of the body shown for a failed check. */
const SHOWN_BYTES = 200;
const RETRY_MS = 1000;

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
  const host = c.host ? ` (Host: ${c.host})` : '';
  const from = c.network ? ` from a container on network ${c.network}` : '';
  return `GET ${shownUrl(c.url)}${host}${from}`;
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
  return (
    `${describeCheck(f.check)} → ${f.reason} (${f.attempts} attempt(s) in ${f.seconds} s, line ` +
    `${f.check.line} of input verify)${f.status ? body : ''}`
  );
}

/** One request, from the host or from a container on the check's network. Never throws. */
async function attempt(remote: Shell, c: VerifyCheck, maxTimeS: number): Promise<Answer> {
  const script = requestScript(c, maxTimeS);
  const inContainer = (network: string) => [
    ...['docker', 'run', '--rm', '--network', network, '--label', 'deploy-action.verify=1'],
    ...['--entrypoint', 'sh', c.image, '-c', script],
  ];
  const cmd = c.network ? `${shellJoin(inContainer(c.network))} 2>&1` : script;
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

interface Pending {
  check: VerifyCheck;
  deadline: number;
  attempts: number;
  /** Why the last answer did not pass, to log each new reason once. */
  reason: string;
}

/**
 * Sends each check's request until it passes or its `within` runs out (polling, one round per
 * second). Returns the checks that failed, each with its last status and body start.
 */
export async function runVerify(
  remote: Shell,
  stack: string,
  checks: VerifyCheck[],
  clock: Clock = systemClock,
): Promise<VerifyFailure[]> {
  const t0 = clock.now();
  const pending: Pending[] = checks.map((check) => ({
    check,
    deadline: t0 + check.within * 1000,
    attempts: 0,
    reason: '',
  }));
  const failures: VerifyFailure[] = [];
  core.info(`Verify: ${checks.length} request(s) for ${stack}, each until it passes or its time is up.`);
  // Each check has its own deadline: the poll's is the longest, and rounds end when none is pending.
  const longest = Math.max(0, ...checks.map((c) => c.within * 1000));
  await pollUntil({ timeoutMs: longest, clock }, async (p) => {
    if (!pending.length) return { done: undefined };
    const round = p.now();
    for (const c of [...pending]) {
      const failed = await tryOnce(remote, c, t0, clock);
      if (failed === undefined) continue;
      pending.splice(pending.indexOf(c), 1);
      if (failed) failures.push(failed);
    }
    if (!pending.length) return { done: undefined };
    const wait = RETRY_MS - (p.now() - round);
    const untilDeadline = Math.min(...pending.map((c) => c.deadline)) - p.now();
    return { waitMs: wait > 0 && untilDeadline > 0 ? Math.min(wait, untilDeadline) : 0 };
  });
  for (const f of failures) core.error(redact(describeFailure(f)), { title: `Verify failed: ${stack}` });
  return failures;
}

/** One request of a pending check: null when it passed, its failure when its time is up, else undefined. */
async function tryOnce(remote: Shell, p: Pending, t0: number, clock: Clock): Promise<VerifyFailure | null | undefined> {
  const left = (p.deadline - clock.now()) / 1000;
  p.attempts++;
  const answer = await attempt(remote, p.check, Math.min(REQUEST_S, Math.max(1, left)));
  const reason = judge(p.check, answer);
  const seconds = Math.round((clock.now() - t0) / 100) / 10;
  if (!reason) {
    core.info(`Verify: ${describeCheck(p.check)} → ${answer.status} (attempt ${p.attempts}, ${seconds} s).`);
    return null;
  }
  if (clock.now() >= p.deadline) {
    const bodyStart = redact(answer.body.slice(0, SHOWN_BYTES));
    return { check: p.check, reason, status: answer.status, bodyStart, attempts: p.attempts, seconds };
  }
  if (reason !== p.reason)
    core.info(`Verify: ${describeCheck(p.check)} → ${redact(reason)}; trying again until ${p.check.within} s.`);
  p.reason = reason;
  return undefined;
}
