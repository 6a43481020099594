// Files the stacks bind-mount, shipped with each release (a rollback gets its own back); one secret
// shared by two stacks and rotated layer by layer; a rollback target that is not known lists the
// releases with their versions. Through dist/index.js against the lab.
import { TestContext, after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ActionRun, runAction } from '../helpers/action';
import {
  LabEnv,
  copyExample,
  docker,
  dockerOk,
  labInputs,
  removeStack,
  requireLab,
  uniqueName,
  waitFor,
} from '../helpers/lab';
import { onHost } from './common';

const NAME = uniqueName('files');
const FILES = `${NAME}-web`;
const INFRA = `${NAME}-infra`;
const PLAT = `${NAME}-plat`;
// The secret key is the test's own: shared secrets are named by key, host-wide.
const KEY = `redis_${randomBytes(3).toString('hex')}`;
const remoteDir = `.deploy-action-test-${NAME}`;
let lab: LabEnv;
let dir: string;
let inputs: Record<string, string>;

const FILES_STACK = `version: "3.8"
services:
  web:
    image: \${REGISTRY}/lab/base:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    volumes:
      - ./www:/www:ro
      - type: bind
        source: ./conf/app.conf
        target: /etc/app.conf
        read_only: true
      - ./conf/keystore.p12:/etc/keystore.p12:ro
    healthcheck:
      # The container reads its bind-mounted config: an empty folder in its place never gets healthy.
      test: ["CMD", "sh", "-c", "grep -q '^greeting' /etc/app.conf && wget -q -O /dev/null http://127.0.0.1:8080/index.html"]
      interval: 2s
      timeout: 2s
      retries: 3
      start_period: 2s
    stop_grace_period: 2s
    networks: [net]
    deploy:
      endpoint_mode: dnsrr
      replicas: 1
      update_config: { parallelism: 1, order: start-first, failure_action: rollback, monitor: 3s }
      rollback_config: { parallelism: 0, order: start-first }
      restart_policy: { condition: any, delay: 1s }
networks:
  net:
    driver: overlay
    driver_opts: { com.docker.network.driver.mtu: "1450" }
`;

const secretStack = (service: string) => `version: "3.8"
services:
  ${service}:
    image: \${REGISTRY}/lab/base:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    secrets: [${KEY}]
    healthcheck:
      test: ["CMD", "test", "-s", "/run/secrets/${KEY}"]
      interval: 2s
      timeout: 2s
      retries: 3
      start_period: 1s
    stop_grace_period: 2s
    networks: [net]
    deploy:
      endpoint_mode: dnsrr
      replicas: 1
      update_config: { parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s }
      restart_policy: { condition: any, delay: 1s }
networks:
  net:
    driver: overlay
    driver_opts: { com.docker.network.driver.mtu: "1450" }
secrets:
  ${KEY}:
    external: true
`;

const KEYSTORE = Buffer.concat([Buffer.from([0x30, 0x82, 0x00, 0xff, 0xfe, 0x0d, 0x0a, 0x00]), randomBytes(2048)]);
const sha = (v: string | Buffer) => createHash('sha256').update(v).digest('hex');

function write(rel: string, content: string | Buffer): void {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), content);
}

before(async () => {
  lab = await requireLab();
  dir = copyExample();
  write('stacks/files.yml', FILES_STACK);
  write('stacks/infra-secret.yml', secretStack('redis'));
  write('stacks/plat-secret.yml', secretStack('client'));
  write('stacks/conf/keystore.p12', KEYSTORE);
  inputs = { ...labInputs(lab, NAME, remoteDir), stability: '2', timeout: '120', 'lock-timeout': '120' };
});

