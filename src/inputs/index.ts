/** The action's inputs, parsed and validated once into one typed object; each group in its own module. */
import * as core from '@actions/core';
import * as path from 'path';
import { CommentInputs, readComment } from './comment';
import { ConnectionInputs, readConnection } from './connection';
import { DeployInputs, readDeploy } from './deploy';
import { ImageInputs, readImages } from './images';
import { LayerInputs, readLayers } from './layers';
import { SecretInputs, maskSecretInputs, readSecrets } from './secrets';
import { COMMANDS, Command, Get, bool, oneOf, withDefaults } from './values';

export type { Command } from './values';
export type { StackSpec } from './layers';
export { DEFAULTS, parseKeyValues } from './values';
export { parseStacks } from './layers';
export { parseVersions } from './versions';
export { defaultRelease } from './images';

export interface Inputs extends ConnectionInputs, ImageInputs, LayerInputs, DeployInputs, SecretInputs, CommentInputs {
  command: Command;
  workingDirectory: string;
  dryRun: boolean;
}

/** Parses and validates every input once; `get` is injectable for tests. */
export function readInputs(raw: Get = (n) => core.getInput(n), env: NodeJS.ProcessEnv = process.env): Inputs {
  const get = withDefaults(raw);
  // Secrets are masked before anything, even a bad `command`, could fail or print.
  maskSecretInputs(get);
  const command = oneOf(get, 'command', COMMANDS);
  const workspace = env.GITHUB_WORKSPACE || process.cwd();
  return {
    command,
    workingDirectory: path.resolve(workspace, get('working-directory') || '.'),
    ...readConnection(get, command),
    ...readLayers(get, command),
    ...readImages(get, env),
    ...readDeploy(get),
    ...readComment(get, command, env),
    ...readSecrets(get),
    dryRun: bool(get, 'dry-run'),
  };
}
