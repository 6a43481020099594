import * as core from '@actions/core';
import * as fs from 'fs';
import * as path from 'path';
import { runRules } from './checks';
import {
  ResolvedCompose,
  bindMounts,
  positionOf,
  referencedFiles,
  referencedPath,
  rewriteBindSources,
  shortEnvFiles,
} from './compose';
import { ShippedPath, mountSource, shipPath } from './files';
import { InputError } from './errors';
import { StackSpec } from './inputs';
import { StackLoader, StackModel, StackSource, validServices } from './model';
import { Shell, shellJoin } from './host/shell';
import { normalizeImage } from './swarm';

/** A stack's files as loaded, and the rules the run switched off: the deploy honours them as the checks do. */
export type LoadedStack = StackSource;

export interface PreparedStack extends StackModel {
  /** Compose files in the release folder, relative to the working directory, in `-c` order. */
  composePaths: string[];
  /** Everything the release folder holds: interpolated compose files and the files they reference. */
  uploads: { rel: string; content: string | Buffer }[];
  /** Files and folders bind-mounted with a relative source: shipped by content (files.ts), one each. */
  shipped: ShippedPath[];
  /** Each relative bind mount, where it is written, and what it ships. */
  binds: { service: string; source: string; file: string; line: number; col: number; shipped: ShippedPath }[];
}

export function loadStack(spec: StackSpec, workingDir: string): LoadedStack {
  return new StackLoader(workingDir).stack(spec);
}

/**
 * An unset variable is refused exactly when the checks report it (Docker would deploy `app:`);
 * switched off there (skip-checks, a service's skip label or comment), it becomes "" with a
 * warning, as Docker does. Invalid templates are always refused.
 */
function refuseUnset(m: StackModel): void {
  const reported = new Set(
    runRules(m, { skip: m.skip }, ['unset-variable']).map((f) => `${f.file}:${f.line}:${f.col}`),
  );
  const problems: string[] = [];
  for (const r of m.resolved) {
    for (const u of r.unset) {
      const at = `${r.file.path}:${u.line}:${u.col}`;
      if (reported.has(at)) problems.push(`${at}: \${${u.name}} is not set (Docker would substitute an empty string)`);
      else
        core.warning(
          `${at}: \${${u.name}} is not set: substituted an empty string, as Docker does (rule ` +
            `unset-variable is switched off).`,
          { title: 'unset-variable', file: r.file.path, startLine: u.line, startColumn: u.col },
        );
    }
    for (const e of r.errors) problems.push(`${r.file.path}:${e.line}:${e.col}: ${e.message}`);
  }
  if (problems.length)
    throw new InputError(
      `Stack "${m.name}" cannot be interpolated:\n  ${problems.join('\n  ')}\nSet them in the ` +
        `\`env\` input (KEY=VALUE lines) or give a default (\${VAR:-default}).`,
    );
}

/** What one file adds to the release: its binds shipped, its text pointing at them, and the files it references. */
interface Release {
  workingDir: string;
  first: ResolvedCompose;
  uploads: { rel: string; content: string | Buffer }[];
  binds: PreparedStack['binds'];
  byPath: Map<string, ShippedPath>;
}

/** Ships each relative bind mount of one file (once per real path); returns source → shipped copy. */
function shipBinds(rel: Release, r: ResolvedCompose): Map<string, ShippedPath> {
  const sources = new Map<string, ShippedPath>();
  for (const b of bindMounts(r.data)) {
    const { line, col } = positionOf(r.file, b.path);
    const at = `${r.file.path}:${line}:${col}`;
    const abs = referencedPath(rel.first.file, b.source);
    const refRel = path.relative(rel.workingDir, abs);
    if (refRel.startsWith('..') || path.isAbsolute(refRel))
      throw new InputError(
        `${at}: service "${b.service}" bind-mounts ${b.source}, outside working-directory; keep the ` +
          `files a stack uses inside it.`,
      );
    if (!fs.existsSync(abs))
      throw new InputError(`${at}: service "${b.service}" bind-mounts ${b.source}, which does not exist (${refRel}).`);
    const key = fs.realpathSync(abs);
    const ship = rel.byPath.get(key) ?? shipPath(abs, refRel || '.');
    rel.byPath.set(key, ship);
    sources.set(b.source, ship);
    rel.binds.push({ service: b.service, source: b.source, file: r.file.path, line, col, shipped: ship });
  }
  return sources;
}

