// Secrets and configs (issue 7): values from the `secrets` input become content-addressed Docker
// secrets, generated ones are created once, configs read from files are named by their content, old
// ones go, a bad one rolls back, and no value leaks.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ActionRun, runAction } from '../helpers/action';
import { LabEnv, copyExample, docker, dockerOk, labInputs, removeStack, requireLab, uniqueName } from '../helpers/lab';
import { onHost, removeLocalImages, stackFingerprint } from './common';

const STACK = 'sec-app';
let lab: LabEnv;
let dir: string;
let inputs: Record<string, string>;
const remoteDir = `.deploy-action-test-${uniqueName('sec')}`;
const values = {
  good1: `good-${randomBytes(12).toString('hex')}`,
  good2: `good-${randomBytes(12).toString('hex')}`,
  bad: `bad-${randomBytes(12).toString('hex')}`,
};

const STACK_FILE = `version: "3.8"
services:
  web:
    image: \${WEB_IMAGE}
    secrets: [db_password, api_token]
    configs:
      - source: app_conf
        target: /etc/app.conf
    healthcheck:
      # The app needs a good db_password: a bad one never becomes healthy.
      test: ["CMD", "sh", "-c", "grep -q '^good-' /run/secrets/db_password && test -s /run/secrets/api_token && wget -q -O /dev/null http://127.0.0.1:8080/health"]
      interval: 2s
      timeout: 2s
      retries: 2
      start_period: 2s
    stop_grace_period: 2s
    networks: [net]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      update_config: { parallelism: 1, order: start-first, failure_action: rollback, monitor: 3s, delay: 0s }
      rollback_config: { parallelism: 0, order: start-first }
      restart_policy: { condition: any, delay: 1s }
networks:
  net:
    driver: overlay
    driver_opts: { com.docker.network.driver.mtu: "1450" }
secrets:
  db_password:
    external: true
  api_token:
    external: true
configs:
  app_conf:
    file: ./app.conf
`;
const CONF = { v1: 'greeting = hello\n', v2: 'greeting = hello again\n' };
const writeConf = (text: string) => fs.writeFileSync(path.join(dir, 'stacks', 'app.conf'), text);

before(async () => {
  lab = await requireLab();
  await removeStack(STACK);
  dir = copyExample();
  fs.writeFileSync(path.join(dir, 'stacks', 'secrets.yml'), STACK_FILE);
  writeConf(CONF.v1);
  inputs = {
    ...labInputs(lab, uniqueName('e2e-sec'), remoteDir),
    stacks: `${STACK}=stacks/secrets.yml`,
    stability: '2',
    timeout: '120',
    'keep-releases': '1',
    'generate-secrets': 'api_token',
  };
  const build = await runAction({ inputs: { ...inputs, command: 'build' }, cwd: dir });
  assert.equal(build.code, 0, build.maskedLog.slice(-2000));
  await removeLocalImages(inputs['image-prefix'], ['web', 'api'], lab);
});

