import * as fs from 'fs';
import * as path from 'path';
import * as semver from 'semver';
import { InputError } from './errors';

export interface Service {
  /** Folder name: the image name and the `<SERVICE>_VERSION` variable. */
  name: string;
  dir: string;
  /** Path of the VERSION file relative to the working directory, for messages. */
  versionFile: string;
  version: string;
}

// Docker's tag grammar: what a VERSION file may contain.
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
// One path component of an image repository name.
// One path component of an image repository name, starting with a letter so that <NAME>_VERSION is a valid variable.
const IMAGE_NAME = /^[a-z][a-z0-9]*(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Service folders matching the `services` input: a folder, or a folder glob ending in `/*`. */
function serviceDirs(workingDir: string, pattern: string): string[] {
  const dirs: string[] = [];
  for (const p of pattern.split(/[,\n]/).map((s) => s.trim()).filter(Boolean)) {
    if (p.endsWith('/*')) {
      const parent = path.resolve(workingDir, p.slice(0, -2));
      if (!fs.existsSync(parent)) throw new InputError(`Input \`services\`: folder "${p.slice(0, -2)}" does not exist in ${workingDir}.`);
      for (const e of fs.readdirSync(parent, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        if (e.isDirectory() && !e.name.startsWith('.')) dirs.push(path.join(parent, e.name));
      }
    } else if (p.includes('*')) {
      throw new InputError(`Input \`services\`: "${p}" — only a folder or a folder followed by /* is supported.`);
    } else {
      dirs.push(path.resolve(workingDir, p));
    }
  }
  return dirs;
}

export function readServices(workingDir: string, pattern: string): Service[] {
  const dirs = serviceDirs(workingDir, pattern);
  if (!dirs.length) throw new InputError(`Input \`services\`: "${pattern}" matches no service folder in ${workingDir}.`);
  const services = dirs.map((dir) => readService(workingDir, dir));
  // Two folders with one image name, or one variable name, would silently overwrite each other.
  const seen = new Map<string, Service>();
  for (const s of services) {
    const clash = seen.get(versionVariable(s.name));
    if (clash) throw new InputError(`Service folders "${path.dirname(clash.versionFile)}" and "${path.dirname(s.versionFile)}" both give ${clash.name === s.name ? `the image name "${s.name}"` : `the variable ${versionVariable(s.name)}`}; rename one.`);
    seen.set(versionVariable(s.name), s);
  }
  return services;
}

function readService(workingDir: string, dir: string): Service {
  {
    const name = path.basename(dir);
    const versionFile = path.relative(workingDir, path.join(dir, 'VERSION'));
    if (!IMAGE_NAME.test(name)) {
      throw new InputError(`Service folder "${path.relative(workingDir, dir)}": "${name}" is not a valid service name (lower-case letters and digits, . _ - between them, starting with a letter).`);
    }
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, 'VERSION'), 'utf8');
    } catch {
      throw new InputError(`${versionFile}: missing. Every service folder needs a VERSION file with the image tag (e.g. 1.4.2).`);
    }
    const version = text.trim();
    if (!version) throw new InputError(`${versionFile}: empty. Write the image tag in it (e.g. 1.4.2).`);
    if (!TAG.test(version)) {
      throw new InputError(`${versionFile}: "${version.slice(0, 60)}" is not a valid image tag (letters, digits, _ . -, at most 128, not starting with . or -).`);
    }
    return { name, dir, versionFile, version };
  }
}

/** `web-api` → `WEB_API_VERSION`. */
export function versionVariable(service: string): string {
  return `${service.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION`;
}

export function imageRepository(registry: string, prefix: string, service: string): string {
  return [registry, prefix, service].filter(Boolean).join('/');
}

/** Variables the stack files can use: versions, image references, registry. */
export function versionEnv(services: Service[], registry: string, prefix: string): Record<string, string> {
  const env: Record<string, string> = { REGISTRY: registry, IMAGE_PREFIX: prefix };
  for (const s of services) {
    env[versionVariable(s.name)] = s.version;
    env[versionVariable(s.name).replace(/_VERSION$/, '_IMAGE')] = `${imageRepository(registry, prefix, s.name)}:${s.version}`;
  }
  return env;
}

export interface TagMismatch {
  service: string;
  versionFile: string;
  version: string;
  tag: string;
}

/** On `refs/tags/vX.Y.Z`, the services whose VERSION is not X.Y.Z. Other refs: none. */
export function releaseTagMismatches(services: Service[], ref: string | undefined): TagMismatch[] {
  const m = /^refs\/tags\/(.+)$/.exec(ref ?? '');
  if (!m) return [];
  const tag = m[1];
  // Only tags that look like versions (v1.2.3, 2024.01.15) are compared; `nightly` is not a release.
  if (!/^v?\d/.test(tag)) return [];
  const tagVersion = semver.valid(semver.clean(tag) ?? '') ?? tag.replace(/^v/, '');
  return services
    .filter((s) => (semver.valid(s.version) && semver.valid(tagVersion) ? !semver.eq(s.version, tagVersion) : s.version !== tagVersion))
    .map((s) => ({ service: s.name, versionFile: s.versionFile, version: s.version, tag }));
}
