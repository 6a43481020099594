import * as core from '@actions/core';
import * as fs from 'fs';
import * as path from 'path';
import { InputError } from './errors';
import { Runner, mustRun } from './exec';
import { Service, imageRepository } from './versions';

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
  /** Attempts per push: a registry hiccup should not fail a release. */
  pushAttempts?: number;
  retryDelayMs?: number;
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

async function pushWithRetry(docker: Runner, ref: string, attempts: number, delayMs: number): Promise<string> {
  let last = '';
  for (let i = 1; i <= attempts; i++) {
    const res = await docker.run(['docker', 'push', ref]);
    if (res.code === 0) return res.stdout;
    last = (res.stderr || res.stdout).trim().split('\n').slice(-3).join(' ');
    if (i < attempts) {
      core.warning(`docker push ${ref} failed (attempt ${i}/${attempts}): ${last}; retrying in ${(delayMs * i) / 1000} s`);
      await new Promise((r) => setTimeout(r, delayMs * i));
    }
  }
  throw new Error(`Could not push ${ref} after ${attempts} attempts: ${last}`);
}

/** Docker treats loopback registries as plain HTTP; so does the existence check. */
function isLoopback(ref: string): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?\//.test(ref);
}

/** The digest of `ref` in the registry, or null when it is not there (or cannot be read: then we build). */
export async function registryDigest(docker: Runner, ref: string): Promise<string | null> {
  const argv = ['docker', 'manifest', 'inspect', '--verbose'];
  if (isLoopback(ref)) argv.push('--insecure');
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

/**
 * Builds every service image with the previous build as layer cache, tags it with its VERSION and
 * the commit, and pushes it. The digest comes from the push itself.
 */
export async function buildImages(docker: Runner, services: Service[], opts: BuildOptions): Promise<BuiltImage[]> {
  const built: BuiltImage[] = [];
  for (const s of services) {
    const dockerfile = path.join(s.dir, 'Dockerfile');
    if (!fs.existsSync(dockerfile)) throw new InputError(`${path.join(path.dirname(s.versionFile), 'Dockerfile')}: missing. Every service folder needs a Dockerfile.`);
    const repo = imageRepository(opts.registry, opts.imagePrefix, s.name);
    const tags = [`${repo}:${s.version}`, `${repo}:sha-${opts.sha.slice(0, 7)}`, `${repo}:${CACHE_TAG}`];
    // A released version is immutable: rebuilding it would push a different image under the same tag
    // and roll every replica of an unchanged service.
    if (opts.push && !opts.rebuild) {
      const existing = await registryDigest(docker, tags[0]);
      if (existing) {
        core.info(`${tags[0]} is already in the registry (${existing.slice(0, 19)}…): not rebuilt. Bump ${s.versionFile} to ship a change (or set rebuild: true).`);
        built.push({ service: s.name, version: s.version, image: tags[0], reference: `${tags[0]}@${existing}`, digest: existing, tags: [tags[0]], reused: true });
        continue;
      }
    }
    await core.group(`Build ${s.name} ${s.version}`, async () => {
      if (opts.push) {
        // The last pushed build is the layer cache; a first build has none, which is fine.
        const pulled = await docker.run(['docker', 'pull', '--quiet', `${repo}:${CACHE_TAG}`], { silent: true });
        core.info(pulled.code === 0 ? `Layer cache: ${repo}:${CACHE_TAG}` : 'No layer cache yet (first build).');
      }
      const argv = ['docker', 'build', '--file', dockerfile, '--cache-from', `${repo}:${CACHE_TAG}`, '--build-arg', 'BUILDKIT_INLINE_CACHE=1'];
      argv.push('--build-arg', `VERSION=${s.version}`);
      for (const [k, v] of Object.entries(opts.buildArgs)) argv.push('--build-arg', `${k}=${v}`);
      if (opts.target) argv.push('--target', opts.target);
      argv.push('--label', `org.opencontainers.image.version=${s.version}`, '--label', `org.opencontainers.image.revision=${opts.sha}`);
      for (const t of tags) argv.push('--tag', t);
      argv.push(s.dir);
      await mustRun(docker, argv);
    });
    let digest = '';
    if (opts.push) {
      await core.group(`Push ${repo}`, async () => {
        for (const t of tags) {
          const out = await pushWithRetry(docker, t, opts.pushAttempts ?? 3, opts.retryDelayMs ?? 2000);
          const m = /digest: (sha256:[0-9a-f]{64})/.exec(out);
          if (t === tags[0] && m) digest = m[1];
        }
      });
      if (!digest) throw new Error(`docker push ${tags[0]} printed no digest.`);
    }
    built.push({ service: s.name, version: s.version, image: tags[0], reference: digest ? `${tags[0]}@${digest}` : tags[0], digest, tags });
  }
  return built;
}

/** Logs the runner in to the registry (password through stdin); the post step logs out. */
export async function registryLogin(docker: Runner, registry: string, user: string, password: string): Promise<void> {
  // No registry is Docker Hub: docker login takes no server then.
  await mustRun(docker, ['docker', 'login', ...(registry ? [registry] : []), '--username', user, '--password-stdin'], { input: password, silent: true });
}
