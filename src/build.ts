import * as core from '@actions/core';
import * as fs from 'fs';
import * as path from 'path';
import { InputError } from './errors';
import { Runner, mustRun } from './exec';
import { Clock, retry } from './retry-helper';
import { Service, imageRepository } from './versions';

export { repositoryOf, stackBuilds } from './stackbuilds';

export interface BuildOptions {
  registry: string;
  imagePrefix: string;
  buildArgs: Record<string, string>;
  target: string;
  /** Commit sha: images are also tagged `sha-<7>`. */
  sha: string;
  push: boolean;
  /** Build even when the version tag is already in the registry (default: a VERSION is immutable, reuse it). */
  rebuild?: boolean;
}

export interface BuiltImage {
  service: string;
  version: string;
  /** repo:version */
  image: string;
  /** repo:version@sha256:… once pushed. */
  reference: string;
  digest: string;
  tags: string[];
  /** Already in the registry under this version: not rebuilt. */
  reused?: boolean;
}

const CACHE_TAG = 'buildcache';

/** `docker push` answered with an error (its last lines): worth another attempt. */
class PushFailed extends Error {}

/** A registry hiccup should not fail a release: each push is tried up to 3 times, 2 s, then 4 s apart. */
export async function pushWithRetry(docker: Runner, ref: string, clock?: Pick<Clock, 'sleep'>): Promise<string> {
  const attempts = 3;
  const warn = (e: Error, failed: number, ms: number) =>
    core.warning(`docker push ${ref} failed (attempt ${failed}/${attempts}): ${e.message}; retrying in ${ms / 1000} s`);
  try {
    return await retry(
      { attempts, delayMs: (failed) => 2000 * failed, retryable: (e) => e instanceof PushFailed, onRetry: warn, clock },
      async () => {
        const res = await docker.run(['docker', 'push', ref]);
        if (res.code === 0) return res.stdout;
        throw new PushFailed((res.stderr || res.stdout).trim().split('\n').slice(-3).join(' '));
      },
    );
  } catch (e) {
    if (e instanceof PushFailed) throw new Error(`Could not push ${ref} after ${attempts} attempts: ${e.message}`);
    throw e;
  }
}

/** Docker treats loopback registries as plain HTTP; so do the look-ups. */
function isLoopback(ref: string): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?\//.test(ref);
}

const ipv4 = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/**
 * Which refs to ask with `--insecure`: `docker manifest inspect` does not read the engine's
 * insecure-registries, so a plain-HTTP registry off loopback (a LAN or bridge address) looked absent.
 * The engine where the look-up runs is asked once; without its answer, loopback only.
 */
export async function plainHttp(docker: Runner, refs: string[]): Promise<(ref: string) => boolean> {
  if (refs.every(isLoopback)) return isLoopback;
  const format = '{{json .RegistryConfig.IndexConfigs}} {{json .RegistryConfig.InsecureRegistryCIDRs}}';
  const res = await docker
    .run(['docker', 'info', '--format', format], { silent: true })
    .catch(() => ({ code: -1, stdout: '' }));
  const names = new Set<string>();
  const cidrs: [number, number][] = [];
  if (res.code === 0) {
    const m = /^(\{.*\}) (\[.*\]|null)\s*$/.exec(res.stdout.trim());
    try {
      for (const [name, c] of Object.entries((m ? JSON.parse(m[1]) : {}) as Record<string, { Secure?: boolean }>))
        if (c?.Secure === false) names.add(name);
      for (const cidr of (m ? (JSON.parse(m[2]) ?? []) : []) as string[]) {
        const [addr, bits] = cidr.split('/');
        if (/^\d+\.\d+\.\d+\.\d+$/.test(addr) && Number(bits) <= 32) cidrs.push([ipv4(addr), Number(bits)]);
      }
    } catch {
      // An answer we cannot read: loopback only, as without one.
    }
  }
  return (ref: string) => {
    const host = ref.split('/')[0];
    const addr = host.split(':')[0];
    const inCidr =
      /^\d+\.\d+\.\d+\.\d+$/.test(addr) &&
      cidrs.some(([net, bits]) => bits === 0 || ipv4(addr) >>> (32 - bits) === net >>> (32 - bits));
    return isLoopback(ref) || names.has(host) || inCidr;
  };
}

/** The digest of `ref` in the registry, or null when it is not there (or cannot be read: then we build). */
export async function registryDigest(
  docker: Runner,
  ref: string,
  insecure: (ref: string) => boolean = isLoopback,
): Promise<string | null> {
  const argv = ['docker', 'manifest', 'inspect', '--verbose'];
  if (insecure(ref)) argv.push('--insecure');
  const res = await docker.run([...argv, ref], { silent: true });
  if (res.code !== 0) return null;
  try {
    const data = JSON.parse(res.stdout);
    const d = (Array.isArray(data) ? data[0] : data)?.Descriptor?.digest;
    return typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d) ? d : null;
  } catch {
    return null;
  }
}

