// Rollback to any earlier release, the deploy history on the host, and the deploy lock (issue 5),
// through dist/index.js against the real lab.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runAction } from '../helpers/action';
import { LabEnv, copyExample, docker, dockerOk, removeStack, requireLab, uniqueName } from '../helpers/lab';
import * as fs from 'node:fs';
import {
  baseInputs,
  buildAhead,
  exampleStacks,
  onHost,
  release,
  assertBackOn,
  servedVersion,
  serviceState,
  stackFingerprint,
} from './common';

const ex = exampleStacks('rb');
const WEB = `${ex.app}_web`;
let lab: LabEnv;
let inputs: Record<string, string>;
const remoteDir = `.deploy-action-test-${uniqueName('rb')}`;

before(async () => {
  lab = await requireLab();
  inputs = baseInputs(lab, remoteDir, uniqueName('e2e-rb'), 'rb');
  await removeStack(ex.app);
  await removeStack(ex.infra);
});

after(async () => {
  await removeStack(ex.app);
  await removeStack(ex.infra);
  await onHost(lab, `rm -rf ${remoteDir}`);
});

async function rollback(to: string, extra: Record<string, string> = {}) {
  const dir = copyExample();
  try {
    return await runAction({ inputs: { ...inputs, command: 'rollback', 'rollback-to': to, ...extra }, cwd: dir });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function ledger(stack: string): Promise<{
  releases: { release: string; kind: string; result: string; time: string; versions: Record<string, string> }[];
}> {
  const r = await onHost(lab, `cat ${remoteDir}/stacks/${stack}/ledger.json`);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test(
  'deploy 1.0.0, 1.1.0, 1.2.0: each recorded in the ledger with its images and stack files',
  { timeout: 300_000 },
  async () => {
    const versions = ['1.0.0', '1.1.0', '1.2.0'];
    const builds = buildAhead(
      lab,
      inputs,
      versions.map((v) => [v, { web: { version: v } }]),
    );
    for (const v of versions) {
      const r = await release(lab, inputs, v, { web: { version: v } }, { builds });
      assert.equal(r.deploy.code, 0, r.deploy.maskedLog.slice(-3000));
    }
    assert.equal(await servedVersion(WEB), '1.2.0');
    const l = await ledger(ex.app);
    assert.deepEqual(
      l.releases.map((r) => `${r.release}:${r.kind}:${r.result}:${r.versions.web}`),
      ['1.0.0:deploy:deployed:1.0.0', '1.1.0:deploy:deployed:1.1.0', '1.2.0:deploy:deployed:1.2.0'],
    );
    // The interpolated stack file of each release is kept on the host: a rollback does not need the repository.
    const files = await onHost(lab, `grep -h 'web:1\\.' ${remoteDir}/stacks/${ex.app}/releases/*/stacks/app.yml`);
    assert.match(files.stdout, /web:1\.0\.0[\s\S]*web:1\.1\.0[\s\S]*web:1\.2\.0/);
  },
);

test(
  'a dry-run rollback says what it would do and changes nothing: no version, ledger, lock or file',
  { timeout: 120_000 },
  async () => {
    const files = () => onHost(lab, `cd ${remoteDir} && find . | sort && cat stacks/*/ledger.json`);
    const before = await files();
    const r = await rollback('previous', { 'dry-run': 'true' });
    assert.equal(r.code, 0, r.maskedLog.slice(-3000));
    assert.equal(r.outputs.result, 'checked');
    assert.match(r.log, new RegExp(`${WEB}: web:1\\.2\\.0 → web:1\\.1\\.0`));
    assert.match(r.log, /dry-run: nothing was rolled back/);
    assert.equal(await servedVersion(WEB), '1.2.0');
    assert.equal((await files()).stdout, before.stdout, 'the host files and the ledger are byte for byte the same');
  },
);

test('rollback to previous: 1.1.0 runs again, gated, recorded', { timeout: 240_000 }, async () => {
  const r = await rollback('previous');
  assert.equal(r.code, 0, r.maskedLog.slice(-3000));
  assert.equal(r.outputs.result, 'rolled-back');
  assert.equal(r.outputs.release, '1.1.0');
  assert.equal(JSON.parse(r.outputs.versions).web, '1.1.0');
  assert.equal(JSON.parse(r.outputs['versions-before'])[WEB], '1.2.0');
  assert.match(r.log, /Gate: watching 2 service\(s\) of rb-app/);
  assert.match(
    r.summary,
    /rb-app_web \| `[^|`]+\/web:1\.1\.0@sha256:[0-9a-f]{12}` \| 1\.2\.0 → 1\.1\.0 \| 2\/2 \| healthy/,
  );
  assert.equal(await servedVersion(WEB), '1.1.0');
  assertBackOn(await serviceState(WEB), '1.1.0', 2);
  const l = await ledger(ex.app);
  assert.deepEqual(l.releases.at(-1), { ...l.releases.at(-1), release: '1.1.0', kind: 'rollback', result: 'deployed' });
});

test('rollback to 1.0.0 by version', { timeout: 240_000 }, async () => {
  const r = await rollback('1.0.0');
  assert.equal(r.code, 0, r.maskedLog.slice(-3000));
  assert.equal(await servedVersion(WEB), '1.0.0');
});

test('an unknown version: a clear error listing the known ones, nothing changed', { timeout: 120_000 }, async () => {
  const before = `${await stackFingerprint(ex.infra)}\n${await stackFingerprint(ex.app)}`;
  const r = await rollback('9.9.9');
  assert.notEqual(r.code, 0);
  // The first layer answers (infra: cache and proxy run lab/base:1): newest first, each release with
  // its services' versions and time; 1.0.0 and 1.1.0 ran last as rollbacks.
  const at = (v: string) => `${v.replace(/\./g, '\\.')}: cache 1, proxy 1 — \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d`;
  assert.match(
    r.errors.join('\n'),
    new RegExp(
      `no successful release "9\\.9\\.9" on record\\. Known releases, newest first \\(UTC\\):\\n  ${at('1.0.0')} \\(rolled back to, current\\)\\n  ${at('1.1.0')} \\(rolled back to\\)\\n  ${at('1.2.0')}`,
    ),
  );
  assert.equal(`${await stackFingerprint(ex.infra)}\n${await stackFingerprint(ex.app)}`, before);
});

test('a truncated ledger: a clear error, never a crash or an empty history', { timeout: 120_000 }, async () => {
  const file = `${remoteDir}/stacks/${ex.app}/ledger.json`;
  await onHost(lab, `cp ${file} ${file}.bak && head -c 200 ${file}.bak > ${file}`);
  try {
    const before = await stackFingerprint(ex.app);
    // The infra layer's ledger is intact; the app layer's is cut: the rollback stops before touching anything.
    const r = await rollback('1.1.0');
    assert.notEqual(r.code, 0);
    assert.match(
      r.errors.join('\n'),
      new RegExp(`deploy history .*${ex.app}/ledger\\.json of stack "${ex.app}" is corrupt`),
    );
    assert.equal(await stackFingerprint(ex.app), before);
  } finally {
    await onHost(lab, `mv ${file}.bak ${file}`);
  }
});

test(
  'a rollback whose target image is gone from the registry fails clearly; the current version keeps running',
  { timeout: 240_000 },
  async () => {
    // Delete web:1.1.0 from the registry, and the engine's cached copy: the "VPS" must pull it and cannot.
    const repo = `${inputs['image-prefix']}/web`;
    const head = await fetch(`http://${lab.registry}/v2/${repo}/manifests/1.1.0`, {
      method: 'HEAD',
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    const digest = head.headers.get('docker-content-digest');
    assert.ok(digest, 'no digest for web:1.1.0');
    const del = await fetch(`http://${lab.registry}/v2/${repo}/manifests/${digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    const local = (await dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']))
      .split('\n')
      .filter((l) => l.startsWith(`${lab.registry}/${repo}:1.1.0`) || l.includes(digest.slice(7, 19)));
    for (const l of local) await docker(['rmi', '--no-prune', '--force', l.split(' ')[0]]);
    await docker(['rmi', '--force', `${lab.registry}/${repo}@${digest}`]);

    const r = await rollback('1.1.0');
    assert.notEqual(r.code, 0);
    assert.equal(r.outputs.result, 'failed');
    assert.match(r.log, new RegExp(`${WEB}: `));
    assert.match(r.log, /No such image|not found|manifest unknown|pull access denied/i);
    assert.equal(await servedVersion(WEB), '1.0.0');
    assertBackOn(await serviceState(WEB), '1.0.0', 2);
  },
);

test(
  'two deploys at once never interleave: the second waits for the lock; a stale lock is broken',
  { timeout: 300_000 },
  async () => {
    const dir = copyExample({ web: { version: '1.2.0' } });
    try {
      const deploy = (label: string) =>
        runAction({
          inputs: { ...inputs, command: 'deploy', release: label, stacks: `${ex.app}=stacks/app.yml` },
          cwd: dir,
        });
      const [a, b] = await Promise.all([deploy('race-a'), deploy('race-b')]);
      assert.equal(a.code, 0, a.maskedLog.slice(-2000));
      assert.equal(b.code, 0, b.maskedLog.slice(-2000));
      const waited = [a, b].filter((r) => /Waiting for the deploy lock .*, held by glasck/.test(r.log));
      assert.equal(waited.length, 1, 'exactly one of the two deploys waited for the other');
      const l = await ledger(ex.app);
      assert.deepEqual(
        l.releases
          .slice(-2)
          .map((r) => r.release)
          .sort(),
        ['race-a', 'race-b'],
      );

      // A lock left by a run that died an hour ago is broken, loudly.
      const lock = `${remoteDir}/stacks/${ex.app}/lock`;
      await onHost(
        lab,
        `mkdir -p ${lock} && echo '{"run":"gone","actor":"ghost","release":"x","since":"then"}' > ${lock}/holder.json && touch -d '2 hours ago' ${lock}`,
      );
      const c = await deploy('after-stale');
      assert.equal(c.code, 0, c.maskedLog.slice(-2000));
      assert.match(c.log, /Breaking a stale deploy lock .*held by ghost/);
      // A fresh lock held by someone else: with lock-timeout 0 the deploy fails naming the holder.
      await onHost(
        lab,
        `mkdir -p ${lock} && echo '{"run":"https://github.com/o/r/actions/runs/1","actor":"alice","release":"9","since":"now"}' > ${lock}/holder.json`,
      );
      const d = await runAction({
        inputs: {
          ...inputs,
          command: 'deploy',
          release: 'blocked',
          stacks: `${ex.app}=stacks/app.yml`,
          'lock-timeout': '0',
        },
        cwd: dir,
      });
      assert.notEqual(d.code, 0);
      assert.match(
        d.errors.join('\n'),
        /Another deploy holds the lock .* alice \(https:\/\/github\.com\/o\/r\/actions\/runs\/1/,
      );
      assert.equal(
        (await onHost(lab, `test -d ${lock} && echo held`)).stdout.trim(),
        'held',
        "the action must not release someone else's lock",
      );
      await onHost(lab, `rm -rf ${lock}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'two deploys of both layers at once: the second touches no layer until the first finished all of them',
  { timeout: 300_000 },
  async () => {
    const dir = copyExample({ web: { version: '1.2.0' } });
    try {
      const deploy = (label: string) =>
        runAction({ inputs: { ...inputs, command: 'deploy', release: label }, cwd: dir });
      const [a, b] = await Promise.all([deploy('layers-a'), deploy('layers-b')]);
      assert.equal(a.code, 0, a.maskedLog.slice(-2000));
      assert.equal(b.code, 0, b.maskedLog.slice(-2000));
      const [waiter, other] = /Waiting for the deploy lock/.test(a.log) ? [a, b] : [b, a];
      assert.doesNotMatch(other.log, /Waiting for the deploy lock/, 'both deploys waited');
      assert.match(waiter.log, /Waiting for the deploy lock/);
      // The waiter took every lock before its first layer: it never logged a layer before the wait.
      assert.ok(
        waiter.log.indexOf('Waiting for the deploy lock') < waiter.log.indexOf('::group::Layer '),
        'the waiter started a layer before it had all the locks',
      );
      const at = async (stack: string, label: string) =>
        Date.parse((await ledger(stack)).releases.find((r) => r.release === label)!.time);
      const waiterLabel = waiter === a ? 'layers-a' : 'layers-b';
      const otherLabel = waiter === a ? 'layers-b' : 'layers-a';
      // Interleaved (A infra, B infra, A app, B app), the waiter's infra would end before the other's app.
      assert.ok(
        (await at(ex.infra, waiterLabel)) > (await at(ex.app, otherLabel)),
        'the layers of the two deploys interleaved',
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
