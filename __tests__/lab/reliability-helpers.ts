// Helpers of the reliability suite (reliability-suite.ts): the suite's own sshd and registry
// instances (never the shared ones), ports and processes, and the in-network probe's counters.
// Node built-ins only. Actions run through helpers/action.ts, the one runner emulation.
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { readText } from '../helpers/action';
import { LabEnv, docker, run, tempDir, waitFor } from '../helpers/lab';

// ------------------------------------------------------------------ ports and processes

/** A TCP port free on 127.0.0.1 right now (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every descendant of `pid` (not `pid` itself), from /proc. */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(e), ppid);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent)
      if (pp === p) {
        out.push(c);
        walk(c);
      }
  };
  walk(pid);
  return out;
}

export function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------ the suite's own sshd

/**
 * A second sshd on its own port, reusing the lab's host key (so the lab's known_hosts key is the
 * right one) with its own authorized_keys, pid file and log. Every session runs through a small
 * ForceCommand wrapper that appends what the persistent shell receives to `shellLog`: that is how
 * the suite counts remote commands per poll. Only this instance is ever stopped or has its
 * sessions killed.
 */
export class OwnSshd {
  readonly dir = tempDir('rel-sshd-');
  readonly config = path.join(this.dir, 'sshd_config');
  readonly pidFile = path.join(this.dir, 'sshd.pid');
  readonly authorizedKeys = path.join(this.dir, 'authorized_keys');
  readonly shellLog = path.join(this.dir, 'shell.log');
  readonly execLog = path.join(this.dir, 'exec.log');
  readonly logFile = path.join(this.dir, 'sshd.log');
  port = 0;

