// Input `verify` end to end through dist/index.js: a proxy that routes by Host (nc-based stand-in for
// Traefik, host-mode published port: the lab has no routing mesh), a site behind it, checks from the
// host. (network= is not run here: the lab's static busybox wget segfaults on name lookups inside
// containers, and a task's address is not known before the deploy.) A release healthy for Swarm whose /version answers
// 500 through the proxy is rolled back, and the job names the request, its status and body start.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LabEnv, removeStack, requireLab, uniqueName, dockerOk } from '../helpers/lab';
import { freePort, proxyLabRelease } from './proxy-lab';

const name = uniqueName('vfy');
const remoteDir = `.deploy-action-${name}`;
let lab: LabEnv;
let port = 0;

const release = (version: string, mode: string, verify: string) =>
  proxyLabRelease({ lab, name, remoteDir, port }, version, mode, { verify });

const image = async () =>
  (
    await dockerOk(['service', 'inspect', `${name}-app_site`, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])
  ).trim();

before(async () => {
  lab = await requireLab();
  port = await freePort();
});

after(async () => {
  await removeStack(`${name}-app`).catch(() => undefined);
  await removeStack(`${name}-infra`).catch(() => undefined);
  fs.rmSync(path.join(os.homedir(), remoteDir), { recursive: true, force: true });
});

test(
  'verify: checks through the proxy pass; a release answering 500 through it is rolled back and the job names the request',
  { timeout: 240_000 },
  async () => {
    const checks = (version: string, within: number) =>
      [
        `${name}-infra: http://127.0.0.1:${port}/_proxy/health`,
        `http://127.0.0.1:${port}/version host=site.example status=200 contains=${version} within=${within}`,
      ].join('\n');
    const t0 = Date.now();
    const first = await release('1.0.0', 'ok', checks('1.0.0', 30));
    assert.equal(first.code, 0, first.maskedLog.slice(-4000));
    assert.equal(first.outputs.result, 'deployed');
    assert.match(first.log, new RegExp(`Verify: GET http://127.0.0.1:${port}/_proxy/health → 200`));
    assert.match(first.log, new RegExp(`Verify: GET http://127.0.0.1:${port}/version \\(Host: site.example\\) → 200`));
    console.log(`first deploy with 2 checks: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const t1 = Date.now();
    const bad = await release('1.1.0', 'bad-version', checks('1.1.0', 5));
    const secs = ((Date.now() - t1) / 1000).toFixed(1);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.outputs.result, 'rolled-back', bad.maskedLog.slice(-4000));
    // The gate passed: Swarm found the release healthy; the request through the proxy did not.
    assert.match(bad.log, /failed verification/);
    const line = new RegExp(
      `GET http://127.0.0.1:${port}/version \\(Host: site.example\\) → status 500, expected 200 .*body starts: "boom: the version store is unavailable`,
    );
    assert.match(bad.maskedLog, line);
    assert.ok(
      bad.errors.some((e) => line.test(e)),
      `an error annotation names the request: ${bad.errors.join('\n')}`,
    );
    assert.match(bad.summary, /status 500/);
    assert.match(await image(), /site:1\.0\.0@/);
    console.log(
      `bad release through build, gate, verify (5 s) and rollback: ${secs} s (deploy step ${(bad.durationMs / 1000).toFixed(1)} s)`,
    );
  },
);