/** `docker build` argv for a service: its folder's Dockerfile, or its stack `build:` section. */
function buildArgv(s: Service, opts: BuildOptions, tags: string[], cacheFrom: string[]): string[] {
  const b = s.build;
  const argv = ['docker', 'build', '--file', b ? b.dockerfile : path.join(s.dir, 'Dockerfile')];
  for (const c of cacheFrom) argv.push('--cache-from', c);
  argv.push('--build-arg', 'BUILDKIT_INLINE_CACHE=1', '--build-arg', `VERSION=${s.version}`);
  // The stack's args are the service's own: they win over the input's, which every build gets.
  for (const [k, v] of Object.entries({ ...opts.buildArgs, ...(b?.args ?? {}) })) argv.push('--build-arg', `${k}=${v}`);
  const target = b?.target || opts.target;
  if (target) argv.push('--target', target);
  for (const [k, v] of Object.entries(b?.labels ?? {})) argv.push('--label', `${k}=${v}`);
  argv.push(
    '--label',
    `org.opencontainers.image.version=${s.version}`,
    '--label',
    `org.opencontainers.image.revision=${opts.sha}`,
  );
  for (const t of tags) argv.push('--tag', t);
  argv.push(s.dir);
  return argv;
}

/** What `docker manifest inspect` found, per image: absent, or not readable (down, no credentials). */
/**
 * Builds every service image with the previous build as layer cache, tags it with its VERSION and
 * the commit, and pushes it. The digest comes from the push itself.
 */
export async function buildImages(docker: Runner, services: Service[], opts: BuildOptions): Promise<BuiltImage[]> {
  const built: BuiltImage[] = [];
  const repoOf = (s: Service) => s.repository ?? imageRepository(opts.registry, opts.imagePrefix, s.name);
  const toBuild = services.filter((s) => s.dir);
  const insecure =
    opts.push && !opts.rebuild && toBuild.length
      ? await plainHttp(
          docker,
          toBuild.map((s) => `${repoOf(s)}:${s.version}`),
        )
      : undefined;
  for (const s of services) {
    if (!s.dir) continue; // a version given by input `versions`: built elsewhere
    if (!s.build && !fs.existsSync(path.join(s.dir, 'Dockerfile')))
      throw new InputError(
        `${path.join(path.dirname(s.versionFile), 'Dockerfile')}: missing. Every service folder needs a Dockerfile.`,
      );
    const repo = repoOf(s);
    const tags = [`${repo}:${s.version}`, `${repo}:sha-${opts.sha.slice(0, 7)}`, `${repo}:${CACHE_TAG}`];
    // A released version is immutable: rebuilding it would push a different image under the same tag
    // and roll every replica of an unchanged service.
    if (opts.push && !opts.rebuild) {
      const existing = await registryDigest(docker, tags[0], insecure);
      if (existing) {
        core.info(
          `${tags[0]} is already in the registry (${existing.slice(0, 19)}…): not rebuilt. Bump ` +
            `${s.versionFile} to ship a change (or set rebuild: true).`,
        );
        built.push({
          service: s.name,
          version: s.version,
          image: tags[0],
          reference: `${tags[0]}@${existing}`,
          digest: existing,
          tags: [tags[0]],
          reused: true,
        });
        continue;
      }
    }
    // Services built from one Dockerfile (different args) share their layer caches.
    const siblings = services
      .filter((o) => o !== s && o.build && s.build && o.build.dockerfile === s.build.dockerfile)
      .map((o) => `${repoOf(o)}:${CACHE_TAG}`);
    const cacheFrom = [...new Set([`${repo}:${CACHE_TAG}`, ...siblings, ...(s.build?.cacheFrom ?? [])])];
    await core.group(`Build ${s.name} ${s.version}${s.build ? ` (build: in ${s.build.file})` : ''}`, async () => {
      if (opts.push) {
        // The last pushed builds are the layer cache; a first build has none, which is fine.
        const found: string[] = [];
        for (const c of cacheFrom)
          if ((await docker.run(['docker', 'pull', '--quiet', c], { silent: true })).code === 0) found.push(c);
        core.info(found.length ? `Layer cache: ${found.join(', ')}` : 'No layer cache yet (first build).');
      }
      await mustRun(docker, buildArgv(s, opts, tags, cacheFrom));
    });
    let digest = '';
    if (opts.push) {
      await core.group(`Push ${repo}`, async () => {
        for (const t of tags) {
          const out = await pushWithRetry(docker, t);
          const m = /digest: (sha256:[0-9a-f]{64})/.exec(out);
          if (t === tags[0] && m) digest = m[1];
        }
      });
      if (!digest) throw new Error(`docker push ${tags[0]} printed no digest.`);
    }
    built.push({
      service: s.name,
      version: s.version,
      image: tags[0],
      reference: digest ? `${tags[0]}@${digest}` : tags[0],
      digest,
      tags,
    });
  }
  return built;
}

/** Logs the runner in to the registry (password through stdin); the post step logs out. */
export async function registryLogin(docker: Runner, registry: string, user: string, password: string): Promise<void> {
  // No registry is Docker Hub: docker login takes no server then.
  await mustRun(docker, ['docker', 'login', ...(registry ? [registry] : []), '--username', user, '--password-stdin'], {
    input: password,
    silent: true,
  });
}
