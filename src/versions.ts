import * as fs from 'fs';
import * as path from 'path';
import * as semver from 'semver';
import { InputError } from './errors';

/** A stack service's `build:` section (Compose's convention; `docker stack deploy` ignores it). */
export interface StackBuild {
  stack: string;
  /** The stack file that defines it, as the user wrote it, and the line of `build:`. */
  file: string;
  line: number;
  /** Absolute paths. */
  context: string;
  dockerfile: string;
  target: string;
  args: Record<string, string>;
  cacheFrom: string[];
  labels: Record<string, string>;
  /** The service's `image:` without tag or digest. */
  repository: string;
  /** `x-version-file`, absolute (relative to the stack file as written). */
  versionFile?: string;
}

export interface Service {
  /** Folder name or stack service name: the `<SERVICE>_VERSION` variable and the key of the `versions` output. */
  name: string;
  /**
   * Build context: the service folder, or the stack's `build.context`; empty when the version comes
   * from input `versions` alone.
   */
  dir: string;
  /** Where the version comes from (a path relative to the working directory, or the input), for messages. */
  versionFile: string;
  version: string;
  /** Built from a stack file's `build:` rather than from its folder. */
  build?: StackBuild;
  /** Image repository when it is not `<registry>/<image-prefix>/<name>` (from the stack's `image:`). */
  repository?: string;
}

/** Where a version from input `versions` is said to come from. */
export const FROM_INPUT = 'input `versions`';
/** The `services` default: a repository without that folder simply has no folder services. */
const DEFAULT_PATTERN = 'service/*';

// Docker's tag grammar: what a VERSION file may contain.
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
// One path component of an image repository name, starting with a letter so that <NAME>_VERSION is a valid variable.
const IMAGE_NAME = /^[a-z][a-z0-9]*(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Service folders matching the `services` input: a folder, or a folder glob ending in `/*`. */
function serviceDirs(workingDir: string, pattern: string): string[] {
  const dirs: string[] = [];
  for (const p of pattern
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (p.endsWith('/*')) {
      const parent = path.resolve(workingDir, p.slice(0, -2));
      if (!fs.existsSync(parent)) {
        if (pattern === DEFAULT_PATTERN) continue;
        throw new InputError(`Input \`services\`: folder "${p.slice(0, -2)}" does not exist in ${workingDir}.`);
      }
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

/**
 * Every service with a version: the service folders, the stack services with `build:` (`builds`,
 * by service name), and the names of input `versions` (which win over any VERSION file).
 */
export function readServices(
  workingDir: string,
  pattern: string,
  builds: Map<string, StackBuild> = new Map(),
  versions: Record<string, string> = {},
): Service[] {
  const dirs = serviceDirs(workingDir, pattern);
  if (!dirs.length && !builds.size && !Object.keys(versions).length && pattern !== DEFAULT_PATTERN) {
    throw new InputError(`Input \`services\`: "${pattern}" matches no service folder in ${workingDir}.`);
  }
  const folders = new Map(dirs.map((d) => [path.basename(d), d]));
  const services: Service[] = [];
  // A folder named like a stack service with build: is that service's (its VERSION may be the version).
  for (const dir of dirs)
    if (!builds.has(path.basename(dir))) services.push(readService(workingDir, dir, versions[path.basename(dir)]));
  for (const [name, b] of builds) services.push(builtService(workingDir, name, b, folders.get(name), versions[name]));
  for (const [name, version] of Object.entries(versions)) {
    if (!services.some((s) => s.name === name)) services.push({ name, dir: '', versionFile: FROM_INPUT, version });
  }
  // Two services with one image name, or one variable name, would silently overwrite each other.
  const seen = new Map<string, Service>();
  const where = (s: Service) =>
    s.build
      ? `stack service "${s.name}" (${s.build.file})`
      : s.dir
        ? `service folder "${path.relative(workingDir, s.dir)}"`
        : `"${s.name}" of input \`versions\``;
  for (const s of services) {
    const clash = seen.get(versionVariable(s.name));
    if (clash) {
      const what = clash.name === s.name ? `the image name "${s.name}"` : `the variable ${versionVariable(s.name)}`;
      throw new InputError(`${where(clash)} and ${where(s)} both give ${what}; rename one.`);
    }
    seen.set(versionVariable(s.name), s);
  }
  return services;
}

/** Reads and validates one VERSION file; `rel` names it in messages. */
function readVersionFile(abs: string, rel: string): string {
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch {
    throw new InputError(`${rel}: missing. Every service folder needs a VERSION file with the image tag (e.g. 1.4.2).`);
  }
  const version = text.trim();
  if (!version) throw new InputError(`${rel}: empty. Write the image tag in it (e.g. 1.4.2).`);
  if (!TAG.test(version)) {
    throw new InputError(
      `${rel}: "${version.slice(0, 60)}" is not a valid image tag ` +
        '(letters, digits, _ . -, at most 128, not starting with . or -).',
    );
  }
  return version;
}

function readService(workingDir: string, dir: string, given?: string): Service {
  const name = path.basename(dir);
  if (!IMAGE_NAME.test(name)) {
    throw new InputError(
      `Service folder "${path.relative(workingDir, dir)}": "${name}" is not a valid service name ` +
        '(lower-case letters and digits, . _ - between them, starting with a letter).',
    );
  }
  if (given !== undefined) return { name, dir, versionFile: FROM_INPUT, version: given };
  const versionFile = path.relative(workingDir, path.join(dir, 'VERSION'));
  return { name, dir, versionFile, version: readVersionFile(path.join(dir, 'VERSION'), versionFile) };
}

/**
 * A stack service with `build:`. Its version: input `versions`; else its `x-version-file`; else
 * VERSION in its build context; else VERSION in its service folder; else VERSION at the root.
 */
function builtService(
  workingDir: string,
  name: string,
  build: StackBuild,
  folder: string | undefined,
  given?: string,
): Service {
  const base = { name, dir: build.context, build, repository: build.repository };
  if (given !== undefined) return { ...base, versionFile: FROM_INPUT, version: given };
  const rel = (abs: string) => path.relative(workingDir, abs) || abs;
  if (build.versionFile) {
    if (!fs.existsSync(build.versionFile))
      throw new InputError(
        `${build.file}:${build.line}: service ${name}: x-version-file ${rel(build.versionFile)}: no such file.`,
      );
    return {
      ...base,
      versionFile: rel(build.versionFile),
      version: readVersionFile(build.versionFile, rel(build.versionFile)),
    };
  }
  const candidates = [
    path.join(build.context, 'VERSION'),
    ...(folder ? [path.join(folder, 'VERSION')] : []),
    path.join(workingDir, 'VERSION'),
  ];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) {
    throw new InputError(
      `${build.file}:${build.line}: service ${name} is built here but has no version: ` +
        `give it a VERSION file in its build context (${rel(build.context)}), ` +
        'name one with x-version-file (relative to the stack file), ' +
        'put one VERSION at the root of working-directory, or set it with input `versions`.',
    );
  }
  return { ...base, versionFile: rel(found), version: readVersionFile(found, rel(found)) };
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
    env[versionVariable(s.name).replace(/_VERSION$/, '_IMAGE')] =
      `${s.repository ?? imageRepository(registry, prefix, s.name)}:${s.version}`;
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
    .filter((s) => s.versionFile !== FROM_INPUT)
    .filter((s) =>
      semver.valid(s.version) && semver.valid(tagVersion)
        ? !semver.eq(s.version, tagVersion)
        : s.version !== tagVersion,
    )
    .map((s) => ({ service: s.name, versionFile: s.versionFile, version: s.version, tag }));
}
