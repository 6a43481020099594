/**
 * The rule catalog is built from the rule modules (src/checks/rules/): each declares its id, the
 * severities it reports with and an example that trips it; docs/checks.md and skip-checks follow it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RULES, RULE_IDS, checkStack, rulesTable, runRules } from '../../src/checks';
import { loadComposeFile } from '../../src/compose';
import { readInputs } from '../../src/inputs';
import { buildModel } from '../../src/model';

const FIXTURES = path.join(__dirname, '..', 'fixtures');

test('the rules table of docs/checks.md is the catalog rendered', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'checks.md'), 'utf8');
  assert.ok(doc.includes(`${rulesTable()}\n`), `docs/checks.md should hold:\n${rulesTable()}`);
  assert.equal(new Set(RULE_IDS).size, RULE_IDS.length, 'one module per id');
});

test("each rule's example trips it, with a severity it declares", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'catalog-'));
  for (const rule of RULES.filter((r) => r.check && r.example)) {
    const file = path.join(dir, `${rule.id}.yml`);
    fs.writeFileSync(file, rule.example as string);
    const model = buildModel({ name: 'app', files: [loadComposeFile(file, `${rule.id}.yml`)] }, {});
    const found = runRules(model, rule.exampleOptions ?? {}, [rule.id]);
    assert.ok(found.length, `${rule.id}: its example trips nothing`);
    for (const f of found) assert.ok(rule.severities.includes(f.severity), `${rule.id}: ${f.severity}`);
  }
  // Those without one need the host's facts or stop the load before any model.
  assert.deepEqual(
    RULES.filter((r) => !r.example).map((r) => r.id),
    ['immutable-object', 'invalid-yaml', 'unknown-key', 'placement', 'bind-mount-node'],
  );
});

test('every finding over the fixtures and the corpus has a severity its rule declares', () => {
  const declared = new Map(RULES.map((r) => [r.id, r.severities]));
  const seen = new Set<string>();
  for (const folder of ['checks', 'corpus']) {
    const dir = path.join(FIXTURES, folder);
    for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.yml'))) {
      let file;
      try {
        file = loadComposeFile(path.join(dir, name), name);
      } catch {
        continue; // invalid-yaml and unknown-key fixtures
      }
      for (const f of checkStack({ name: 'app', files: [file] }, {}, { timeout: 5 })) {
        assert.ok(declared.get(f.rule)?.includes(f.severity), `${name}: ${f.rule} reported as ${f.severity}`);
        seen.add(`${f.rule} ${f.severity}`);
      }
    }
  }
  assert.ok(seen.has('single-replica-stop-first notice') && seen.has('overlay-mtu notice'), [...seen].join(', '));
});

test('skip-checks accepts the catalog ids and all, and names them when it refuses one', () => {
  const get = (skip: string) => (n: string) =>
    ({ command: 'check', stacks: 'app=app.yml', 'skip-checks': skip })[n] ?? '';
  assert.deepEqual(readInputs(get(RULE_IDS.join(',')), {}).skipChecks, RULE_IDS);
  assert.throws(() => readInputs(get('no-such-rule'), {}), new RegExp(`rules: ${RULE_IDS.join(', ')}, or all`));
});
