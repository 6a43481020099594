/**
 * Stack files in the shapes others publish (swarmprom, dockerswarm.rocks, Docker's voting app,
 * Portainer, OpenFaaS, home labs, infra, Traefik v3, …), written for this test: the checks must not
 * report an error on any of them. They are checked as one run, as the action does (Traefik's
 * default network set in one stack applies to the others).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { checkStack, traefikProviderNetworks } from '../../src/checks';
import { loadComposeFile } from '../../src/compose';
import { buildModel } from '../../src/model';

const DIR = path.join(__dirname, '..', 'fixtures', 'corpus');

test('the corpus of published stack shapes has no error finding', () => {
  const names = fs
    .readdirSync(DIR)
    .filter((f) => f.endsWith('.yml'))
    .sort();
  assert.ok(names.length >= 15, `${names.length} stack files`);
  const stacks = names.map((f) => ({ name: f.replace(/\.yml$/, ''), files: [loadComposeFile(path.join(DIR, f), f)] }));
  const traefikNetworks = traefikProviderNetworks(stacks.map((s) => buildModel(s, {})));
  assert.deepEqual(traefikNetworks, ['proxy'], 'the v3 proxy sets its default network');
  const errors = stacks
    .flatMap((s) => checkStack(s, {}, { traefikNetworks }))
    .filter((f) => f.severity === 'error')
    .map((f) => `${f.file}:${f.line}:${f.col} [${f.rule}] ${f.message}`);
  assert.deepEqual(errors, []);
});
