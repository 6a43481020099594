// Helpers for tests that run against the local lab (lab/lab.sh): a real
// Docker engine in Swarm mode, a registry on 127.0.0.1:5000 and an sshd on
// 127.0.0.1:2222. Node built-ins only.
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** The repository root (this file is __tests__/helpers/lab.ts). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const LAB_SCRIPT = path.join(REPO_ROOT, 'lab', 'lab.sh');
export const EXAMPLE_DIR = path.join(REPO_ROOT, 'example');

export interface LabEnv {
  host: string;
  port: number;
  user: string;
  /** Content of the deploy private key (OpenSSH format, no passphrase). */
  sshKey: string;
  /** Content of the known_hosts file: `[127.0.0.1]:2222 ssh-ed25519 AAAA...`. */
  knownHosts: string;
  sshKeyFile: string;
  knownHostsFile: string;
  /** `127.0.0.1:5000` */
  registry: string;
  /** `lab/base:1` (also pushed as `<registry>/lab/base:1`). */
  baseImage: string;
}

/** The action inputs that point it at this lab: registry, host, pinned key, remote folder. */
export function labInputs(lab: LabEnv, prefix: string, remoteDir: string): Record<string, string> {
  return {
    registry: lab.registry,
    'image-prefix': prefix,
    host: lab.host,
    port: String(lab.port),
    user: lab.user,
    'ssh-key': lab.sshKey,
    'known-hosts': lab.knownHosts,
    'remote-dir': remoteDir,
  };
}

/** Parses `export NAME=value` lines (values without quotes or spaces). */
export function parseExports(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2].trim();
    if ((v.startsWith("'") && v.endsWith("'")) || (v.startsWith('"') && v.endsWith('"'))) {
      v = v.slice(1, -1);
    }
    out[m[1]] = v;
  }
  return out;
}

/**
 * The lab's connection details, from `bash lab/lab.sh env` and the files it
 * names. Throws a clear message when the lab was never brought up.
 */
export function labEnv(): LabEnv {
  let text: string;
  try {
    text = execFileSync('bash', [LAB_SCRIPT, 'env'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`lab: 'bash lab/lab.sh env' failed: ${(err as Error).message}`);
  }
  const e = parseExports(text);
  const need = (name: string): string => {
    const v = e[name];
    if (!v) throw new Error(`lab: 'bash lab/lab.sh env' printed no ${name}`);
    return v;
  };
  const sshKeyFile = need('LAB_SSH_KEY_FILE');
  const knownHostsFile = need('LAB_KNOWN_HOSTS_FILE');
  const read = (file: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      throw new Error(`lab: ${file} is missing: the lab is down; run 'bash lab/lab.sh up' first`);
    }
  };
  return {
    host: need('LAB_HOST'),
    port: Number(need('LAB_PORT')),
    user: need('LAB_USER'),
    sshKey: read(sshKeyFile),
    knownHosts: read(knownHostsFile),
    sshKeyFile,
    knownHostsFile,
    registry: need('LAB_REGISTRY'),
    baseImage: need('LAB_BASE_IMAGE'),
  };
}

/**
 * The healthcheck of the example's images (GET /health), as a service's compose block. Every 2 s:
 * each check is a process started in the container, about 0.1 s of the lab's CPU, and test files
 * run side by side.
 */
export const WEB_HEALTHCHECK = `    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 2s
      timeout: 2s
      retries: 2
      start_period: 2s
`;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** Extra environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written to the child's standard input (else it gets none). */
  input?: string;
  /** Kill the command after this long (default 120 s) and reject. */
  timeoutMs?: number;
}

/** Runs a command (no shell) and resolves with its exit code and output. */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${file} ${args.join(' ')}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new Error(`${file} ${args.join(' ')}: killed after ${timeoutMs} ms\n${stderr.slice(-2000)}`));
        return;
      }
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Runs the local docker CLI. Never rejects on a non-zero exit: check `code`. */
export function docker(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('docker', args, opts);
}

