import * as path from 'path';
import { RULE_IDS } from '../checks';
import { InputError } from '../errors';
import type { Hooks } from '../hooks';
import { VerifyCheck, parseVerify } from '../verify-input';
import { needsHost } from './connection';
import { Command, Get, parseKeyValues, positiveInt, words } from './values';

export interface StackSpec {
  /** Swarm stack name (also the prefix of its services). */
  name: string;
  /** Compose files, relative to the working directory, merged in order like `docker stack deploy -c a -c b`. */
  files: string[];
}

/** The layers to deploy and what runs around each. */
export interface LayerInputs {
  stacks: StackSpec[];
  env: Record<string, string>;
  skipChecks: string[];
  /** Requests that must answer once their layer is healthy (command deploy). */
  verify: VerifyCheck[];
  /** Host commands around each layer of a deploy. */
  hooks: Hooks;
}

// Docker stack names become service, network and label prefixes: keep them boring.
const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

export function readLayers(get: Get, command: Command): LayerInputs {
  const stacks = parseStacks(get('stacks'));
  if ((needsHost(command) || command === 'check') && !stacks.length) {
    throw new InputError(
      `Input \`stacks\` is required for command ${command}: one layer per line, STACK_NAME=compose-file.`,
    );
  }
  return {
    stacks,
    env: parseKeyValues(get('env'), 'env'),
    skipChecks: ruleIds(get('skip-checks')),
    verify: parseVerify(
      get('verify'),
      stacks.map((s) => s.name),
    ),
    hooks: {
      'pre-deploy': get('pre-deploy').trim(),
      'post-deploy': get('post-deploy').trim(),
      'on-failure': get('on-failure').trim(),
      timeoutS: positiveInt(get, 'hook-timeout'),
    },
  };
}

export function parseStacks(text: string): StackSpec[] {
  const stacks: StackSpec[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!STACK_NAME.test(name)) {
      const shown = line.trim().slice(0, 60);
      throw new InputError(
        `Input \`stacks\` line ${i + 1}: "${shown}" is not STACK_NAME=compose-file[,compose-file…]; ` +
          'a stack name is letters, digits, _ and - (at most 63, starting with a letter or digit).',
      );
    }
    const files = line
      .slice(eq + 1)
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    if (!files.length) throw new InputError(`Input \`stacks\` line ${i + 1}: stack "${name}" names no compose file.`);
    for (const f of files) checkComposeFile(f, name);
    if (stacks.some((s) => s.name === name)) throw new InputError(`Input \`stacks\`: stack "${name}" is listed twice.`);
    stacks.push({ name, files });
  });
  return stacks;
}

function checkComposeFile(f: string, stack: string): void {
  const file = `Input \`stacks\`: compose file "${f}" of stack "${stack}"`;
  if (path.isAbsolute(f) || path.normalize(f).startsWith('..') || /[\0\n]/.test(f)) {
    throw new InputError(`${file} must be a path inside working-directory.`);
  }
  // docker stack deploy reads --compose-file values as CSV: a double quote cannot get through.
  if (f.includes('"'))
    throw new InputError(`${file} contains a double quote, which docker stack deploy cannot read; rename the file.`);
}

/** `skip-checks`: known rule ids only, so a typo does not silently leave a rule on. */
function ruleIds(raw: string): string[] {
  const ids = words(raw);
  for (const id of ids) {
    if (id !== 'all' && !RULE_IDS.includes(id))
      throw new InputError(`Input \`skip-checks\`: unknown rule "${id}" (rules: ${RULE_IDS.join(', ')}, or all).`);
  }
  return ids;
}