after(async () => {
  await removeStack(STACK);
  const left = (await dockerOk(['secret', 'ls', '-q', '--filter', `label=deploy-action.stack=${STACK}`])).trim();
  if (left) await docker(['secret', 'rm', ...left.split('\n')]);
  const confs = (
    await dockerOk(['config', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${STACK}`])
  ).trim();
  if (confs) await docker(['config', 'rm', ...confs.split('\n')]);
  await onHost(lab, `rm -rf ${remoteDir}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Every run is scanned as it ends, so each test proves it for its own runs: no secret value in the
 * log, post log, summary or outputs; the value it was given (`given`) masked; and no value in any
 * file the action leaves on the host (remote-dir, ~/.docker).
 */
async function assertNoLeak(r: ActionRun, given?: string): Promise<void> {
  const text = [r.log, r.postLog, r.summary, JSON.stringify(r.outputs)]
    .join('\n')
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
  for (const v of Object.values(values)) assert.ok(!text.includes(v), 'a secret value appears in the job output');
  if (given) assert.ok(r.masks.includes(given), 'the value was not masked');
  const patterns = Object.values(values)
    .map((v) => `-e ${JSON.stringify(v)}`)
    .join(' ');
  const host = await onHost(lab, `grep -rlF ${patterns} ${remoteDir} ~/.docker 2>/dev/null; echo done`);
  assert.equal(host.stdout.trim(), 'done', `a secret value is in a file on the host: ${host.stdout}`);
}

async function deploy(dbPassword: string, release: string): Promise<ActionRun> {
  const r = await runAction({
    inputs: { ...inputs, command: 'deploy', release, secrets: `DB_PASSWORD=${dbPassword}` },
    cwd: dir,
  });
  await assertNoLeak(r, dbPassword);
  return r;
}

async function secretNames(): Promise<string[]> {
  return (await dockerOk(['secret', 'ls', '--filter', `label=deploy-action.stack=${STACK}`, '--format', '{{.Name}}']))
    .trim()
    .split('\n')
    .filter(Boolean)
    .sort();
}

async function configNames(): Promise<string[]> {
  return (
    await dockerOk(['config', 'ls', '--filter', `label=com.docker.stack.namespace=${STACK}`, '--format', '{{.Name}}'])
  )
    .trim()
    .split('\n')
    .filter(Boolean)
    .sort();
}

/** sha256 of a file inside each running container (a secret by default): proves the content without printing it. */
async function inContainer(file: string): Promise<Set<string>> {
  const ids = (await dockerOk(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_web`]))
    .trim()
    .split('\n')
    .filter(Boolean);
  const hashes = new Set<string>();
  for (const id of ids)
    hashes.add(
      (await dockerOk(['exec', id, 'sha256sum', file.startsWith('/') ? file : `/run/secrets/${file}`])).split(' ')[0],
    );
  return hashes;
}
const sha = (v: string) => createHash('sha256').update(v).digest('hex');

let tokenId = '';
let tokenHash = '';

test('a secret from the input and a generated one reach the containers', { timeout: 180_000 }, async () => {
  const r = await deploy(values.good1, 's1');
  assert.equal(r.code, 0, r.maskedLog.slice(-3000));
  const names = await secretNames();
  assert.equal(names.length, 2, names.join(','));
  assert.ok(names.includes(`${STACK}_api_token`));
  assert.ok(names.some((n) => /^sec-app_db_password_[0-9a-f]{10}$/.test(n)));
  assert.deepEqual([...(await inContainer('db_password'))], [sha(values.good1)]);
  const token = await inContainer('api_token');
  assert.equal(token.size, 1);
  tokenHash = [...token][0];
  tokenId = (await dockerOk(['secret', 'inspect', '--format', '{{.ID}}', `${STACK}_api_token`])).trim();
  assert.match(r.log, /Secrets of sec-app: created db_password; generated api_token \(value never shown\)/);
  assert.match(r.summary, /^> Secrets of sec-app: created db_password; generated api_token \(value never shown\)\.$/m);
  // The config read from stacks/app.conf is named by its content, and the containers see that content.
  const confs = await configNames();
  assert.equal(confs.length, 1, confs.join(','));
  assert.match(confs[0], /^sec-app_app_conf_[0-9a-f]{10}$/);
  assert.deepEqual([...(await inContainer('/etc/app.conf'))], [sha(CONF.v1)]);
});

test('the same value again: same secret, no rolling update', { timeout: 180_000 }, async () => {
  // The spec, not the task ids: under load Swarm replaces a task whose healthcheck timed out.
  const before = await stackFingerprint(STACK);
  const names = await secretNames();
  const confs = await configNames();
  const r = await deploy(values.good1, 's2');
  assert.equal(r.code, 0, r.maskedLog.slice(-3000));
  assert.deepEqual(await secretNames(), names);
  assert.deepEqual(await configNames(), confs, 'the same config file got a new config');
  assert.equal(await stackFingerprint(STACK), before, 'the service was updated');
});

test(
  'a new value and a changed config file: a new secret and config, the service updated, the old ones removed; the generated one unchanged',
  { timeout: 180_000 },
  async () => {
    const old = (await secretNames()).find((n) => n.includes('db_password'));
    const [oldConf] = await configNames();
    writeConf(CONF.v2);
    const r = await deploy(values.good2, 's3');
    assert.equal(r.code, 0, r.maskedLog.slice(-3000));
    assert.deepEqual([...(await inContainer('db_password'))], [sha(values.good2)]);
    const names = await secretNames();
    assert.ok(!names.includes(old as string), 'the old secret is still there');
    assert.match(r.log, /Removed secrets no kept release uses: sec-app_db_password_/);
    // Without the content name, `docker stack deploy` would fail: "only updates to Labels are allowed".
    assert.deepEqual([...(await inContainer('/etc/app.conf'))], [sha(CONF.v2)]);
    const confs = await configNames();
    assert.equal(confs.length, 1, `old config left: ${confs.join(',')}`);
    assert.notEqual(confs[0], oldConf);
    assert.match(r.log, new RegExp(`Removed configs of earlier releases: ${oldConf}`));
    // Three deploys later, the generated password is the same secret with the same content.
    assert.equal((await dockerOk(['secret', 'inspect', '--format', '{{.ID}}', `${STACK}_api_token`])).trim(), tokenId);
    assert.deepEqual([...(await inContainer('api_token'))], [tokenHash]);
  },
);

test('a new secret that breaks the app: rolled back to the old secret', { timeout: 180_000 }, async () => {
  const r = await deploy(values.bad, 's4');
  assert.notEqual(r.code, 0);
  assert.equal(r.outputs.result, 'rolled-back', r.maskedLog.slice(-3000));
  assert.deepEqual([...(await inContainer('db_password'))], [sha(values.good2)]);
  assert.ok((await secretNames()).some((n) => n.includes('db_password')));
  assert.deepEqual([...(await inContainer('/etc/app.conf'))], [sha(CONF.v2)]);
});

test(
  "a manual rollback puts back the secret and config names its release used, not today's",
  { timeout: 240_000 },
  async () => {
    // s3 (good2, config v2) is the current release. s5 changes both, keeping two releases so s3 stays.
    writeConf(CONF.v1);
    const s5 = await runAction({
      inputs: {
        ...inputs,
        command: 'deploy',
        release: 's5',
        secrets: `DB_PASSWORD=${values.good1}`,
        'keep-releases': '2',
      },
      cwd: dir,
    });
    await assertNoLeak(s5, values.good1);
    assert.equal(s5.code, 0, s5.maskedLog.slice(-3000));
    assert.deepEqual([...(await inContainer('db_password'))], [sha(values.good1)]);
    assert.deepEqual([...(await inContainer('/etc/app.conf'))], [sha(CONF.v1)]);
    // The config of s3 is gone from the swarm (only the current one is kept); its file is in s3's release folder.
    const back = await runAction({
      inputs: { ...inputs, command: 'rollback', 'rollback-to': 'previous', 'keep-releases': '2' },
      cwd: dir,
    });
    // Given no secret value: scanned for the values all the same, nothing to mask.
    await assertNoLeak(back);
    assert.equal(back.code, 0, back.maskedLog.slice(-3000));
    assert.equal(back.outputs.release, 's3');
    assert.deepEqual(
      [...(await inContainer('db_password'))],
      [sha(values.good2)],
      'the rollback did not restore the secret of s3',
    );
    assert.deepEqual(
      [...(await inContainer('/etc/app.conf'))],
      [sha(CONF.v2)],
      'the rollback did not restore the config of s3',
    );
    // The ledger knows secret names only.
    const ledger = await onHost(lab, `cat ${remoteDir}/stacks/${STACK}/ledger.json`);
    const s3 = (JSON.parse(ledger.stdout).releases as { release: string; secrets: string[] }[]).find(
      (r) => r.release === 's3',
    );
    assert.ok(
      s3?.secrets.some((n) => /^sec-app_db_password_[0-9a-f]{10}$/.test(n)),
      JSON.stringify(s3),
    );
  },
);
