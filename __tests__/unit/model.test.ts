/**
 * One model per layer: a deploy's planning (versions, build sections, checks, rendering, secrets,
 * timing) reads and parses each stack file once, and every step sees the same decisions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { planDeploy } from '../../src/plan';
import { readInputs } from '../../src/inputs';
import { StackLoader, buildModel } from '../../src/model';
import { planSecrets } from '../../src/secrets';
import { prepareStack } from '../../src/stack';
import { captured } from '../helpers/stdout';

const EXAMPLE = path.join(__dirname, '..', '..', 'example');
const OVERRIDE = `services:
  web:
    deploy:
      replicas: 3
`;

/** The example project, its app layer given a second file. */
function project(extra: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-unit-'));
  fs.cpSync(EXAMPLE, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'stacks', 'app.override.yml'), OVERRIDE);
  for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

function inputs(dir: string, values: Record<string, string> = {}) {
  const all: Record<string, string> = {
    command: 'deploy',
    host: 'vps.example.com',
    user: 'deploy',
    'ssh-key': 'key',
    'known-hosts': 'vps.example.com ssh-ed25519 AAAA',
    'working-directory': dir,
    registry: 'registry.example.com',
    'image-prefix': 'acme',
    stacks: 'infra=stacks/infra.yml\napp=stacks/app.yml,stacks/app.override.yml',
    ...values,
  };
  return readInputs((n) => all[n] ?? '', { GITHUB_WORKSPACE: dir, GITHUB_REF: 'refs/heads/main', GITHUB_SHA: 'abc' });
}

test('planning a deploy reads and parses each stack file once, over two layers and two files in one', async () => {
  const dir = project();
  const stackFiles = ['infra.yml', 'app.yml', 'app.override.yml'].map((f) => path.join(dir, 'stacks', f));
  const reads = new Map<string, number>();
  const original = fs.readFileSync;
  fs.readFileSync = ((file: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    const abs = typeof file === 'string' ? path.resolve(file) : '';
    if (stackFiles.includes(abs)) reads.set(abs, (reads.get(abs) ?? 0) + 1);
    return (original as (...a: unknown[]) => unknown)(file, ...rest);
  }) as typeof fs.readFileSync;
  let plan;
  try {
    plan = (await captured(() => planDeploy(inputs(dir)))).value;
  } finally {
    fs.readFileSync = original;
  }
  assert.deepEqual(
    stackFiles.map((f) => `${path.basename(f)} ${reads.get(f) ?? 0}`),
    ['infra.yml 1', 'app.yml 1', 'app.override.yml 1'],
  );
  // The plan is built from the merged model: the override's replicas reach the gate's timing.
  assert.deepEqual(
    plan.plans.map((p) => p.stack),
    ['infra', 'app'],
  );
  assert.equal(plan.prepared[1].services.web.replicas, 3);
  assert.deepEqual(plan.plans[1].composePaths, ['stacks/app.yml', 'stacks/app.override.yml']);
});

test('the loader parses a file once and fails a file Docker refuses the same way each time', () => {
  const dir = project({ 'bad.yml': 'services: [\n' });
  const loader = new StackLoader(dir);
  assert.equal(loader.file('stacks/app.yml'), loader.file('stacks/app.yml'));
  assert.throws(() => loader.file('bad.yml'), /invalid YAML/);
  assert.throws(() => loader.file('bad.yml'), /invalid YAML/);
});

const UNSET = `services:
  extra:
    image: registry.example.com/acme/web:1
    environment:
      SENTRY_DSN: \${SENTRY_DSN}
`;

test('skip-checks: unset-variable reaches the deploy: checks and rendering pass, the value is ""; else both refuse', async () => {
  const dir = project({ 'stacks/extra.yml': UNSET });
  const stacks = 'app=stacks/app.yml,stacks/extra.yml';
  await assert.rejects(
    captured(() => planDeploy(inputs(dir, { stacks }))),
    /Pre-flight checks found 1 error.*\n.*extra\.yml:5:19 \[unset-variable\]/,
  );
  const { value: plan, out } = await captured(() =>
    planDeploy(inputs(dir, { stacks, 'skip-checks': 'unset-variable' })),
  );
  const extra = plan.prepared[0].uploads.find((u) => u.rel === 'stacks/extra.yml');
  assert.match(String(extra?.content), /SENTRY_DSN: ""/);
  assert.match(out, /::warning.*SENTRY_DSN\} is not set: substituted an empty string/);
});

test('a secret declared external in the long form (external: {name: …}) is external for the deploy, as for the checks', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'model-unit-'));
  fs.writeFileSync(
    path.join(dir, 'stack.yml'),
    'services:\n  web:\n    image: app/web:1\n    secrets: [db_password]\n' +
      'secrets:\n  db_password:\n    external:\n      name: db_password\n',
  );
  const p = prepareStack(buildModel(new StackLoader(dir).stack({ name: 'app', files: ['stack.yml'] }), {}), dir);
  assert.deepEqual(
    planSecrets(p, { db_password: 'S3CR3T' }, []).map((s) => `${s.key} ${s.source}`),
    ['db_password input'],
  );
});
