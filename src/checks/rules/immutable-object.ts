import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { fileObjects } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function check(m: CheckModel): Raw[] {
  const existing = m.opts.existingObjects ?? {};
  const out: Raw[] = [];
  for (const { section, kind, key, entry } of fileObjects(m)) {
    // A config from a file without a name of its own is named by its content at deploy (secrets.ts).
    if (section === 'configs' && !entry.name) continue;
    const swarmName = entry.name ? String(entry.name) : `${m.name}_${key}`;
    if (existing[swarmName] === undefined) continue;
    let content: Buffer;
    try {
      content = fs.readFileSync(path.resolve(m.baseDir, entry.file));
    } catch {
      continue; // missing-file reports it
    }
    if (existing[swarmName].toLowerCase() === createHash('sha256').update(content).digest('hex')) continue;
    out.push({
      severity: 'error',
      at: entry.name ? [section, key, 'name'] : [section, key],
      message:
        `The ${kind} ${swarmName} already exists on the swarm with other content, and Swarm ${section} are ` +
        `immutable: the deploy would fail ("only updates to Labels are allowed"). Use a versioned name that ` +
        `changes with the content, e.g. name: ` +
        `${swarmName}_\${${key.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION}.`,
      entity: [section, key],
    });
  }
  return out;
}

export const immutableObject: Rule = {
  id: 'immutable-object',
  severities: ['error'],
  table: 'error',
  summary: 'config/secret whose content changed but whose name did not',
  check,
};
