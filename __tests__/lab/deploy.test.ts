// The deploy pipeline end to end: VERSION → build → push → SSH → layered stack deploy → health gate,
// driven through dist/index.js like the runner does, against the real lab.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ActionRun, runAction } from '../helpers/action';
import { LabEnv, ServiceChange, copyExample, docker, dockerOk, requireLab, uniqueName, waitFor } from '../helpers/lab';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  APP,
  INFRA,
  baseInputs,
  ReleaseOptions,
  assertBackOn,
  buildAhead,
  crashOnceConverged,
  onHost,
  release,
  resetExample,
  servedVersion,
  serviceState,
  stackFingerprint,
} from './common';

let lab: LabEnv;
let inputs: Record<string, string>;
const remoteDir = `.deploy-action-test-${uniqueName('deploy')}`;
const PASSWORD = `pw-${uniqueName('secret')}-never-printed`;
// The releases of this file, built one after another in the background while the tests deploy.
const RELEASES: [string, Record<string, ServiceChange>][] = [
  ['1.0.0', {}],
  ['1.1.0', { web: { version: '1.1.0' } }],
  ['1.2.0', { web: { version: '1.2.0', mode: 'crash' } }],
  ['1.2.1', { web: { version: '1.2.1', mode: 'unhealthy' } }],
  ['1.3.0', { web: { version: '1.3.0' } }],
];
let builds = new Map<string, Promise<ActionRun>>();
const deployRelease = (version: string, opts: ReleaseOptions = {}) =>
  release(lab, inputs, version, Object.fromEntries(RELEASES)[version], { builds, ...opts });

before(async () => {
  lab = await requireLab();
  inputs = {
    ...baseInputs(lab, remoteDir, uniqueName('e2e-deploy')),
    'registry-username': 'deployer',
    'registry-password': PASSWORD,
  };
  await resetExample();
  builds = buildAhead(lab, inputs, RELEASES);
});

after(async () => {
  await Promise.allSettled(builds.values());
  // Left running, the example's six healthchecked tasks cost the files after this one a third of a core.
  await resetExample();
  await onHost(lab, `rm -rf ${remoteDir}`);
});

/** The action never prints a secret (the add-mask commands aside), so masking is a second line of defence. */
function noSecrets(rawLog: string, summary: string, label: string) {
  const log = rawLog
    .split('\n')
    .filter((l) => !l.startsWith('::add-mask::'))
    .join('\n');
  assert.ok(rawLog.includes(`::add-mask::${PASSWORD}`), `${label}: the registry password is not masked`);
  for (const secret of [PASSWORD, ...lab.sshKey.split('\n').filter((l) => l.length > 20)]) {
    assert.ok(!log.includes(secret), `${label}: a secret appears in the log`);
    assert.ok(!summary.includes(secret), `${label}: a secret appears in the summary`);
  }
}

test('first deploy: both layers, images pulled from the registry, gated healthy', { timeout: 240_000 }, async () => {
  const r = await deployRelease('1.0.0');
  assert.equal(r.build.code, 0);
  const built = JSON.parse(r.build.outputs.images);
  assert.match(built.web, /^127\.0\.0\.1:5000\/e2e-deploy-[0-9a-f]{8}\/web:1\.0\.0@sha256:[0-9a-f]{64}$/);
  assert.equal(r.deploy.code, 0, r.deploy.maskedLog.slice(-4000));
  assert.equal(r.deploy.outputs.result, 'deployed');
  assert.deepEqual(JSON.parse(r.deploy.outputs.versions), { api: '1.0.0', web: '1.0.0' });
  const images = JSON.parse(r.deploy.outputs.images);
  // The digest Swarm runs is the one the build pushed: it came from the registry, not a local build.
  assert.equal(images[`${APP}_web`], built.web);
  const web = await serviceState(`${APP}_web`);
  assert.equal(web.running, 2);
  assert.equal(await servedVersion(`${APP}_web`), '1.0.0');
  assert.equal((await serviceState(`${INFRA}_cache`)).running, 1);
  // Infrastructure first, then the application.
  assert.ok(r.deploy.log.indexOf(`Layer ${INFRA}`) < r.deploy.log.indexOf(`Layer ${APP}`));
  assert.match(
    r.deploy.summary,
    /\| example-app \| example-app_web \| `127\.0\.0\.1:5000\/[^|`]+\/web:1\.0\.0@sha256:[0-9a-f]{12}` \| — → 1\.0\.0 \| 2\/2 \| healthy \|/,
  );
  assert.equal(r.deploy.postCode, 0);
  noSecrets(r.deploy.log + r.deploy.postLog, r.deploy.summary, 'deploy');
  noSecrets(r.build.log + r.build.postLog, r.build.summary, 'build');
  // Nothing the action leaves on the host holds a secret.
  const host = await onHost(lab, `grep -rlF ${JSON.stringify(PASSWORD)} ${remoteDir} ~/.docker 2>/dev/null; echo done`);
  assert.equal(host.stdout.trim(), 'done');
});

test('a version bump rolls over and is served', { timeout: 240_000 }, async () => {
  const r = await deployRelease('1.1.0');
  assert.equal(r.deploy.code, 0, r.deploy.maskedLog.slice(-4000));
  assert.equal(r.deploy.outputs.result, 'deployed');
  assert.match((await serviceState(`${APP}_web`)).image, /web:1\.1\.0@sha256:/);
  assert.equal(await servedVersion(`${APP}_web`), '1.1.0');
  assert.match(
    r.deploy.summary,
    /example-app_web \| `[^|`]+\/web:1\.1\.0@sha256:[0-9a-f]{12}` \| 1\.0\.0 → 1\.1\.0 \| 2\/2 \| healthy/,
  );
});

