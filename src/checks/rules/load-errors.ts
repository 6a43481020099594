import { Rule } from '../types';

// Found while a file is loaded (compose/load.ts), before any model: they stop the stack and cannot
// be switched off.
export const invalidYaml: Rule = {
  id: 'invalid-yaml',
  severities: ['error'],
  table: 'error (cannot be switched off)',
  summary: 'a stack file that is not valid YAML, or whose top level is not a mapping',
};

export const unknownKey: Rule = {
  id: 'unknown-key',
  severities: ['error'],
  table: 'error (cannot be switched off)',
  summary: 'a top-level key docker stack deploy refuses',
};
