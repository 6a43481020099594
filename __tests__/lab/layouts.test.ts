// The layouts real teams have, through dist/index.js against the lab: images built from the stacks'
// build: sections (one shared Dockerfile with args per app, sources cloned into service/<name>/src),
// a layer of third-party images nobody builds, and a deploy with versions given from outside.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ActionRun, runAction } from '../helpers/action';
import {
  LabEnv,
  docker,
  dockerOk,
  labInputs,
  removeStack,
  requireLab,
  tempDir,
  uniqueName,
  WEB_HEALTHCHECK,
} from '../helpers/lab';
import { onHost, stackFingerprint } from './common';

const ID = uniqueName('lay');
const PREFIX = uniqueName('e2e-lay');
const remoteDir = `.deploy-action-test-${ID}`;
const INFRA = `${ID}-infra`;
const PLATFORM = `${ID}-platform`;
const GLASCK = `${ID}-glasck`;
const ONLY = `${ID}-only`;
let lab: LabEnv;
let thirdParty: string;
const dirs: string[] = [];

// What each run did and how long it took, printed at the end.
const rows: string[] = [];
const row = (what: string, happened: string, r: ActionRun) =>
  rows.push(`| ${what} | ${happened} | ${(r.durationMs / 1000).toFixed(1)} s |`);

before(async () => {
  lab = await requireLab();
  // A pinned "third-party" image: the lab's base image under a name nobody here builds.
  thirdParty = `${lab.registry}/${ID}-vendor/kv:7.2.4`;
  await dockerOk(['tag', lab.baseImage, thirdParty]);
  await dockerOk(['push', thirdParty]);
});

after(async () => {
  console.log(['', '| run | what happened | time |', '| --- | --- | --- |', ...rows, ''].join('\n'));
  for (const s of [ONLY, GLASCK, PLATFORM, INFRA]) await removeStack(s);
  await onHost(lab, `rm -rf ${remoteDir}`);
  const local = (await dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}}']))
    .split('\n')
    .filter((r) => r.includes(`/${PREFIX}/`) || r.includes(`/${ID}-vendor/`));
  if (local.length) await docker(['rmi', '--no-prune', '--force', ...local]);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A repository from relative path → content. */
function repo(files: Record<string, string>): string {
  const dir = tempDir('layouts-');
  dirs.push(dir);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
  return dir;
}

// One Dockerfile for every app: the common layers come before the per-app argument.
const DOCKERFILE = `ARG BASE=lab/base:1
FROM \${BASE}
RUN mkdir -p /www && echo ok > /www/health && echo common > /www/common
ARG APP=none
ARG VERSION=0
RUN echo "$APP $VERSION" > /www/version
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
`;

/** A stack service serving /version on 8080 with a 1 s healthcheck. */
function service(name: string, image: string, extra = ''): string {
  return `  ${name}:
    image: ${image}
${extra}${WEB_HEALTHCHECK}    stop_grace_period: 2s
    deploy:
      endpoint_mode: dnsrr
      replicas: 1
      update_config: { parallelism: 1, order: start-first, failure_action: rollback, monitor: 2s }
      restart_policy: { condition: any, delay: 1s }
`;
}

function inputs(stacks: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...labInputs(lab, PREFIX, remoteDir),
    stacks,
    stability: '1',
    timeout: '120',
    'lock-timeout': '120',
    ...extra,
  };
}

