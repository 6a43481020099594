/**
 * prepareStack (what the deploy uploads) and checkStack (the pre-flight) decide alike: a rule switched
 * off for the checks is off for the deploy, and an optional env_file that is missing is dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { checkStack } from '../../src/checks';
import { InputError } from '../../src/errors';
import { LoadedStack, loadStack, prepareStack } from '../../src/stack';
import { buildModel } from '../../src/model';

/** The deploy's rendering of a stack, its model built with `env`. */
const prepare = (s: LoadedStack, dir: string, env: Record<string, string>) => prepareStack(buildModel(s, env), dir);
import { captureStdout } from '../helpers/stdout';

function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stack-unit-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

function quiet<T>(fn: () => T): { value: T; out: string } {
  const stop = captureStdout();
  try {
    const value = fn();
    return { value, out: stop() };
  } catch (e) {
    stop();
    throw e;
  }
}

const UNSET = `services:
  web:
    image: app/web:1
    environment:
      SENTRY_DSN: \${SENTRY_DSN}
  worker:
    image: app/worker:1
    environment:
      QUEUE: \${QUEUE}
    deploy:
      labels:
        deploy-action.skip: unset-variable
`;

test('unset-variable: the deploy refuses what the checks refuse, and follows skip-checks', () => {
  const dir = project({ 'stack.yml': UNSET });
  const stack: LoadedStack = loadStack({ name: 'app', files: ['stack.yml'] }, dir);
  const errors = (s: LoadedStack) =>
    checkStack(s, {}, { skip: s.skip }).filter((f) => f.rule === 'unset-variable' && f.severity === 'error');
  // Not switched off: web's variable fails both; worker's label switches it off for worker in both.
  assert.deepEqual(
    errors(stack).map((f) => f.service),
    ['web'],
  );
  assert.throws(
    () => quiet(() => prepare(stack, dir, {})),
    (e: unknown) =>
      e instanceof InputError &&
      /stack\.yml:5:19: \$\{SENTRY_DSN\} is not set/.test(e.message) &&
      !/QUEUE/.test(e.message),
  );
  // Switched off for the run (input skip-checks): no check error, and the deploy substitutes "" with a warning.
  const skipped: LoadedStack = { ...stack, skip: ['unset-variable'] };
  assert.deepEqual(errors(skipped), []);
  const { value: p, out } = quiet(() => prepare(skipped, dir, {}));
  const data = YAML.parse(String(p.uploads.find((u) => u.rel === 'stack.yml')!.content));
  assert.equal(data.services.web.environment.SENTRY_DSN, '');
  assert.equal(data.services.worker.environment.QUEUE, '');
  assert.match(out, /::warning.*SENTRY_DSN\} is not set.*empty string/);
  assert.match(out, /::warning.*QUEUE\} is not set/);
});

const ENV_FILES = `services:
  web:
    image: app/web:1
    env_file:
      - path: ./conf/optional.env
        required: false
      - path: ./conf/app.env
      - ./conf/extra.env
`;

test('env_file with required: false: a missing file passes the checks and is left out of the deploy', () => {
  const dir = project({ 'stack.yml': ENV_FILES, 'conf/app.env': 'A=1\n', 'conf/extra.env': 'B=2\n' });
  const stack = loadStack({ name: 'app', files: ['stack.yml'] }, dir);
  assert.deepEqual(
    checkStack(stack, {}).filter((f) => f.rule === 'missing-file'),
    [],
  );
  const p = quiet(() => prepare(stack, dir, {})).value;
  assert.deepEqual(p.uploads.map((u) => u.rel).sort(), ['conf/app.env', 'conf/extra.env', 'stack.yml']);
  // docker stack deploy knows only the short syntax ("env_file.0 must be a string"): the upload has it.
  const up = String(p.uploads.find((u) => u.rel === 'stack.yml')!.content);
  assert.deepEqual(YAML.parse(up).services.web.env_file, ['./conf/app.env', './conf/extra.env']);
  // With the optional file present, it is used and uploaded.
  fs.writeFileSync(path.join(dir, 'conf', 'optional.env'), 'C=3\n');
  const q = quiet(() => prepare(stack, dir, {})).value;
  assert.deepEqual(YAML.parse(String(q.uploads.find((u) => u.rel === 'stack.yml')!.content)).services.web.env_file, [
    './conf/optional.env',
    './conf/app.env',
    './conf/extra.env',
  ]);
  assert.ok(q.uploads.some((u) => u.rel === 'conf/optional.env'));
  // Docker's own client reads the uploaded folder (client-side, no daemon).
  if (spawnSync('docker', ['--version']).status === 0) {
    const rel = fs.mkdtempSync(path.join(os.tmpdir(), 'stack-release-'));
    for (const u of p.uploads) {
      fs.mkdirSync(path.dirname(path.join(rel, u.rel)), { recursive: true });
      fs.writeFileSync(path.join(rel, u.rel), u.content);
    }
    const res = spawnSync('docker', ['stack', 'config', '-c', 'stack.yml'], {
      cwd: rel,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, DOCKER_HOST: 'unix:///nonexistent/docker.sock', DOCKER_CONFIG: rel },
    });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /A: "1"|A: '1'|A: "?1"?/);
  }
});

test('env_file: a missing required file fails the checks and the deploy alike', () => {
  const dir = project({ 'stack.yml': ENV_FILES, 'conf/extra.env': 'B=2\n' });
  const stack = loadStack({ name: 'app', files: ['stack.yml'] }, dir);
  assert.deepEqual(
    checkStack(stack, {})
      .filter((f) => f.rule === 'missing-file')
      .map((f) => `${f.line}:${f.col}`),
    ['7:9'],
  );
  assert.throws(() => quiet(() => prepare(stack, dir, {})), /conf\/app\.env does not exist/);
});

test('a binary file a stack references (a config, a keystore) is uploaded byte for byte, not as UTF-8 text', () => {
  const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0a]);
  const dir = project({
    'stack.yml':
      'services:\n  web:\n    image: app/web:1\n    configs: [ks]\nconfigs:\n  ks:\n    file: ./keystore.p12\n',
  });
  fs.writeFileSync(path.join(dir, 'keystore.p12'), bytes);
  const p = quiet(() => prepare(loadStack({ name: 'app', files: ['stack.yml'] }, dir), dir, {})).value;
  const up = p.uploads.find((u) => u.rel === 'keystore.p12');
  assert.ok(
    up && Buffer.isBuffer(up.content) && up.content.equals(bytes),
    'the keystore was not uploaded byte for byte',
  );
});

test('env_file brought in by an anchor or a merge key: the deploy drops a missing optional file, as the checks do', () => {
  const text = `x-common: &common
  env_file: &files
    - path: ./conf/optional.env
      required: false
    - ./conf/app.env
services:
  web:
    <<: *common
    image: app/web:1
  api:
    image: app/api:1
    env_file: *files
`;
  const dir = project({ 'stack.yml': text, 'conf/app.env': 'A=1\n' });
  const stack = loadStack({ name: 'app', files: ['stack.yml'] }, dir);
  assert.deepEqual(
    checkStack(stack, {}).filter((f) => f.rule === 'missing-file'),
    [],
  );
  const p = quiet(() => prepare(stack, dir, {})).value;
  const up = YAML.parse(String(p.uploads.find((u) => u.rel === 'stack.yml')!.content), { merge: true });
  assert.deepEqual(up.services.web.env_file, ['./conf/app.env']);
  assert.deepEqual(up.services.api.env_file, ['./conf/app.env']);
});