test(
  "another run's registry login on the host survives this run's logout (each run has its own Docker config folder)",
  { timeout: 240_000 },
  async () => {
    // What a concurrent run's `docker login` left in the SSH user's config: this run must not log it out.
    const marker = Buffer.from(`other-run:${uniqueName('token')}`).toString('base64');
    const cfg = '~/.docker/config.json';
    await onHost(
      lab,
      `mkdir -p ~/.docker && { [ -f ${cfg} ] && cp ${cfg} ${cfg}.bak || rm -f ${cfg}.bak; } && printf '%s' '{"auths":{"${lab.registry}":{"auth":"${marker}"}}}' > ${cfg}`,
    );
    try {
      const dir = copyExample({ web: { version: '1.1.0' } });
      try {
        const r = await runAction({ inputs: { ...inputs, command: 'deploy', release: 'own-config' }, cwd: dir });
        assert.equal(r.code, 0, r.maskedLog.slice(-3000));
        assert.match(r.log, /Host logged in to .* with its own Docker config folder/);
        assert.equal(r.postCode, 0);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      assert.match(
        (await onHost(lab, `cat ${cfg}`)).stdout,
        new RegExp(marker.replace(/[+/=]/g, '\\$&')),
        "the other run's login was logged out",
      );
      assert.equal(
        (await onHost(lab, `ls -A ${remoteDir}/runs 2>/dev/null | wc -l`)).stdout.trim(),
        '0',
        'a run config folder was left on the host',
      );
    } finally {
      await onHost(lab, `if [ -f ${cfg}.bak ]; then mv ${cfg}.bak ${cfg}; else rm -f ${cfg}; fi`);
    }
  },
);

test(
  'a crashing release fails the job, names the task error, and 1.1.0 keeps running',
  { timeout: 240_000 },
  async () => {
    const r = await deployRelease('1.2.0');
    assert.notEqual(r.deploy.code, 0);
    assert.equal(r.deploy.outputs.result, 'rolled-back', r.deploy.maskedLog.slice(-5000));
    assert.match(r.deploy.log, /example-app_web: the update failed and Swarm rolled it back/);
    assert.match(r.deploy.log, /non-zero exit \(3\)|exit 3/);
    assert.match(r.deploy.log, /fatal: refusing to start \(MODE=crash\)/);
    assert.match(r.deploy.summary, /Why it failed/);
    assertBackOn(await serviceState(`${APP}_web`), '1.1.0', 2);
    assert.equal(await servedVersion(`${APP}_web`), '1.1.0');
  },
);

test('a release whose healthcheck fails is rolled back', { timeout: 240_000 }, async () => {
  const r = await deployRelease('1.2.1');
  assert.notEqual(r.deploy.code, 0);
  assert.equal(r.deploy.outputs.result, 'rolled-back', r.deploy.maskedLog.slice(-5000));
  assert.match(r.deploy.log, /example-app_web: /);
  assert.match(r.deploy.log, /unhealthy/i);
  assertBackOn(await serviceState(`${APP}_web`), '1.1.0', 2);
  assert.equal(await servedVersion(`${APP}_web`), '1.1.0');
});

test(
  'a release healthy past monitor that then crashes: Swarm says completed, the gate rolls it back',
  { timeout: 240_000 },
  async () => {
    // The crash comes once the gate logged "converged", which it does only after Swarm called the
    // update completed: however slow the host, Swarm's own monitor has ended.
    const r = await deployRelease('1.3.0', {
      extra: { stability: '30' },
      during: crashOnceConverged(`${APP}_web`, '1.3.0'),
    });
    assert.notEqual(r.deploy.code, 0, r.deploy.maskedLog.slice(-3000));
    assert.equal(r.deploy.outputs.result, 'rolled-back', r.deploy.maskedLog.slice(-5000));
    assert.match(r.deploy.log, /example-app_web: converged: 2\/2 running/);
    assert.match(
      r.deploy.log,
      /failed (\d+ s after the update converged \(inside the 30 s|inside the) stability window/,
    );
    assert.match(r.deploy.log, /fatal: crashed on SIGUSR1/);
    assertBackOn(await serviceState(`${APP}_web`), '1.1.0', 2);
    assert.equal(await servedVersion(`${APP}_web`), '1.1.0');
  },
);

test(
  'bad input: one clear error naming the file or input, and nothing on the swarm changes',
  { timeout: 240_000 },
  async () => {
    const fingerprint = async () => `${await stackFingerprint(INFRA)}\n${await stackFingerprint(APP)}`;
    // Start from a settled swarm: no update or rollback still in flight.
    await waitFor(
      async () => {
        const ids = (await dockerOk(['service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${APP}`]))
          .trim()
          .split('\n')
          .filter(Boolean);
        return (
          !ids.length ||
          !/updating|rollback_started/.test(
            await dockerOk([
              'service',
              'inspect',
              '--format',
              '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}',
              ...ids,
            ]),
          )
        );
      },
      { timeoutMs: 60_000, what: 'the example services to settle' },
    );
    const beforeAll = await fingerprint();
    const cases: { name: string; prepare?: (dir: string) => void; inputs?: Record<string, string>; error: RegExp }[] = [
      {
        name: 'missing VERSION',
        prepare: (d) => fs.rmSync(path.join(d, 'service', 'api', 'VERSION')),
        error: /service\/api\/VERSION: missing/,
      },
      {
        name: 'unsafe VERSION',
        prepare: (d) => fs.writeFileSync(path.join(d, 'service', 'api', 'VERSION'), '1.0; touch /tmp/pwned\n'),
        error: /service\/api\/VERSION: "1\.0; touch \/tmp\/pwned" is not a valid image tag/,
      },
      {
        name: 'unset variable',
        prepare: (d) => {
          const f = path.join(d, 'stacks', 'app.yml');
          fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('${WEB_VERSION}', '${WEB_TAG}'));
        },
        error: /stacks\/app\.yml:\d+.*WEB_TAG/s,
      },
      {
        name: 'invalid compose file',
        prepare: (d) => fs.writeFileSync(path.join(d, 'stacks', 'app.yml'), 'services:\n  web: [unclosed\n'),
        error: /stacks\/app\.yml/,
      },
      { name: 'missing compose file', inputs: { stacks: `${APP}=stacks/nope.yml` }, error: /stacks\/nope\.yml/ },
      {
        name: 'unsafe stack name',
        inputs: { stacks: `app;touch /tmp/pwned=stacks/app.yml` },
        error: /Input `stacks` line 1/,
      },
      {
        name: 'wrong host key',
        // A real ed25519 key, but not the lab host's.
        inputs: {
          'known-hosts': `[${lab.host}]:${lab.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl`,
        },
        error:
          /Host key verification failed for root@\[127\.0\.0\.1\]:\d+: the server presented SHA256:\S+ which is not pinned/,
      },
    ];
    for (const c of cases) {
      const dir = copyExample();
      try {
        c.prepare?.(dir);
        const r = await runAction({ inputs: { ...inputs, command: 'deploy', release: 'bad', ...c.inputs }, cwd: dir });
        assert.notEqual(r.code, 0, `${c.name}: the action should fail`);
        assert.equal(r.outputs.result, 'failed', c.name);
        assert.match(r.errors.join('\n'), c.error, `${c.name}: ${r.errors.join('\n')}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.equal(await fingerprint(), beforeAll, 'the swarm changed');
    assert.equal((await docker(['run', '--rm', 'lab/base:1', 'true'])).code, 0);
    assert.ok(!fs.existsSync('/tmp/pwned'), 'an injected command ran');
  },
);