  constructor(
    private readonly lab: LabEnv,
    private readonly hostKeyFile: string,
    keys: string[],
  ) {
    fs.writeFileSync(this.authorizedKeys, keys.map((k) => k.trim()).join('\n') + '\n', { mode: 0o600 });
    const wrap = path.join(this.dir, 'wrap.sh');
    // `exec sh` is the action's persistent shell: tee what it is sent. Anything else runs as sent.
    fs.writeFileSync(
      wrap,
      [
        '#!/bin/sh',
        `printf '@@exec %s@@ %s\\n' "$(date +%s%3N)" "$SSH_ORIGINAL_COMMAND" >> ${this.execLog}`,
        'if [ "$SSH_ORIGINAL_COMMAND" = "exec sh" ]; then',
        `  tee -a ${this.shellLog} | sh`,
        '  exit $?',
        'fi',
        'exec sh -c "$SSH_ORIGINAL_COMMAND"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  }

  knownHostsLine(): string {
    const pub = fs.readFileSync(`${this.hostKeyFile}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    return `[127.0.0.1]:${this.port} ${pub}`;
  }

  get pid(): number {
    return Number(readText(this.pidFile).trim()) || 0;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    fs.writeFileSync(
      this.config,
      [
        '# the reliability suite own sshd (never the lab one)',
        `Port ${this.port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${this.hostKeyFile}`,
        `AuthorizedKeysFile ${this.authorizedKeys}`,
        `PidFile ${this.pidFile}`,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'MaxStartups 100',
        'MaxSessions 100',
        'X11Forwarding no',
        'PrintMotd no',
        // bash skips ~/.bashrc (lab/lab.sh says why).
        'SetEnv SHLVL=1',
        `ForceCommand ${path.join(this.dir, 'wrap.sh')}`,
        '',
      ].join('\n'),
    );
    fs.rmSync(this.pidFile, { force: true });
    fs.mkdirSync('/run/sshd', { recursive: true });
    const r = await run('/usr/sbin/sshd', ['-f', this.config, '-E', this.logFile]);
    if (r.code !== 0) throw new Error(`own sshd did not start: ${r.stderr}${readText(this.logFile).slice(-1000)}`);
    await waitFor(
      async () => {
        const pid = this.pid;
        if (!pid || !alive(pid)) return false;
        const ok = await run(
          'ssh',
          [
            '-i',
            this.lab.sshKeyFile,
            '-o',
            'IdentitiesOnly=yes',
            '-o',
            'BatchMode=yes',
            '-o',
            'StrictHostKeyChecking=no',
            '-o',
            'UserKnownHostsFile=/dev/null',
            '-o',
            'LogLevel=ERROR',
            '-o',
            'ConnectTimeout=3',
            '-p',
            String(this.port),
            'root@127.0.0.1',
            'true',
          ],
          { timeoutMs: 10_000 },
        );
        return ok.code === 0;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `own sshd on 127.0.0.1:${this.port}` },
    );
  }

  /** Kills the per-connection processes of this sshd only (the listener stays): connections drop. */
  killSessions(): number[] {
    const pid = this.pid;
    if (!pid) return [];
    const kids = descendants(pid);
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    return kids;
  }

  /** Stops the listener and its sessions (bounded). */
  async stop(): Promise<void> {
    const pid = this.pid;
    if (!pid || !alive(pid)) return;
    const kids = descendants(pid);
    process.kill(pid, 'SIGTERM');
    for (const k of kids) {
      try {
        process.kill(k, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitFor(() => !alive(pid), { timeoutMs: 10_000, intervalMs: 50, what: `own sshd ${pid} to stop` });
    fs.rmSync(this.pidFile, { force: true });
  }

  async dispose(): Promise<void> {
    await this.stop().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ the suite's own registry

/** A second registry (Debian docker-registry) on its own port with storage in a temp folder. */
export class OwnRegistry {
  readonly dir = tempDir('rel-registry-');
  port = 0;
  private proc?: ChildProcess;

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const cfg = path.join(this.dir, 'config.yml');
    fs.writeFileSync(
      cfg,
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(this.dir, 'data')}\nhttp:\n  addr: ${this.address}\n`,
    );
    const log = fs.openSync(path.join(this.dir, 'registry.log'), 'a');
    this.proc = spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    await waitFor(
      async () => {
        const res = await fetch(`http://${this.address}/v2/`, { signal: AbortSignal.timeout(2000) });
        return res.ok;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `own registry on ${this.address}` },
    );
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await waitFor(
      async () => {
        try {
          await fetch(`http://${this.address}/v2/`, { signal: AbortSignal.timeout(1000) });
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `own registry on ${this.address} to stop answering` },
    );
  }

  async dispose(): Promise<void> {
    await this.stop().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ the probe

export interface ProbeCount {
  /** Daemon timestamp of the log line (ms). */
  t: number;
  ok: number;
  fail: number;
}

/**
 * The probe service's shell loop (busybox): `wget http://web:8080/health` bounded to 1 s, every
 * 100 ms, from inside the stack's network; every 10 requests it prints `COUNT <ok> <fail>`, and each
 * failure `FAIL <wget's error>`. `$$` because compose interpolates `$`. (`timeout 1 wget`, not
 * `wget -T 1`: the lab's static busybox 1.35 wget segfaults with -T.)
 */
export const PROBE_SCRIPT =
  'ok=0; fail=0; n=0; ' +
  'while :; do ' +
  'if out=$$(timeout 1 wget -q -O /dev/null http://web:8080/health 2>&1); then ok=$$((ok+1)); ' +
  'else fail=$$((fail+1)); echo "FAIL $$out"; fi; ' +
  'n=$$((n+1)); if [ $$((n % 10)) -eq 0 ]; then echo "COUNT $$ok $$fail"; fi; ' +
  'sleep 0.1; done';

export interface ProbeLog {
  counts: ProbeCount[];
  fails: { t: number; text: string }[];
}

/** The probe's log, with the daemon's timestamps. */
export async function readProbe(service: string): Promise<ProbeLog> {
  const r = await docker(['service', 'logs', '--raw', '--timestamps', service], { timeoutMs: 30_000 });
  const counts: ProbeCount[] = [];
  const fails: { t: number; text: string }[] = [];
  for (const line of (r.stdout + r.stderr).split('\n')) {
    const m = /^(\S+) (COUNT (\d+) (\d+)|FAIL ?(.*))$/.exec(line.trim());
    if (!m) continue;
    const t = Date.parse(m[1].replace(/(\.\d{3})\d+/, '$1'));
    if (m[3] !== undefined) counts.push({ t, ok: Number(m[3]), fail: Number(m[4]) });
    else fails.push({ t, text: m[5] ?? '' });
  }
  counts.sort((a, b) => a.t - b.t);
  // One probe task for the whole suite: counters only grow. A restarted probe would reset them.
  return { counts, fails };
}

export interface ProbeWindow {
  requests: number;
  failed: number;
  failures: string[];
}

/**
 * Requests and failures between `from` and `to` (ms): waits until the probe printed a count after
 * `to`, then subtracts the last count before `from` from the first count at or after `to`.
 */
export async function probeWindow(service: string, from: number, to: number): Promise<ProbeWindow> {
  const log = await waitFor(
    async () => {
      const l = await readProbe(service);
      return l.counts.some((c) => c.t >= to) ? l : null;
    },
    { timeoutMs: 20_000, intervalMs: 300, what: `the probe ${service} to print a count after the window` },
  );
  const before = [...log.counts].reverse().find((c) => c.t <= from) ?? { t: from, ok: 0, fail: 0 };
  const after = log.counts.find((c) => c.t >= to)!;
  if (after.ok < before.ok || after.fail < before.fail)
    throw new Error(`the probe ${service} restarted during the window (its counters went down)`);
  return {
    requests: after.ok + after.fail - before.ok - before.fail,
    failed: after.fail - before.fail,
    failures: log.fails
      .filter((f) => f.t > before.t && f.t <= after.t)
      .map((f) => `${new Date(f.t).toISOString()} ${f.text}`),
  };
}