/** What the running task of a Swarm service answers on /version. */
async function served(svc: string): Promise<string> {
  const id = (await dockerOk(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${svc}`]))
    .trim()
    .split('\n')[0];
  return (await dockerOk(['exec', id, 'cat', '/www/version'])).trim();
}

test(
  'Sprocket-shaped: a root Dockerfile built for two apps with different args, versions from x-version-file, a third-party infra layer; no service/ folder',
  { timeout: 240_000 },
  async () => {
    const dir = repo({
      'dockerfiles/node.Dockerfile': DOCKERFILE,
      'apps/orders/VERSION': '1.0.0\n',
      'apps/billing/VERSION': '2.0.0\n',
      'stacks/infra.yml': `services:\n${service('kv', thirdParty, '    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/health && echo kv > /www/version && exec httpd -f -p 8080 -h /www"]\n')}`,
      'stacks/platform.yml': `services:\n${['orders', 'billing']
        .map((app) =>
          service(
            app,
            `\${REGISTRY}/\${IMAGE_PREFIX}/${app}:\${${app.toUpperCase()}_VERSION}`,
            `    x-version-file: ../apps/${app}/VERSION\n    build:\n      context: ..\n      dockerfile: dockerfiles/node.Dockerfile\n      args:\n        APP: ${app}\n      labels:\n        com.example.app: ${app}\n`,
          ),
        )
        .join('')}`,
    });
    assert.ok(!fs.existsSync(path.join(dir, 'service')));
    const stacks = `${INFRA}=stacks/infra.yml\n${PLATFORM}=stacks/platform.yml`;

    const b = await runAction({ inputs: { ...inputs(stacks), command: 'build' }, cwd: dir });
    assert.equal(b.code, 0, b.maskedLog.slice(-3000));
    assert.equal(b.outputs.result, 'built');
    assert.deepEqual(JSON.parse(b.outputs.versions), { orders: '1.0.0', billing: '2.0.0' });
    assert.match(
      JSON.parse(b.outputs.images).billing,
      new RegExp(`^${lab.registry}/${PREFIX}/billing:2\\.0\\.0@sha256:[0-9a-f]{64}$`),
    );
    // The second app's build reuses the first one's common layers (the shared Dockerfile's cache).
    const second = b.log.slice(b.log.indexOf('Build billing 2.0.0'));
    assert.match(second, /RUN mkdir -p \/www[^\n]*\n ---> Using cache/, second.slice(0, 2000));
    const label = (
      await dockerOk([
        'image',
        'inspect',
        `${lab.registry}/${PREFIX}/orders:1.0.0`,
        '--format',
        '{{index .Config.Labels "com.example.app"}}',
      ])
    ).trim();
    assert.equal(label, 'orders');
    row(
      'Sprocket build: 2 apps from dockerfiles/node.Dockerfile',
      'built and pushed; billing reused the common layers',
      b,
    );

    const d = await runAction({ inputs: { ...inputs(stacks), command: 'deploy', release: 'r1' }, cwd: dir });
    assert.equal(d.code, 0, d.maskedLog.slice(-3000));
    assert.equal(d.outputs.result, 'deployed');
    const check = /Registry: the 3 image\(s\) of the stacks [^\n]* in ([\d.]+) s\)/.exec(d.log);
    assert.ok(check, d.maskedLog.slice(-3000));
    assert.equal(await served(`${PLATFORM}_orders`), 'orders 1.0.0');
    assert.equal(await served(`${PLATFORM}_billing`), 'billing 2.0.0');
    assert.equal(await served(`${INFRA}_kv`), 'kv');
    row(
      'Sprocket deploy: infra (third-party) + platform',
      `deployed; orders 1.0.0, billing 2.0.0 served; the registry check of 3 images took ${check[1]} s`,
      d,
    );

    // Unchanged versions are not rebuilt.
    const again = await runAction({ inputs: { ...inputs(stacks), command: 'build' }, cwd: dir });
    assert.equal(again.code, 0, again.maskedLog.slice(-3000));
    assert.equal((again.log.match(/is already in the registry/g) ?? []).length, 2);
    assert.doesNotMatch(again.log, /Build orders|Build billing/);
    row('Sprocket build again, versions unchanged', 'nothing rebuilt', again);
  },
);

test(
  'Glasck-shaped: sources cloned into service/<name>/src, build.context pointing into them, VERSION beside',
  { timeout: 180_000 },
  async () => {
    const dir = repo({
      'service/api/VERSION': '1.3.0\n',
      'service/api/src/Dockerfile': DOCKERFILE.replace('ARG APP=none', 'ARG APP=api'),
      'service/api/src/README.md': 'the API repository, cloned\n',
      'stacks/app.yml': `services:\n${service('api', '${REGISTRY}/${IMAGE_PREFIX}/api:${API_VERSION}', '    build:\n      context: ../service/api/src\n')}`,
    });
    const stacks = `${GLASCK}=stacks/app.yml`;
    const b = await runAction({ inputs: { ...inputs(stacks), command: 'build' }, cwd: dir });
    assert.equal(b.code, 0, b.maskedLog.slice(-3000));
    assert.deepEqual(JSON.parse(b.outputs.versions), { api: '1.3.0' });
    const d = await runAction({ inputs: { ...inputs(stacks), command: 'deploy', release: 'g1' }, cwd: dir });
    assert.equal(d.code, 0, d.maskedLog.slice(-3000));
    assert.equal(await served(`${GLASCK}_api`), 'api 1.3.0');
    row('Glasck build + deploy: service/api/src as build context', 'deployed; api 1.3.0 served', d);
  },
);

test(
  'deploy-only: versions from the input alone; a tag missing from the registry is refused by name, nothing changed',
  { timeout: 180_000 },
  async () => {
    // The images were built by another repository (the Sprocket test pushed orders 1.0.0).
    const dir = repo({
      'stacks/only.yml': `services:\n${service('orders', '${REGISTRY}/${IMAGE_PREFIX}/orders:${ORDERS_VERSION}')}`,
    });
    const stacks = `${ONLY}=stacks/only.yml`;
    const ok = await runAction({
      inputs: { ...inputs(stacks), command: 'deploy', release: 'o1', versions: '{"orders":"1.0.0"}' },
      cwd: dir,
    });
    assert.equal(ok.code, 0, ok.maskedLog.slice(-3000));
    assert.equal(ok.outputs.result, 'deployed');
    assert.deepEqual(JSON.parse(ok.outputs.versions), { orders: '1.0.0' });
    assert.equal(await served(`${ONLY}_orders`), 'orders 1.0.0');
    row('deploy-only, versions {"orders":"1.0.0"}', 'deployed; orders 1.0.0 served', ok);

    const fingerprint = await stackFingerprint(ONLY);
    const ledger = async () => (await onHost(lab, `cat ${remoteDir}/stacks/${ONLY}/ledger.json`)).stdout;
    const ledgerBefore = await ledger();
    const missing = `${lab.registry}/${PREFIX}/orders:9.9.9`;
    const bad = await runAction({
      inputs: { ...inputs(stacks), command: 'deploy', release: 'o2', versions: 'orders=9.9.9' },
      cwd: dir,
    });
    assert.notEqual(bad.code, 0);
    assert.equal(bad.outputs.result, 'failed');
    assert.ok(
      bad.errors.some(
        (e) => e.includes('not in the registry; nothing was deployed') && e.includes(`${missing} (${ONLY}/orders)`),
      ),
      bad.errors.join('\n'),
    );
    assert.equal(await stackFingerprint(ONLY), fingerprint, 'the stack changed');
    assert.equal(await ledger(), ledgerBefore, 'the ledger changed');
    assert.equal(await served(`${ONLY}_orders`), 'orders 1.0.0');
    row(
      'deploy-only, versions orders=9.9.9 (never pushed)',
      `failed naming ${missing}; stack and ledger unchanged`,
      bad,
    );

    // A dry run only warns: it may run before the images are pushed.
    const dry = await runAction({
      inputs: { ...inputs(stacks), command: 'deploy', release: 'o3', versions: 'orders=9.9.9', 'dry-run': 'true' },
      cwd: dir,
    });
    assert.equal(dry.code, 0, dry.maskedLog.slice(-3000));
    assert.equal(dry.outputs.result, 'checked');
    assert.ok(
      dry.warnings.some((w) => w.includes('Not in the registry') && w.includes(missing)),
      dry.warnings.join('\n'),
    );
    row('dry-run, versions orders=9.9.9', 'checked; the missing image is a warning', dry);
  },
);