after(async () => {
  await Promise.all([FILES, PLAT, INFRA].map((s) => removeStack(s)));
  const left = (
    await dockerOk(['secret', 'ls', '--filter', `label=deploy-action.key=${KEY}`, '--format', '{{.Name}}'])
  ).trim();
  if (left) await docker(['secret', 'rm', ...left.split('\n')]);
  await onHost(lab, `chmod -R u+w ${remoteDir} 2>/dev/null; rm -rf ${remoteDir}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs the action and reports how long it took (the test's measured figures). */
async function timed(t: TestContext, what: string, run: Promise<ActionRun>): Promise<ActionRun> {
  const r = await run;
  t.diagnostic(`${what}: exit ${r.code}, ${(r.durationMs / 1000).toFixed(1)} s`);
  return r;
}

const deployFiles = (t: TestContext, release: string) =>
  timed(
    t,
    `deploy ${release}`,
    runAction({ inputs: { ...inputs, stacks: `${FILES}=stacks/files.yml`, command: 'deploy', release }, cwd: dir }),
  );
const rollbackFiles = (t: TestContext, to: string) =>
  timed(
    t,
    `rollback-to ${to}`,
    runAction({
      inputs: { ...inputs, stacks: `${FILES}=stacks/files.yml`, command: 'rollback', 'rollback-to': to },
      cwd: dir,
    }),
  );

async function containerOf(service: string): Promise<string> {
  return waitFor(
    async () => {
      const ids = (
        await dockerOk([
          'ps',
          '-q',
          '--filter',
          `label=com.docker.swarm.service.name=${service}`,
          '--filter',
          'status=running',
        ])
      )
        .trim()
        .split('\n')
        .filter(Boolean);
      return ids.length === 1 ? ids[0] : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 300, what: `one running container of ${service}` },
  );
}

/** What the container sees: the page httpd serves from the bind-mounted folder, the config, the keystore's hash. */
async function seen(): Promise<{ page: string; conf: string; keystore: string }> {
  const id = await containerOf(`${FILES}_web`);
  return {
    page: (await dockerOk(['exec', id, 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/index.html'])).trim(),
    conf: (await dockerOk(['exec', id, 'cat', '/etc/app.conf'])).trim(),
    keystore: (await dockerOk(['exec', id, 'sha256sum', '/etc/keystore.p12'])).split(' ')[0],
  };
}

const taskIds = async (service: string) =>
  (await dockerOk(['service', 'ps', '-q', '--filter', 'desired-state=running', service])).trim();

test(
  'a missing bind-mounted file: a pre-flight error with file and line, nothing deployed',
  { timeout: 120_000 },
  async (t) => {
    const r = await deployFiles(t, 'f0');
    assert.notEqual(r.code, 0);
    assert.match(
      r.errors.join('\n'),
      /stacks\/files\.yml:7:9 \[missing-file\] Service web: bind mount source \.\/www does not exist/,
    );
    assert.match(
      r.errors.join('\n'),
      /stacks\/files\.yml:9:9 \[missing-file\] Service web: bind mount source \.\/conf\/app\.conf does not exist/,
    );
    assert.equal((await docker(['service', 'inspect', `${FILES}_web`])).code, 1, 'a service was created');
  },
);

test(
  'bind-mounted files reach the container byte for byte, a changed one in the next release, an unchanged one rolls nothing; a rollback gets its own back',
  { timeout: 300_000 },
  async (t) => {
    write('stacks/www/index.html', 'page v1');
    write('stacks/conf/app.conf', 'greeting = v1\n');
    const r1 = await deployFiles(t, 'f1');
    assert.equal(r1.code, 0, r1.maskedLog.slice(-3000));
    assert.deepEqual(await seen(), { page: 'page v1', conf: 'greeting = v1', keystore: sha(KEYSTORE) });
    assert.match(
      r1.log,
      new RegExp(
        `Bind-mounted files of ${FILES}: shipped stacks/www/ \\([0-9a-f]{16}\\), stacks/conf/app\\.conf \\([0-9a-f]{16}\\), stacks/conf/keystore\\.p12 \\([0-9a-f]{16}\\)\\.`,
      ),
    );
    // On the host: the uploaded stack file points at the shipped copies, kept under the content hash.
    const host = await onHost(
      lab,
      `cd ${remoteDir}/stacks/${FILES} && cat releases/*-f1/stacks/files.yml && ls files && sha256sum files/*/keystore.p12`,
    );
    assert.equal(host.code, 0, host.stderr);
    assert.match(host.stdout, /- "\.\.\/\.\.\/\.\.\/files\/[0-9a-f]{16}\/www:\/www:ro"/);
    assert.match(host.stdout, new RegExp(`${sha(KEYSTORE)}  files/[0-9a-f]{16}/keystore\\.p12`));

    write('stacks/www/index.html', 'page v2');
    write('stacks/conf/app.conf', 'greeting = v2\n');
    const r2 = await deployFiles(t, 'f2');
    assert.equal(r2.code, 0, r2.maskedLog.slice(-3000));
    assert.deepEqual(await seen(), { page: 'page v2', conf: 'greeting = v2', keystore: sha(KEYSTORE) });
    assert.match(
      r2.log,
      /shipped stacks\/www\/ \([0-9a-f]{16}\), stacks\/conf\/app\.conf \([0-9a-f]{16}\); unchanged stacks\/conf\/keystore\.p12/,
    );

    // The same files again: the same paths, the task keeps running.
    const tasks = await taskIds(`${FILES}_web`);
    const r3 = await deployFiles(t, 'f3');
    assert.equal(r3.code, 0, r3.maskedLog.slice(-3000));
    assert.match(r3.log, /Bind-mounted files of [^:]+: unchanged stacks\/www\//);
    assert.equal(await taskIds(`${FILES}_web`), tasks, 'an unchanged file replaced the task');

    const back = await rollbackFiles(t, 'f1');
    assert.equal(back.code, 0, back.maskedLog.slice(-3000));
    assert.deepEqual(await seen(), { page: 'page v1', conf: 'greeting = v1', keystore: sha(KEYSTORE) });
  },
);

test(
  "an unknown rollback-to lists the known releases newest first, with their services' versions and time; nothing changes",
  { timeout: 120_000 },
  async (t) => {
    const tasks = await taskIds(`${FILES}_web`);
    const r = await rollbackFiles(t, 'f9');
    assert.notEqual(r.code, 0);
    const at = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d';
    assert.match(
      r.errors.join('\n'),
      new RegExp(
        `no successful release "f9" on record\\. Known releases, newest first \\(UTC\\):\\n  f1: web 1 — ${at} \\(rolled back to, current\\)\\n  f3: web 1 — ${at}\\n  f2: web 1 — ${at}(\\n|$)`,
      ),
    );
    assert.equal(await taskIds(`${FILES}_web`), tasks);
  },
);

async function secretOf(service: string): Promise<string> {
  return (
    await dockerOk([
      'service',
      'inspect',
      service,
      '--format',
      '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}}{{end}}',
    ])
  ).trim();
}

const deploySecret = (t: TestContext, value: string, release: string) =>
  timed(
    t,
    `deploy ${release} (two layers)`,
    runAction({
      inputs: {
        ...inputs,
        stacks: `${INFRA}=stacks/infra-secret.yml\n${PLAT}=stacks/plat-secret.yml`,
        command: 'deploy',
        release,
        secrets: `${KEY}=${value}`,
        'shared-secrets': KEY,
        'keep-releases': '1',
      },
      cwd: dir,
    }),
  );

test(
  'one secret shared by two stacks, rotated: both end on the new one, infra first, the old one removed once no ledger names it',
  { timeout: 300_000 },
  async (t) => {
    const v1 = `v1-${randomBytes(12).toString('hex')}`;
    const v2 = `v2-${randomBytes(12).toString('hex')}`;
    const r1 = await deploySecret(t, v1, 's1');
    assert.equal(r1.code, 0, r1.maskedLog.slice(-3000));
    const first = await secretOf(`${INFRA}_redis`);
    assert.match(first, new RegExp(`^shared_${KEY}_[0-9a-f]{10}$`));
    assert.equal(await secretOf(`${PLAT}_client`), first, 'the two stacks use two secrets');
    for (const s of [`${INFRA}_redis`, `${PLAT}_client`])
      assert.equal(
        (await dockerOk(['exec', await containerOf(s), 'sha256sum', `/run/secrets/${KEY}`])).split(' ')[0],
        sha(v1),
      );

    const r2: ActionRun = await deploySecret(t, v2, 's2');
    assert.equal(r2.code, 0, r2.maskedLog.slice(-3000));
    const second = await secretOf(`${INFRA}_redis`);
    assert.notEqual(second, first);
    assert.equal(await secretOf(`${PLAT}_client`), second);
    for (const s of [`${INFRA}_redis`, `${PLAT}_client`])
      assert.equal(
        (await dockerOk(['exec', await containerOf(s), 'sha256sum', `/run/secrets/${KEY}`])).split(' ')[0],
        sha(v2),
      );
    // Layer order: the platform's rolling update started after the infra's completed.
    const when = async (s: string, f: string) =>
      Date.parse(
        (await dockerOk(['service', 'inspect', s, '--format', `{{.UpdateStatus.${f}}}`]))
          .trim()
          .replace(/ \+0000 UTC$/, 'Z')
          .replace(' ', 'T'),
      );
    const infraDone = await when(`${INFRA}_redis`, 'CompletedAt');
    const platStart = await when(`${PLAT}_client`, 'StartedAt');
    assert.ok(
      Number.isFinite(infraDone) && Number.isFinite(platStart) && infraDone <= platStart,
      `infra completed ${infraDone}, platform started ${platStart}`,
    );
    // The old secret: kept while the platform's kept release named it (the infra layer's prune), removed with the platform's.
    const infraAt = r2.log.indexOf(`::group::Layer ${INFRA}`);
    const platAt = r2.log.indexOf(`::group::Layer ${PLAT}`);
    const removedAt = r2.log.indexOf(`Removed secrets no kept release uses: ${first}`);
    assert.ok(
      infraAt >= 0 && platAt > infraAt && removedAt > platAt,
      `infra ${infraAt}, platform ${platAt}, removed ${removedAt}`,
    );
    assert.equal((await docker(['secret', 'inspect', first])).code, 1, 'the old shared secret is still there');
    for (const r of [r1, r2])
      for (const v of [v1, v2]) assert.ok(!r.maskedLog.includes(v), 'a secret value in the log');
  },
);
