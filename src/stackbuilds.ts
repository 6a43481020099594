/** The stack services the action builds: those with a `build:` section, read from each layer's model. */
import * as fs from 'fs';
import * as path from 'path';
import { Yaml, isPlainObject, locateIn, toStringMap } from './compose';
import { ComposeFileError, InputError } from './errors';
import { StackSpec } from './inputs';
import { StackLoader, StackModel, buildModel } from './model';
import { StackBuild } from './versions';

/** `repo:tag@digest` → `repo` (a registry port is not a tag). */
export function repositoryOf(image: string): string {
  const noDigest = image.split('@')[0];
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

interface Where {
  workingDir: string;
  /** registry/prefix the action pushes under ('' when neither is set). */
  under: string;
  sources?: boolean;
}

/** One service's build: section, checked: an image under registry/prefix, and its sources with `sources`. */
function serviceBuild(m: StackModel, name: string, svc: Record<string, Yaml>, w: Where): StackBuild {
  const at = locateIn(m.files, ['services', name, 'build']);
  const where = `${at.file.path}:${at.line}`;
  const b = typeof svc.build === 'string' ? { context: svc.build } : svc.build;
  if (!isPlainObject(b))
    throw new InputError(
      `${where}: service ${name}: build must be a path or a mapping (context, dockerfile, target, ` +
        `args, cache_from, labels).`,
    );
  const image = typeof svc.image === 'string' ? svc.image.trim() : '';
  if (!image)
    throw new InputError(
      `${where}: service ${name} has build: but no image: — give it image: ` +
        `${w.under ? `${w.under}/` : ''}${name}:\${${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION}, ` +
        `the image the action builds and the stack deploys.`,
    );
  const repository = repositoryOf(image);
  if (w.under && !repository.startsWith(`${w.under}/`)) {
    throw new InputError(
      `${where}: service ${name} is built by the action but its image "${image}" is not under ` +
        `${w.under}/ (registry and image-prefix): the action pushes only there.`,
    );
  }
  // Compose resolves build paths against the stack file's folder; with several files, the first one's.
  const context = path.resolve(m.baseDir, String(b.context ?? '.'));
  if (w.sources && (!fs.existsSync(context) || !fs.statSync(context).isDirectory()))
    throw new InputError(
      `${where}: service ${name}: build context ${path.relative(w.workingDir, context) || '.'} is not a folder.`,
    );
  const dockerfile = path.resolve(context, String(b.dockerfile ?? 'Dockerfile'));
  if (w.sources && !fs.existsSync(dockerfile))
    throw new InputError(
      `${where}: service ${name}: Dockerfile ${path.relative(w.workingDir, dockerfile)}: no such file.`,
    );
  const xVersion = svc['x-version-file'];
  return {
    stack: m.name,
    file: at.file.path,
    line: at.line,
    context,
    dockerfile,
    target: b.target === undefined || b.target === null ? '' : String(b.target),
    args: toStringMap(b.args),
    cacheFrom: Array.isArray(b.cache_from)
      ? b.cache_from.filter((c: unknown) => c !== null && c !== undefined).map(String)
      : [],
    labels: toStringMap(b.labels),
    repository,
    versionFile:
      typeof xVersion === 'string' && xVersion.trim()
        ? path.resolve(path.dirname(at.file.absPath), xVersion.trim())
        : undefined,
  };
}

/** One image, one service: two services building one repository would overwrite each other's tags. */
function checkRepositories(builds: Map<string, StackBuild>): void {
  const byRepo = new Map<string, string>();
  for (const [name, b] of builds) {
    const clash = byRepo.get(b.repository);
    if (clash)
      throw new InputError(
        `${b.file}:${b.line}: services ${clash} and ${name} both build the image ${b.repository}; ` +
          `give each its own image.`,
      );
    byRepo.set(b.repository, name);
  }
}

/**
 * The stack services with a `build:` section, by service name. `env` interpolates the stack files
 * (the versions are not known yet: a tag left empty does not matter, the repository does). A file
 * Docker cannot load is left to the pre-flight checks, which report it with its line. With
 * `sources` (a build), the context and Dockerfile must exist; a deploy job may not have cloned them.
 * `loader` is the run's: the checks and the deploy read the same parsed files.
 */
export function stackBuilds(
  stacks: StackSpec[],
  workingDir: string,
  env: Record<string, string>,
  registry: string,
  prefix: string,
  opts: { sources?: boolean; loader?: StackLoader } = {},
): Map<string, StackBuild> {
  const builds = new Map<string, StackBuild>();
  const loader = opts.loader ?? new StackLoader(workingDir);
  const w: Where = { workingDir, under: [registry, prefix].filter(Boolean).join('/'), sources: opts.sources };
  for (const spec of stacks) {
    let m: StackModel;
    try {
      m = buildModel(loader.stack(spec), env);
    } catch (e) {
      if (e instanceof ComposeFileError) continue;
      throw e;
    }
    for (const [name, svc] of Object.entries(m.raw)) {
      if (svc.build === undefined || svc.build === null) continue;
      const build = serviceBuild(m, name, svc, w);
      const other = builds.get(name);
      if (other && other.repository !== build.repository) {
        throw new InputError(
          `${build.file}:${build.line}: service ${name} is also built in ${other.file}:${other.line} ` +
            `with another image (${other.repository}); one name, one image.`,
        );
      }
      if (!other) builds.set(name, build);
    }
  }
  checkRepositories(builds);
  return builds;
}