/** Like docker(), but rejects with the command and its stderr on a non-zero exit. */
export async function dockerOk(args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await docker(args, opts);
  if (r.code !== 0) {
    throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

export interface WaitOptions {
  timeoutMs: number;
  /** Pause between polls (default 250 ms). */
  intervalMs?: number;
  /** What is awaited, for the timeout message. */
  what: string;
}

/**
 * Polls `fn` until it returns a truthy value and resolves with it. Errors
 * thrown by `fn` count as "not yet". On timeout, throws naming `what`, with
 * the last value or error seen.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitOptions,
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  // Each attempt is usually a docker CLI call (about 70 ms of CPU on the lab): not too often.
  const interval = opts.intervalMs ?? 500;
  const start = Date.now();
  const deadline = start + opts.timeoutMs;
  let last: string = 'no attempt finished';
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
      last = `last value: ${JSON.stringify(v)}`;
    } catch (err) {
      last = `last error: ${(err as Error).message}`;
    }
    const now = Date.now();
    if (now >= deadline) {
      throw new Error(`timed out after ${now - start} ms waiting for ${opts.what} (${last})`);
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - now))));
  }
}

/**
 * `docker stack rm NAME`, then waits until the stack's services, containers
 * and networks are gone (bounded; default 60 s). Fine if the stack does not exist.
 */
export async function removeStack(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
  const label = `label=com.docker.stack.namespace=${name}`;
  await docker(['stack', 'rm', name]);
  await waitFor(
    async () => {
      const [svc, net, ctr] = await Promise.all([
        docker(['service', 'ls', '-q', '--filter', label]),
        docker(['network', 'ls', '-q', '--filter', label]),
        docker(['ps', '-aq', '--filter', label]),
      ]);
      if (svc.code !== 0 || net.code !== 0 || ctr.code !== 0) {
        throw new Error(svc.stderr || net.stderr || ctr.stderr);
      }
      const left = [svc.stdout, net.stdout, ctr.stdout].join('').trim();
      if (left && net.stdout.trim() && !svc.stdout.trim() && !ctr.stdout.trim()) {
        // Networks can outlive `stack rm` when it raced with task shutdown.
        for (const id of net.stdout.trim().split(/\s+/)) await docker(['network', 'rm', id]);
      }
      return left === '';
    },
    {
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: 300,
      what: `stack ${name} to be removed (services, containers, networks)`,
    },
  );
}

/** The lab runs: engine answers, swarm active, registry answers, key files exist. */
export async function requireLab(): Promise<LabEnv> {
  const hint = "the lab is down: run 'bash lab/lab.sh up' first";
  const info = await docker(['info', '--format', '{{.Swarm.LocalNodeState}}'], { timeoutMs: 20_000 }).catch(
    (e: Error) => ({ code: -1, stdout: '', stderr: e.message }),
  );
  if (info.code !== 0) throw new Error(`${hint} (docker info: ${info.stderr.trim()})`);
  if (info.stdout.trim() !== 'active') throw new Error(`${hint} (swarm is '${info.stdout.trim()}')`);
  const env = labEnv();
  try {
    const res = await fetch(`http://${env.registry}/v2/`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(`${hint} (registry ${env.registry}: ${(err as Error).message})`);
  }
  return env;
}

/** A name unlikely to clash: `<prefix>-<8 hex>` (lower case, fit for stacks and tags). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A fresh folder under os.tmpdir(). */
export function tempDir(prefix = 'deploy-action-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export type ExampleMode = 'ok' | 'crash' | 'unhealthy' | 'crash-later';

export interface ServiceChange {
  version?: string;
  mode?: ExampleMode;
  /** With mode 'crash-later': seconds before the crash (default 12). */
  crashAfter?: number;
}

/** Writes `<dir>/service/<service>/VERSION`. */
export function setServiceVersion(dir: string, service: string, version: string): void {
  const f = path.join(dir, 'service', service, 'VERSION');
  if (!fs.existsSync(path.dirname(f))) throw new Error(`no service '${service}' in ${dir}`);
  fs.writeFileSync(f, `${version}\n`);
}

/**
 * Writes `<dir>/service/<service>/MODE` (ok, crash, unhealthy, crash-later);
 * `crashAfter` (seconds) goes in as a second word: `crash-later 5`.
 */
export function setServiceMode(dir: string, service: string, mode: ExampleMode, crashAfter?: number): void {
  const f = path.join(dir, 'service', service, 'MODE');
  if (!fs.existsSync(path.dirname(f))) throw new Error(`no service '${service}' in ${dir}`);
  fs.writeFileSync(f, crashAfter === undefined ? `${mode}\n` : `${mode} ${crashAfter}\n`);
}

/** Reads `<dir>/service/<service>/VERSION`. */
export function serviceVersion(dir: string, service: string): string {
  return fs.readFileSync(path.join(dir, 'service', service, 'VERSION'), 'utf8').trim();
}

/**
 * Copies example/ into a fresh folder under os.tmpdir() and applies
 * `changes` (service name to new VERSION and/or MODE). Returns the folder;
 * the caller removes it (fs.rmSync(dir, { recursive: true, force: true })).
 */
export function copyExample(changes: Record<string, ServiceChange> = {}): string {
  const dir = tempDir('example-');
  fs.cpSync(EXAMPLE_DIR, dir, { recursive: true });
  for (const [service, change] of Object.entries(changes)) {
    if (change.version !== undefined) setServiceVersion(dir, service, change.version);
    if (change.mode !== undefined) setServiceMode(dir, service, change.mode, change.crashAfter);
  }
  return dir;
}
