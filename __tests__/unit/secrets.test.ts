import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { createHash } from 'node:crypto';
import { LocalShell, RecordingShell } from '../helpers/host';
import {
  SecretPlan,
  checkShared,
  displayName,
  ensureSecrets,
  nameSecrets,
  overrideFile,
  overrideUpload,
  planConfigs,
  planSecrets,
  pruneSecrets,
} from '../../src/secrets';
import { LoadedStack, loadStack, prepareStack } from '../../src/stack';
import { buildModel } from '../../src/model';

/** The deploy's rendering of a stack, its model built with `env`. */
const prepare = (s: LoadedStack, dir: string, env: Record<string, string>) => prepareStack(buildModel(s, env), dir);

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
  return prepare(loadStack({ name: 'app', files: ['stacks/app.yml'] }, dir), dir, {});
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
 * No Docker here: a docker command succeeds and prints nothing.
 */
class FakeHost extends LocalShell {
  constructor() {
    super('fake@host');
    this.shim('docker', 'cat >/dev/null');
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

const keyed = (key: Buffer, stack: string, name: string, value: string) =>
  createHash('sha256').update(key).update(`${stack}\0${name}\0${value}`).digest('hex').slice(0, 10);

test('planSecrets: an input secret gets no name offline (no unsalted hash of the value); a generated one keeps its fixed name', () => {
  const p = prepared('x = 1\n');
  const plans = planSecrets(p, { DB_PASSWORD: 'S3CR3T-VALUE' }, []);
  assert.equal(plans.length, 1);
  assert.equal(plans[0].name, '', 'named before connecting');
  assert.equal(displayName(plans[0]), 'app_db_password_<keyed hash computed on the host>');
  const gen = planSecrets(p, {}, ['db_password']);
  assert.deepEqual(
    gen.map((g) => [g.name, g.source]),
    [['app_db_password', 'generated']],
  );
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
  assert.notEqual(
    plans[0].name.slice(-10),
    createHash('sha256').update('app\0db_password\0').update(VALUE).digest('hex').slice(0, 10),
    'the unsalted hash',
  );
  for (const l of leaks(VALUE)) assert.ok(!host.scripts.some((s) => s.includes(l)), `"${l}" of the value in a script`);
  assert.ok(
    Buffer.from(host.inputs[0].trim(), 'base64').toString('utf8').endsWith(`\0${VALUE}`),
    'the value went through stdin',
  );

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
  await assert.rejects(
    nameSecrets(host, 'blocker/dir', plans),
    (e: Error) => e.message.includes('fake@host') && !leaks(VALUE).some((l) => e.message.includes(l)),
  );
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
  assert.deepEqual(YAML.parse(overrideFile(p, secrets, configs, { placeholders: true })).secrets, {
    db_password: { external: true, name: 'app_db_password_<keyed hash computed on the host>' },
  });
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

test('shared secrets: one name for every stack declaring the key, given (keyed hash without the stack) or generated', async () => {
  const host = new FakeHost();
  const run: SecretPlan[] = [];
  const infra = planSecrets({ ...prepared('x = 1\n'), name: 'infra' }, { DB_PASSWORD: VALUE }, [], run, [
    'db_password',
  ]);
  const platform = planSecrets({ ...prepared('x = 1\n'), name: 'platform' }, { DB_PASSWORD: VALUE }, [], run, [
    'db_password',
  ]);
  assert.equal(displayName(infra[0]), 'shared_db_password_<keyed hash computed on the host>');
  await nameSecrets(host, '.deploy-action', infra);
  assert.equal(host.scripts.length, 1, 'one remote command for both layers');
  assert.equal(infra[0].name, platform[0].name);
  assert.equal(infra[0].name, `shared_db_password_${keyed(host.key(), '', 'db_password', VALUE)}`);
  // Not shared: each stack its own name, as before.
  const own = planSecrets({ ...prepared('x = 1\n'), name: 'infra' }, { DB_PASSWORD: VALUE }, []);
  await nameSecrets(host, '.deploy-action', own);
  assert.equal(own[0].name, `infra_db_password_${keyed(host.key(), 'infra', 'db_password', VALUE)}`);
  // A new value: a new shared name, for both.
  const run2: SecretPlan[] = [];
  const a = planSecrets({ ...prepared('x = 1\n'), name: 'infra' }, { DB_PASSWORD: 'rotated' }, [], run2, [
    'db_password',
  ]);
  const b = planSecrets({ ...prepared('x = 1\n'), name: 'platform' }, { DB_PASSWORD: 'rotated' }, [], run2, [
    'db_password',
  ]);
  await nameSecrets(host, '.deploy-action', a);
  assert.equal(a[0].name, b[0].name);
  assert.notEqual(a[0].name, infra[0].name);
  // Generated and shared: a fixed name without the stack.
  assert.deepEqual(
    planSecrets({ ...prepared('x = 1\n'), name: 'infra' }, {}, ['db_password'], [], ['db_password']).map((p) => [
      p.name,
      p.source,
      p.shared,
    ]),
    [['shared_db_password', 'generated', true]],
  );
  // Shared but neither given nor generated, or declared by no stack: errors naming the input.
  assert.throws(
    () => planSecrets(prepared('x = 1\n'), {}, [], [], ['db_password']),
    /Input `shared-secrets`: secret "db_password" of stack "app" is neither given/,
  );
  assert.throws(
    () => checkShared([prepared('x = 1\n')], ['redis_password']),
    /Input `shared-secrets`: no stack of this run \(app\) declares a secret "redis_password"/,
  );
  checkShared([prepared('x = 1\n')], ['db_password']);
});

test('ensureSecrets: a shared secret is labelled shared, not by stack; one created meanwhile by another stack is reused', async () => {
  const host = new FakeHost();
  const plans = planSecrets({ ...prepared('x = 1\n'), name: 'infra' }, { DB_PASSWORD: VALUE }, [], [], ['db_password']);
  await nameSecrets(host, '.deploy-action', plans);
  const report = await ensureSecrets(host, 'infra', plans);
  assert.deepEqual(report.created, ['db_password']);
  const create = host.scripts.find((s) => s.includes('secret create')) ?? '';
  assert.match(create, /--label deploy-action\.shared\\?=true --label deploy-action\.key\\?=db_password /);
  assert.ok(!create.includes('deploy-action.stack='), create);
});

test('ensureSecrets: what it sends and how it reads the answers (a recording host)', async () => {
  const plans: SecretPlan[] = [
    { key: 'db_password', source: 'input', value: VALUE, name: 'shared_db_password_0123456789', shared: true },
    { key: 'api_token', source: 'generated', name: 'infra_api_token' },
    { key: 'old', source: 'input', value: 'x', name: 'infra_old_aaaaaaaaaa' },
  ];
  const host = new RecordingShell([
    { run: ['docker', 'secret', 'ls'], reply: 'infra_old_aaaaaaaaaa\n' },
    // Another stack's deploy created the shared secret between the list and the create.
    { run: ['docker', 'secret', 'create'], reply: { code: 1, stdout: '', stderr: 'already exists' } },
    { run: ['docker', 'secret', 'inspect'], reply: 'shared_db_password_0123456789\n' },
    { sh: /^head -c 32 \/dev\/urandom \| base64 \| tr -d '\\n\/\+=' \| docker secret create / },
  ]);
  const report = await ensureSecrets(host, 'infra', plans);
  assert.deepEqual(report, { created: [], reused: ['db_password', 'old'], generated: ['api_token'] });
  const create = host.calls.find((c) => c.argv?.[2] === 'create');
  assert.deepEqual(create?.argv, [
    'docker',
    'secret',
    'create',
    '--label',
    'deploy-action.shared=true',
    '--label',
    'deploy-action.key=db_password',
    'shared_db_password_0123456789',
    '-',
  ]);
  assert.equal(create?.opts.input, VALUE);
  for (const l of leaks(VALUE)) assert.ok(!host.commands.some((c) => c.includes(l)), `"${l}" of the value sent`);
  assert.match(host.commands[3], /--label deploy-action\.generated\\=true infra_api_token - >\/dev\/null$/);
});

/** A host whose `docker` answers from files: the secrets per label filter, the generated ones, those in use. */
class SwarmHost extends FakeHost {
  constructor(private readonly state: { stack: string[]; shared: string[]; generated: string[]; inUse: string[] }) {
    super();
    const bin = path.join(this.home, '.bin');
    fs.mkdirSync(bin, { recursive: true });
    for (const [k, v] of Object.entries(state))
      fs.writeFileSync(path.join(this.home, k), v.map((n) => `${n}\n`).join(''));
    fs.writeFileSync(
      path.join(bin, 'docker'),
      [
        '#!/bin/sh',
        'echo "$*" >> "$HOME/docker.log"',
        'list() { if [ -f "$HOME/removed" ]; then grep -vxF -f "$HOME/removed" "$1"; else cat "$1"; fi; }',
        'case "$1 $2" in',
        '  "secret ls") case "$*" in *deploy-action.stack=*) list "$HOME/stack";; *deploy-action.shared=true*deploy-action.key=redis_password*) list "$HOME/shared";; esac;;',
        '  "secret inspect") if grep -qx "$5" "$HOME/generated"; then echo true; else echo; fi;;',
        '  "secret rm") if grep -qx "$3" "$HOME/inUse"; then exit 1; fi; echo "$3" >> "$HOME/removed";;',
        'esac',
      ].join('\n'),
      { mode: 0o755 },
    );
  }
  removed(): string[] {
    const f = path.join(this.home, 'removed');
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).sort() : [];
  }
  ledger(stack: string, secrets: string[]): void {
    const dir = path.join(this.home, '.deploy-action', 'stacks', stack);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'ledger.json'),
      JSON.stringify({ version: 1, stack, releases: [{ release: 'r', secrets }] }, null, 2),
    );
  }
}

test("pruneSecrets: never removes a secret another stack's kept release still names, nor a generated one, nor one in use", async () => {
  const host = new SwarmHost({
    stack: ['app_db_password_old', 'app_db_password_new', 'app_api_token'],
    shared: ['shared_redis_password_older', 'shared_redis_password_old', 'shared_redis_password_new'],
    generated: ['app_api_token'],
    inUse: ['app_db_password_old'],
  });
  host.ledger('app', ['app_db_password_new', 'shared_redis_password_new']);
  // The platform stack has not deployed the new value yet: its kept release uses the old shared secret.
  host.ledger('platform', ['shared_redis_password_old']);
  const keep = new Set(['app_db_password_new', 'shared_redis_password_new']);
  const removed = await pruneSecrets(host, 'app', keep, { remoteDir: '.deploy-action', shared: ['redis_password'] });
  assert.deepEqual(removed, ['shared_redis_password_older']);
  assert.deepEqual(host.removed(), ['shared_redis_password_older']);
  // Once the platform moved on, the old one goes too (and a name in use is still refused by Docker).
  host.ledger('platform', ['shared_redis_password_new']);
  assert.deepEqual(await pruneSecrets(host, 'app', keep, { remoteDir: '.deploy-action', shared: ['redis_password'] }), [
    'shared_redis_password_old',
  ]);
  // Shared secrets are listed by their label and key.
  const log = fs.readFileSync(path.join(host.home, 'docker.log'), 'utf8');
  assert.match(
    log,
    /secret ls --filter label=deploy-action\.shared=true --filter label=deploy-action\.key=redis_password --format/,
  );
});