/** The files one compose file references (configs, secrets, env_file), added to the upload once each. */
function addReferenced(rel: Release, r: ResolvedCompose): void {
  for (const ref of referencedFiles(r)) {
    const abs = referencedPath(rel.first.file, ref.file);
    const refRel = path.relative(rel.workingDir, abs);
    if (refRel.startsWith('..') || path.isAbsolute(refRel)) {
      throw new InputError(
        `${r.file.path}: ${ref.kind} "${ref.name}" points at ${ref.file}, outside working-directory; ` +
          `keep the files a stack uses inside it.`,
      );
    }
    if (ref.optional && !fs.existsSync(abs)) continue; // left out of the upload by shortEnvFiles
    if (!fs.existsSync(abs))
      throw new InputError(`${r.file.path}: ${ref.kind} "${ref.name}" file ${refRel} does not exist.`);
    if (!rel.uploads.some((u) => u.rel === refRel)) rel.uploads.push({ rel: refRel, content: fs.readFileSync(abs) });
  }
}

/** Every service needs an image with a tag: Swarm does not build. */
function checkImages(m: StackModel): void {
  for (const s of Object.values(validServices(m))) {
    if (!s.image)
      throw new InputError(
        `Stack "${m.name}": service "${s.name}" has no image (Swarm does not build: set image: to a ` +
          `registry reference).`,
      );
    const tag = s.image.split('@')[0].split('/').pop() ?? '';
    if (s.image.endsWith(':') || tag.endsWith(':'))
      throw new InputError(`Stack "${m.name}": service "${s.name}" image "${s.image}" has an empty tag.`);
  }
}

/** Renders the stack's model into the release folder's files: what the host needs, nothing read again. */
export function prepareStack(m: StackModel, workingDir: string): PreparedStack {
  refuseUnset(m);
  const first = m.resolved[0];
  const rel: Release = { workingDir, first, uploads: [], binds: [], byPath: new Map() };
  const composePaths: string[] = [];
  const firstRel = path.relative(workingDir, first.file.absPath);
  // docker stack deploy resolves relative paths of every file against the first file's folder.
  const exists = (ref: string): boolean => fs.existsSync(referencedPath(first.file, ref));
  for (const r of m.resolved) {
    const relPath = path.relative(workingDir, r.file.absPath);
    composePaths.push(relPath);
    const sources = shipBinds(rel, r);
    // Each bind source points at the release's copy of its content (files.ts), not at the stack folder.
    const text = shortEnvFiles(r.text, exists);
    rel.uploads.push({
      rel: relPath,
      content: sources.size
        ? rewriteBindSources(text, (src) =>
            sources.has(src) ? mountSource(firstRel, sources.get(src) as ShippedPath) : undefined,
          )
        : text,
    });
    addReferenced(rel, r);
  }
  checkImages(m);
  return {
    ...m,
    composePaths,
    uploads: rel.uploads,
    shipped: [...new Map([...rel.byPath.values()].map((f) => [f.hash, f])).values()],
    binds: rel.binds,
  };
}

export function fullName(stack: string, service: string): string {
  return `${stack}_${service}`;
}

export function expectedImages(stack: PreparedStack): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of Object.values(stack.services)) out[fullName(stack.name, s.name)] = normalizeImage(s.image as string);
  return out;
}

/** Copies the release files into their folder on the host; returns nothing, throws with the host's words. */
export async function uploadRelease(
  remote: Shell,
  releaseDir: string,
  uploads: { rel: string; content: string | Buffer }[],
): Promise<void> {
  for (const u of uploads) await remote.writeFile(`${releaseDir}/${u.rel}`, u.content);
}

export interface DeployFlags {
  withRegistryAuth: boolean;
  /** Pass --detach=true (a client that may one day wait by default); older clients always return at once. */
  detachFlag: boolean;
  /** The client is older than Docker 26 and refused --detach: it was run again without. */
  onNoDetach?: () => void;
  /** Bound on the command (a stalled registry can hold digest resolution). */
  timeoutMs?: number;
}

/** `docker stack deploy` from the release folder. The gate, not this command's exit code, says if it worked. */
export async function stackDeploy(
  remote: Shell,
  releaseDir: string,
  stack: string,
  composePaths: string[],
  flags: DeployFlags,
): Promise<string> {
  const argv = ['docker', 'stack', 'deploy'];
  for (const c of composePaths) argv.push('--compose-file', c);
  if (flags.withRegistryAuth) argv.push('--with-registry-auth');
  const run = (detach: boolean) =>
    remote.sh(`cd ${shellJoin([releaseDir])} && ${shellJoin([...argv, ...(detach ? ['--detach=true'] : []), stack])}`, {
      timeoutMs: flags.timeoutMs,
    });
  let res = await run(flags.detachFlag);
  // Refused while parsing its flags, before it read a file or asked the engine.
  if (flags.detachFlag && res.code !== 0 && /unknown flag: --detach/.test(res.stderr)) {
    flags.onNoDetach?.();
    res = await run(false);
  }
  const out = `${res.stdout}\n${res.stderr}`.trim();
  if (res.code !== 0)
    throw new Error(
      `docker stack deploy ${stack} failed on ${remote.where} (exit ` +
        `${res.code}):\n${out.split('\n').slice(-15).join('\n')}`,
    );
  return out;
}
