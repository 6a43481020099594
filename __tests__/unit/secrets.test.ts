import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { overrideFile, planConfigs, planSecrets } from '../../src/secrets';
import { loadStack, prepareStack } from '../../src/stack';

const STACK = `version: "3.8"
services:
  web:
    image: reg/web:1
    configs: [{ source: app_conf, target: /etc/app.conf }, { source: named, target: /etc/named }]
    secrets: [db_password]
configs:
  app_conf:
    file: ./conf/app.conf
  named:
    name: my_named_conf
    file: ./conf/app.conf
  outside:
    external: true
secrets:
  db_password:
    external: true
`;

function prepared(conf: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'secrets-unit-'));
  fs.mkdirSync(path.join(dir, 'stacks', 'conf'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'stacks', 'app.yml'), STACK);
  fs.writeFileSync(path.join(dir, 'stacks', 'conf', 'app.conf'), conf);
  return prepareStack(loadStack({ name: 'app', files: ['stacks/app.yml'] }, dir), dir, {});
}

test('planConfigs: a config read from a file gets a content name; same file, same name; another file, another name', () => {
  const a = planConfigs(prepared('x = 1\n'));
  assert.equal(a.length, 1, 'only the file config without a name of its own is managed');
  assert.equal(a[0].key, 'app_conf');
  assert.match(a[0].name, /^app_app_conf_[0-9a-f]{10}$/);
  assert.deepEqual(a[0].entry, { file: './conf/app.conf', name: a[0].name });
  assert.equal(planConfigs(prepared('x = 1\n'))[0].name, a[0].name);
  assert.notEqual(planConfigs(prepared('x = 2\n'))[0].name, a[0].name);
});

test('overrideFile: names the managed secrets and configs, keeps each config entry whole', () => {
  const p = prepared('x = 1\n');
  const configs = planConfigs(p);
  const secrets = planSecrets(p, { DB_PASSWORD: 'S3CR3T-VALUE' }, []);
  const doc = YAML.parse(overrideFile(p, secrets, configs));
  assert.equal(doc.version, '3.8');
  assert.deepEqual(doc.secrets, { db_password: { external: true, name: secrets[0].name } });
  assert.deepEqual(doc.configs, { app_conf: { file: './conf/app.conf', name: configs[0].name } });
  assert.equal(YAML.parse(overrideFile(p, secrets)).configs, undefined);
  assert.ok(!overrideFile(p, secrets, configs).includes('S3CR3T-VALUE'), 'a secret value in the override file');
});
