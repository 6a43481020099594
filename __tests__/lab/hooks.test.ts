// Hooks pre-deploy, post-deploy and on-failure end to end through dist/index.js on the lab: they run on
// the host with the DEPLOY_* variables; a failing pre-deploy changes nothing; on-failure runs after the rollback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LabEnv, removeStack, requireLab, tempDir, uniqueName, dockerOk } from '../helpers/lab';
import { freePort, proxyLabRelease } from './proxy-lab';
import { stackFingerprint } from './common';

const name = uniqueName('hook');
const remoteDir = `.deploy-action-${name}`;
const out = tempDir('hooks-out-');
let lab: LabEnv;
let port = 0;

const release = (version: string, mode: string, deploy: Record<string, string>) =>
  proxyLabRelease({ lab, name, remoteDir, port, extra: { 'hook-timeout': '30' } }, version, mode, deploy);

const image = async () =>
  (
    await dockerOk(['service', 'inspect', `${name}-app_site`, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])
  ).trim();
const record = (file: string) =>
  `{ echo "$DEPLOY_HOOK $DEPLOY_STACK $DEPLOY_LAYER/$DEPLOY_LAYERS $DEPLOY_RELEASE $DEPLOY_RESULT"; echo "before=$DEPLOY_VERSIONS_BEFORE"; echo "after=$DEPLOY_VERSIONS_AFTER"; } >> ${out}/${file}`;

before(async () => {
  lab = await requireLab();
  port = await freePort();
});

after(async () => {
  await removeStack(`${name}-app`).catch(() => undefined);
  await removeStack(`${name}-infra`).catch(() => undefined);
  fs.rmSync(path.join(os.homedir(), remoteDir), { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
});

test(
  'hooks: post-deploy gets the variables; a failing pre-deploy changes nothing; on-failure runs after the rollback',
  { timeout: 300_000 },
  async () => {
    const t0 = Date.now();
    const first = await release('1.0.0', 'ok', {
      'pre-deploy': `${record('pre')}; echo backing up "$DEPLOY_STACK"`,
      'post-deploy': record('post'),
    });
    assert.equal(first.code, 0, first.maskedLog.slice(-4000));
    assert.match(first.log, /::group::Hook pre-deploy \(hook-[0-9a-f]+-infra, layer 1\/2\)/);
    assert.match(first.log, /backing up hook-[0-9a-f]+-infra/);
    const post = fs.readFileSync(path.join(out, 'post'), 'utf8');
    assert.match(post, new RegExp(`post-deploy ${name}-infra 1/2 1.0.0 deployed`));
    assert.match(
      post,
      new RegExp(
        `post-deploy ${name}-app 2/2 1.0.0 deployed\\nbefore=\\{"${name}-app_site":"—"\\}\\nafter=\\{"${name}-app_site":"1.0.0"\\}`,
      ),
    );
    const pre = fs.readFileSync(path.join(out, 'pre'), 'utf8');
    assert.match(
      pre,
      new RegExp(
        `pre-deploy ${name}-app 2/2 1.0.0 pending\\nbefore=\\{"${name}-app_site":"—"\\}\\nafter=\\{"${name}-app_site":"1.0.0"\\}`,
      ),
    );
    console.log(`first deploy with pre- and post-deploy on 2 layers: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // A failing pre-deploy: the run stops before anything changes.
    const infraBefore = await stackFingerprint(`${name}-infra`);
    const appBefore = await stackFingerprint(`${name}-app`);
    const ledger = path.join(os.homedir(), remoteDir, 'stacks', `${name}-infra`, 'ledger.json');
    const ledgerBefore = fs.readFileSync(ledger, 'utf8');
    const stopped = await release('1.1.0', 'ok', {
      'pre-deploy': 'echo "no backup space" >&2; exit 7',
      'on-failure': record('failure-pre'),
    });
    assert.notEqual(stopped.code, 0);
    assert.equal(stopped.outputs.result, 'failed');
    assert.match(stopped.log, /Hook pre-deploy of hook-[0-9a-f]+-infra exited 7/);
    assert.match(stopped.log, /no backup space/);
    assert.equal(await stackFingerprint(`${name}-infra`), infraBefore);
    assert.equal(await stackFingerprint(`${name}-app`), appBefore);
    assert.equal(fs.readFileSync(ledger, 'utf8'), ledgerBefore);
    assert.match(
      fs.readFileSync(path.join(out, 'failure-pre'), 'utf8'),
      new RegExp(`on-failure ${name}-infra 1/2 1.1.0 failed`),
    );

    // A release that fails its verify: rolled back, then on-failure sees the old version running.
    const failing = await release('1.2.0', 'bad-version', {
      verify: `http://127.0.0.1:${port}/version host=site.example within=3`,
      'on-failure': record('failure'),
    });
    assert.equal(failing.outputs.result, 'rolled-back', failing.maskedLog.slice(-4000));
    const f = fs.readFileSync(path.join(out, 'failure'), 'utf8');
    assert.match(
      f,
      new RegExp(
        `on-failure ${name}-app 2/2 1.2.0 rolled-back\\nbefore=\\{"${name}-app_site":"1.0.0"\\}\\nafter=\\{"${name}-app_site":"1.0.0"\\}`,
      ),
    );
    assert.ok(
      failing.log.indexOf('::group::Hook on-failure') > failing.log.indexOf('::group::Rollback'),
      'on-failure runs after the rollback',
    );
    assert.match(await image(), /site:1\.0\.0@/);
  },
);
