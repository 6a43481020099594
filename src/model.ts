/**
 * One model of a stack per layer: its files read and parsed once per run (StackLoader), interpolated
 * with the run's variables, merged as docker stack deploy merges them, and its services read with
 * Docker's defaults. The checks, the rendering of the upload, the build, the timing, the placement
 * and the secrets read this model instead of loading or merging the files again.
 */
import * as path from 'path';
import {
  ComposeFile,
  ComposeValueError,
  ResolvedCompose,
  ServiceInfo,
  Yaml,
  isPlainObject,
  loadComposeFile,
  locateIn,
  mergeStack,
  resolveCompose,
  serviceInfo,
} from './compose';
import { InputError } from './errors';

/** A stack's files as loaded, in `-c` order, and the rules the run switched off (input skip-checks). */
export interface StackSource {
  name: string;
  files: ComposeFile[];
  skip?: string[];
}

export interface StackModel extends StackSource {
  env: Record<string, string | undefined>;
  /** Each file interpolated with `env`. */
  resolved: ResolvedCompose[];
  /** The files merged in order (see mergeStack). */
  merged: Record<string, Yaml>;
  /** The merged services as written (list forms of labels and networks made maps). */
  raw: Record<string, Record<string, Yaml>>;
  /** The merged top-level networks. */
  networks: Record<string, Yaml>;
  /** Each service as Docker reads it, defaults filled in; one with a value Docker refuses is in `invalid`. */
  services: Record<string, ServiceInfo>;
  invalid: { service: string; error: ComposeValueError }[];
  /** docker stack deploy resolves relative paths of every file against the first file's folder. */
  baseDir: string;
}

/** Interpolates, merges and reads one stack; a value Docker would refuse is recorded, not thrown. */
export function buildModel(stack: StackSource, env: Record<string, string | undefined>): StackModel {
  const resolved = stack.files.map((f) => resolveCompose(f, env));
  const merged = mergeStack(resolved);
  const raw: Record<string, Record<string, Yaml>> = isPlainObject(merged.services) ? merged.services : {};
  const services: Record<string, ServiceInfo> = {};
  const invalid: StackModel['invalid'] = [];
  for (const [name, svc] of Object.entries(raw)) {
    try {
      services[name] = serviceInfo(name, svc);
    } catch (e) {
      if (!(e instanceof ComposeValueError)) throw e;
      invalid.push({ service: name, error: e });
    }
  }
  return {
    ...stack,
    env,
    resolved,
    merged,
    raw,
    networks: isPlainObject(merged.networks) ? merged.networks : {},
    services,
    invalid,
    baseDir: stack.files.length ? path.dirname(stack.files[0].absPath) : '',
  };
}

/** The services of a model, or an InputError with file:line for the first value Docker would refuse. */
export function validServices(m: StackModel): Record<string, ServiceInfo> {
  const bad = m.invalid[0];
  if (!bad) return m.services;
  const at = locateIn(m.files, bad.error.path);
  throw new InputError(`${at.file.path}:${at.line}:${at.col}: ${bad.error.message}`);
}

/**
 * Reads and parses each stack file once per run, whichever step asks first (the build's view of the
 * stacks, the checks, the deploy); a file Docker would refuse to load fails the same way each time.
 */
export class StackLoader {
  private readonly cache = new Map<string, ComposeFile | Error>();

  constructor(readonly workingDir: string) {}

  file(rel: string): ComposeFile {
    const abs = path.resolve(this.workingDir, rel);
    let f = this.cache.get(abs);
    if (!f) {
      try {
        f = loadComposeFile(abs, rel);
      } catch (e) {
        f = e as Error;
      }
      this.cache.set(abs, f);
    }
    if (f instanceof Error) throw f;
    return f;
  }

  stack(spec: { name: string; files: string[] }, skip?: string[]): StackSource {
    return { name: spec.name, files: spec.files.map((f) => this.file(f)), ...(skip ? { skip } : {}) };
  }
}
