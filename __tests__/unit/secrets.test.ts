import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { RunResult } from '../../src/exec';
import { ShOptions, shellJoin } from '../../src/remote';
import { SecretHost, SecretPlan, displayName, ensureSecrets, nameSecrets, overrideFile, overrideUpload, planConfigs, planSecrets } from '../../src/secrets';
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

/**
 * A host that is a temp folder here: scripts run in `sh` with the folder as home, so the script the
 * action sends is what runs. Records every script (argv are quoted into one) and every stdin.
 */
class FakeHost implements SecretHost {
  readonly where = 'fake@host';
  readonly home = fs.mkdtempSync(path.join(os.tmpdir(), 'secrets-host-'));
  scripts: string[] = [];
  inputs: string[] = [];
  async run(argv: string[], opts: ShOptions = {}): Promise<RunResult> {
    return this.sh(shellJoin(argv), opts);
  }
  async sh(script: string, opts: ShOptions = {}): Promise<RunResult> {
    this.scripts.push(script);
    if (opts.input !== undefined) this.inputs.push(opts.input);
    // No Docker here: a docker command succeeds and prints nothing.
    const env = { PATH: `${this.bin()}:${process.env.PATH}`, HOME: this.home };
    const r = spawnSync('sh', ['-c', script], { cwd: this.home, input: opts.input ?? '', env, encoding: 'utf8' });
    return { code: r.status ?? 255, stdout: r.stdout, stderr: r.stderr };
  }
  private bin(): string {
    const dir = path.join(this.home, '.bin');
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'docker'), '#!/bin/sh\ncat >/dev/null\n', { mode: 0o755 });
    }
    return dir;
  }
  /** The key the host made, read as the host would. */
  key(remoteDir = '.deploy-action'): Buffer {
    return fs.readFileSync(path.join(this.home, remoteDir, 'secret-key'));
  }
}

const VALUE = 'S3CR3T-VALUE-with spaces, \'quotes" and $(not run)\nand a second line';

/** Every substring of the value worth leaking (6 characters or more), and its base64. */
function leaks(value: string): string[] {
  const out = [value, Buffer.from(value).toString('base64')];
  for (let i = 0; i + 6 <= value.length; i++) out.push(value.slice(i, i + 6));
  return out;
}

const keyed = (key: Buffer, stack: string, name: string, value: string) => createHash('sha256').update(key).update(`${stack}\0${name}\0${value}`).digest('hex').slice(0, 10);

test('planSecrets: an input secret gets no name offline (no unsalted hash of the value); a generated one keeps its fixed name', () => {
  const p = prepared('x = 1\n');
  const plans = planSecrets(p, { DB_PASSWORD: 'S3CR3T-VALUE' }, []);
  assert.equal(plans.length, 1);
  assert.equal(plans[0].name, '', 'named before connecting');
  assert.equal(displayName(plans[0]), 'app_db_password_<keyed hash computed on the host>');
  const gen = planSecrets(p, {}, ['db_password']);
  assert.deepEqual(gen.map((g) => [g.name, g.source]), [['app_db_password', 'generated']]);
});

test('nameSecrets: the host makes its key once (mode 600) and names each value by a hash keyed with it; the value only on stdin', async () => {
  const host = new FakeHost();
  const plans = planSecrets(prepared('x = 1\n'), { DB_PASSWORD: VALUE }, []);
  await nameSecrets(host, '.deploy-action', plans);
  assert.equal(host.scripts.length, 1, 'one remote command');
  const key = host.key();
  assert.equal(key.length, 32);
  assert.equal(fs.statSync(path.join(host.home, '.deploy-action', 'secret-key')).mode & 0o777, 0o600);
  assert.match(plans[0].name, /^app_db_password_[0-9a-f]{10}$/);
  assert.equal(plans[0].name, `app_db_password_${keyed(key, 'app', 'db_password', VALUE)}`);
  assert.notEqual(plans[0].name.slice(-10), createHash('sha256').update('app\0db_password\0').update(VALUE).digest('hex').slice(0, 10), 'the unsalted hash');
  for (const l of leaks(VALUE)) assert.ok(!host.scripts.some((s) => s.includes(l)), `"${l}" of the value in a script`);
  assert.ok(Buffer.from(host.inputs[0].trim(), 'base64').toString('utf8').endsWith(`\0${VALUE}`), 'the value went through stdin');

  // The same value again: same key, same name (nothing re-created); another host: another key, another name.
  const again = planSecrets(prepared('x = 1\n'), { DB_PASSWORD: VALUE }, []);
  await nameSecrets(host, '.deploy-action', again);
  assert.equal(again[0].name, plans[0].name);
  assert.deepEqual(host.key(), key, 'the key was replaced');
  const other = planSecrets(prepared('x = 1\n'), { DB_PASSWORD: VALUE }, []);
  await nameSecrets(new FakeHost(), '.deploy-action', other);
  assert.notEqual(other[0].name, plans[0].name);
});

