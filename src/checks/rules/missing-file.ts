import * as fs from 'fs';
import * as path from 'path';
import { bindMounts, envFileEntries, positionOf } from '../../compose';
import { fileObjects } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

const WHERE = "Docker resolves it against the folder of the stack's first compose file";

/** Configs and secrets read from a `file:` that does not exist. */
function objectFiles(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const { section, kind, key, entry } of fileObjects(m)) {
    const abs = path.resolve(m.baseDir, entry.file);
    if (fs.existsSync(abs)) continue;
    out.push({
      severity: 'error',
      at: [section, key, 'file'],
      message:
        `The ${kind} ${key} reads file ${entry.file}, which does not exist (looked for ${abs}; ${WHERE}). ` +
        `Add the file or fix the path.`,
      entity: [section, key],
    });
  }
  return out;
}

/** required: false → Docker Compose skips a missing file, and the deploy leaves it out (stack.ts). */
function envFiles(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const [name, svc] of Object.entries(m.raw)) {
    for (const e of envFileEntries(svc.env_file)) {
      const abs = path.resolve(m.baseDir, e.file);
      if (!e.required || fs.existsSync(abs)) continue;
      out.push({
        severity: 'error',
        at: e.index !== undefined ? ['services', name, 'env_file', e.index] : ['services', name, 'env_file'],
        message:
          `Service ${name}: env_file ${e.file} does not exist (looked for ${abs}; ${WHERE}). Add the file, fix ` +
          `the path, or make it optional (env_file: [{path: ${e.file}, required: false}]).`,
        entity: ['services', name],
      });
    }
  }
  return out;
}

// A relative bind mount Docker resolves on the host; the deploy ships it (files.ts). Missing here,
// Swarm would fail the task ("bind source path does not exist") or mount an empty folder.
function bindSources(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const r of m.resolved) {
    for (const b of bindMounts(r.data)) {
      const abs = path.resolve(m.baseDir, b.source);
      if (fs.existsSync(abs)) continue;
      out.push({
        severity: 'error',
        at: { file: r.file, ...positionOf(r.file, b.path) },
        message:
          `Service ${b.service}: bind mount source ${b.source} does not exist (looked for ${abs}; ${WHERE}). ` +
          `Add the file or folder (the deploy ships it with the release), or fix the path.`,
        entity: ['services', b.service],
      });
    }
  }
  return out;
}

export const missingFile: Rule = {
  id: 'missing-file',
  severities: ['error'],
  table: 'error',
  summary: 'config/secret file, env_file or relative bind mount source that does not exist',
  example: 'services:\n  web:\n    image: app/web:1\n    env_file: ./no-such.env\n',
  check: (m) => [...objectFiles(m), ...envFiles(m), ...bindSources(m)],
};
