// The lab itself works: registry round trip, sshd with the pinned host key,
// and the example images behave as their MODE file says.
// Needs `bash lab/lab.sh up` first.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  copyExample,
  docker,
  dockerOk,
  requireLab,
  run,
  tempDir,
  uniqueName,
  waitFor,
  type LabEnv,
} from '../helpers/lab';

let lab: LabEnv;

before(async () => {
  lab = await requireLab();
});

function sshArgs(knownHostsFile: string, command: string[]): string[] {
  return [
    '-i',
    lab.sshKeyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'ConnectTimeout=10',
    '-p',
    String(lab.port),
    `${lab.user}@${lab.host}`,
    ...command,
  ];
}

test('registry: push, remove locally, pull back the same digest', async () => {
  const dir = tempDir('lab-rt-');
  const tag = `${lab.registry}/labtest/rt:${uniqueName('t')}`;
  try {
    fs.writeFileSync(
      path.join(dir, 'Dockerfile'),
      `FROM ${lab.baseImage}\nRUN echo "${tag}" > /stamp\nCMD ["cat", "/stamp"]\n`,
    );
    await dockerOk(['build', '-q', '-t', tag, dir]);
    const push = await dockerOk(['push', tag]);
    const pushed = /digest: (sha256:[0-9a-f]{64})/.exec(push)?.[1];
    assert.ok(pushed, `no digest in the push output:\n${push}`);
    const repoDigest = (await dockerOk(['image', 'inspect', '--format', '{{json .RepoDigests}}', tag])).trim();
    assert.ok(repoDigest.includes(pushed!), `RepoDigests ${repoDigest} lacks ${pushed}`);

    await dockerOk(['rmi', tag]);
    const gone = await docker(['image', 'inspect', tag]);
    assert.notEqual(gone.code, 0, `${tag} is still there after docker rmi`);

    await dockerOk(['pull', '-q', tag]);
    const digests = JSON.parse(
      (await dockerOk(['image', 'inspect', '--format', '{{json .RepoDigests}}', tag])).trim(),
    ) as string[];
    assert.ok(
      digests.includes(`${lab.registry}/labtest/rt@${pushed}`),
      `pulled image has RepoDigests ${JSON.stringify(digests)}, pushed ${pushed}`,
    );
    const out = await dockerOk(['run', '--rm', tag]);
    assert.equal(out.trim(), tag);
  } finally {
    await docker(['rmi', '-f', tag]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('registry: the base image is there as <registry>/lab/base:1', async () => {
  const res = await fetch(`http://${lab.registry}/v2/lab/base/tags/list`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { tags: string[] };
  assert.ok(body.tags.includes('1'), JSON.stringify(body));
});

test('sshd: the lab key and pinned host key reach docker on a Ready manager', async () => {
  const r = await run(
    'ssh',
    // One string: the remote shell splits the command line again.
    sshArgs(lab.knownHostsFile, ["docker node ls --format '{{.Status}} {{.ManagerStatus}}'"]),
    { timeoutMs: 30_000 },
  );
  assert.equal(r.code, 0, `ssh failed: ${r.stderr}`);
  assert.match(r.stdout, /^Ready Leader$/m);
});

test('sshd: parallel sessions (MaxStartups/MaxSessions) all succeed', async () => {
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      run('ssh', sshArgs(lab.knownHostsFile, ['echo', `n${i}`]), { timeoutMs: 30_000 }),
    ),
  );
  results.forEach((r, i) => {
    assert.equal(r.code, 0, `session ${i}: ${r.stderr}`);
    assert.equal(r.stdout.trim(), `n${i}`);
  });
});

test('sshd: a known_hosts with another key for the host is refused', async () => {
  const dir = tempDir('lab-kh-');
  try {
    const keyFile = path.join(dir, 'other');
    const gen = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    assert.equal(gen.code, 0, gen.stderr);
    const otherKey = fs.readFileSync(`${keyFile}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const pattern = lab.knownHosts.trim().split(/\s+/)[0];
    assert.match(pattern, /^\[127\.0\.0\.1\]:\d+$|^127\.0\.0\.1$/);
    const wrong = path.join(dir, 'known_hosts');
    fs.writeFileSync(wrong, `${pattern} ${otherKey}\n`);

    const r = await run('ssh', sshArgs(wrong, ['echo', 'should-not-run']), { timeoutMs: 30_000 });
    assert.notEqual(r.code, 0);
    assert.ok(!r.stdout.includes('should-not-run'));
    assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);

    // An empty known_hosts: unknown host, refused too (StrictHostKeyChecking=yes).
    fs.writeFileSync(wrong, '');
    const r2 = await run('ssh', sshArgs(wrong, ['echo', 'should-not-run']), { timeoutMs: 30_000 });
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /Host key verification failed|No ED25519 host key is known/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('sshd: password logins are off', async () => {
  const r = await run(
    'ssh',
    [
      '-o',
      'BatchMode=yes',
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      `UserKnownHostsFile=${lab.knownHostsFile}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-p',
      String(lab.port),
      `${lab.user}@${lab.host}`,
      'true',
    ],
    { timeoutMs: 30_000 },
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Permission denied \(publickey\)/);
});

test('example: the service images behave as their MODE says', async () => {
  const dir = copyExample({ web: { version: '9.9.9-lab' } });
  const tag = `labtest/example-web:${uniqueName('t')}`;
  const started: string[] = [];
  try {
    await dockerOk([
      'build',
      '-q',
      '--build-arg',
      `BASE=${lab.baseImage}`,
      '-t',
      tag,
      path.join(dir, 'service', 'web'),
    ]);

    // ok: serves the page, /version and /health
    const ok = (await dockerOk(['run', '-d', tag])).trim();
    started.push(ok);
    const fetchIn = (id: string, urlPath: string) =>
      docker(['exec', id, 'wget', '-q', '-O', '-', `http://127.0.0.1:8080${urlPath}`]);
    const version = await waitFor(
      async () => {
        const r = await fetchIn(ok, '/version');
        return r.code === 0 && r.stdout.trim();
      },
      { timeoutMs: 10_000, what: 'the ok container to serve /version' },
    );
    assert.equal(version, '9.9.9-lab');
    assert.match((await fetchIn(ok, '/')).stdout, /version <b id="version">9\.9\.9-lab<\/b>/);
    assert.equal((await fetchIn(ok, '/health')).code, 0);

    // crash: exits 3 at once with a clear message
    const crash = await docker(['run', '--rm', '-e', 'APP_MODE=crash', tag], { timeoutMs: 20_000 });
    assert.equal(crash.code, 3);
    assert.match(crash.stderr, /fatal: refusing to start \(MODE=crash\)/);

    // unhealthy: serves, but /health is missing
    const sick = (await dockerOk(['run', '-d', '-e', 'APP_MODE=unhealthy', tag])).trim();
    started.push(sick);
    await waitFor(async () => (await fetchIn(sick, '/version')).code === 0, {
      timeoutMs: 10_000,
      what: 'the unhealthy container to serve /version',
    });
    assert.notEqual((await fetchIn(sick, '/health')).code, 0);

    // crash-later: exits 4 after the given seconds
    const t0 = Date.now();
    const later = await docker(['run', '--rm', '-e', 'APP_MODE=crash-later 1', tag], { timeoutMs: 20_000 });
    assert.equal(later.code, 4);
    assert.match(later.stderr, /fatal: crashed after 1 s/);
    assert.ok(Date.now() - t0 >= 1000);

    // A stop (SIGTERM) ends it at once with 143, not after the grace period.
    const t1 = Date.now();
    await dockerOk(['stop', '-t', '10', ok]);
    assert.ok(Date.now() - t1 < 5000, `docker stop took ${Date.now() - t1} ms`);
    assert.equal((await dockerOk(['inspect', '--format', '{{.State.ExitCode}}', ok])).trim(), '143');
  } finally {
    for (const id of started) await docker(['rm', '-f', id]);
    await docker(['rmi', '-f', tag]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