test('nameSecrets: one remote command for all the layers of a run; named plans and generated ones cost none', async () => {
  const host = new FakeHost();
  const run: SecretPlan[] = [];
  const a = planSecrets(prepared('x = 1\n'), { DB_PASSWORD: 'first-value' }, [], run);
  const b = planSecrets({ ...prepared('x = 1\n'), name: 'other' }, { DB_PASSWORD: 'second-value' }, [], run);
  await nameSecrets(host, 'deep/dir', a);
  assert.equal(host.scripts.length, 1);
  assert.match(b[0].name, /^other_db_password_[0-9a-f]{10}$/, 'the second layer was named with the first');
  assert.equal(b[0].name.slice(-10), keyed(host.key('deep/dir'), 'other', 'db_password', 'second-value'));
  await nameSecrets(host, 'deep/dir', b);
  await nameSecrets(host, 'deep/dir', planSecrets(prepared('x = 1\n'), {}, ['db_password']));
  assert.equal(host.scripts.length, 1, 'a second command');
});

test('nameSecrets: two runs making the key at once agree on one key', async () => {
  const host = new FakeHost();
  const plans = Array.from({ length: 6 }, () => planSecrets(prepared('x = 1\n'), { DB_PASSWORD: VALUE }, []));
  await Promise.all(plans.map((p) => nameSecrets(host, '.deploy-action', p)));
  assert.equal(new Set(plans.map((p) => p[0].name)).size, 1);
  assert.equal(plans[0][0].name.slice(-10), keyed(host.key(), 'app', 'db_password', VALUE));
  assert.deepEqual(fs.readdirSync(path.join(host.home, '.deploy-action')), ['secret-key'], 'a temp file left');
});

test('nameSecrets: a host that cannot hash is an error that names the host, not the value', async () => {
  const host = new FakeHost();
  fs.writeFileSync(path.join(host.home, 'blocker'), '');
  const plans = planSecrets(prepared('x = 1\n'), { DB_PASSWORD: VALUE }, []);
  await assert.rejects(nameSecrets(host, 'blocker/dir', plans), (e: Error) => e.message.includes('fake@host') && !leaks(VALUE).some((l) => e.message.includes(l)));
  assert.equal(plans[0].name, '');
});

test('ensureSecrets: refuses an unnamed secret; creates a named one with the value on stdin only', async () => {
  const host = new FakeHost();
  const plans = planSecrets(prepared('x = 1\n'), { DB_PASSWORD: VALUE }, []);
  await assert.rejects(ensureSecrets(host, 'app', plans), /not named yet/);
  await nameSecrets(host, '.deploy-action', plans);
  const report = await ensureSecrets(host, 'app', plans);
  assert.deepEqual(report.created, ['db_password']);
  for (const l of leaks(VALUE)) assert.ok(!host.scripts.some((s) => s.includes(l)), `"${l}" of the value in a script`);
  assert.ok(host.inputs.includes(VALUE));
});

test('overrideFile: names the managed secrets and configs, keeps each config entry whole', async () => {
  const p = prepared('x = 1\n');
  const configs = planConfigs(p);
  const secrets = planSecrets(p, { DB_PASSWORD: 'S3CR3T-VALUE' }, []);
  assert.throws(() => overrideFile(p, secrets, configs), /not named yet/);
  // A dry run shows where the host's part goes.
  assert.deepEqual(YAML.parse(overrideFile(p, secrets, configs, { placeholders: true })).secrets, { db_password: { external: true, name: 'app_db_password_<keyed hash computed on the host>' } });
  const upload = overrideUpload(p, secrets, configs);
  await nameSecrets(new FakeHost(), '.deploy-action', secrets);
  const doc = YAML.parse(overrideFile(p, secrets, configs));
  assert.equal(doc.version, '3.8');
  assert.deepEqual(doc.secrets, { db_password: { external: true, name: secrets[0].name } });
  assert.deepEqual(doc.configs, { app_conf: { file: './conf/app.conf', name: configs[0].name } });
  assert.equal(upload.content, overrideFile(p, secrets, configs), 'the upload is written once named');
  assert.equal(YAML.parse(overrideFile(p, secrets)).configs, undefined);
  assert.ok(!overrideFile(p, secrets, configs).includes('S3CR3T-VALUE'), 'a secret value in the override file');
});
