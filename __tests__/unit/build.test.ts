import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildImages, repositoryOf, stackBuilds } from '../../src/build';
import { missingImages, missingImagesOnHost } from '../../src/image-lookup';
import type { Engine } from '../../src/host/engine-api';
import { InputError } from '../../src/errors';
import { RunOptions, RunResult, Runner } from '../../src/exec';
import { readServices } from '../../src/versions';

const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'build-test-'));
  roots.push(root);
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(root, rel);
    if (rel.endsWith('/')) fs.mkdirSync(abs, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, content);
    }
  }
  return root;
}

/** Records every argv; answers from `reply` (default: exit 0, no output). */
class FakeDocker implements Runner {
  readonly where = 'runner';
  calls: string[][] = [];
  constructor(private readonly reply: (argv: string[]) => Partial<RunResult> = () => ({})) {}
  async run(argv: string[], _opts?: RunOptions): Promise<RunResult> {
    this.calls.push(argv);
    return { code: 0, stdout: '', stderr: '', ...this.reply(argv) };
  }
}

const ENV = { REGISTRY: 'reg:5000', IMAGE_PREFIX: 'sprocket' };

// A Sprocket-shaped repository: one Dockerfile per language at the root, args per app, versions per app.
const SPROCKET = {
  'dockerfiles/node.Dockerfile': 'FROM node\nARG APP\n',
  'apps/orders/VERSION': '1.2.0\n',
  'apps/billing/VERSION': '0.9.1\n',
  'stacks/platform.yml': `services:
  orders:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/orders:\${ORDERS_VERSION}
    x-version-file: ../apps/orders/VERSION
    build:
      context: ..
      dockerfile: dockerfiles/node.Dockerfile
      target: run
      args: { APP: orders }
      cache_from: [reg:5000/sprocket/node:cache]
      labels: [team=core]
  billing:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/billing:\${BILLING_VERSION}
    x-version-file: ../apps/billing/VERSION
    build:
      context: ..
      dockerfile: dockerfiles/node.Dockerfile
      args:
        - APP=billing
  redis:
    image: redis:7.2.4
`,
};

test('repositoryOf: tag and digest go, a registry port stays', () => {
  assert.equal(repositoryOf('reg:5000/p/api:1.0.0'), 'reg:5000/p/api');
  assert.equal(repositoryOf('reg:5000/p/api'), 'reg:5000/p/api');
  assert.equal(repositoryOf('reg:5000/p/api:1@sha256:abc'), 'reg:5000/p/api');
  assert.equal(repositoryOf('redis:7'), 'redis');
});

test('stackBuilds: build: sections of the stacks, paths resolved against the stack file, third-party services left alone', () => {
  const wd = tree(SPROCKET);
  const builds = stackBuilds([{ name: 'platform', files: ['stacks/platform.yml'] }], wd, ENV, 'reg:5000', 'sprocket');
  assert.deepEqual([...builds.keys()], ['orders', 'billing']);
  const o = builds.get('orders')!;
  assert.equal(o.context, wd);
  assert.equal(o.dockerfile, path.join(wd, 'dockerfiles/node.Dockerfile'));
  assert.equal(o.target, 'run');
  assert.deepEqual(o.args, { APP: 'orders' });
  assert.deepEqual(o.cacheFrom, ['reg:5000/sprocket/node:cache']);
  assert.deepEqual(o.labels, { team: 'core' });
  assert.equal(o.repository, 'reg:5000/sprocket/orders');
  assert.equal(o.versionFile, path.join(wd, 'apps/orders/VERSION'));
  assert.equal(`${o.file}:${o.line}`, 'stacks/platform.yml:5');
  assert.deepEqual(builds.get('billing')!.args, { APP: 'billing' });
  const services = readServices(wd, 'service/*', builds);
  assert.deepEqual(
    services.map((s) => `${s.name}@${s.version} ${s.versionFile}`),
    ['orders@1.2.0 apps/orders/VERSION', 'billing@0.9.1 apps/billing/VERSION'],
  );
});

function refused(wd: string, stack: string, re: RegExp) {
  fs.writeFileSync(path.join(wd, 'stacks/x.yml'), stack);
  assert.throws(
    () => stackBuilds([{ name: 'x', files: ['stacks/x.yml'] }], wd, ENV, 'reg:5000', 'sprocket', { sources: true }),
    (e: unknown) => e instanceof InputError && re.test(e.message),
    re.source,
  );
}

test('stackBuilds: an image outside registry/image-prefix, no image, a missing context or Dockerfile: errors naming file, line and service', () => {
  const wd = tree({ ...SPROCKET, 'stacks/x.yml': '' });
  refused(
    wd,
    'services:\n  web:\n    image: docker.io/me/web:1\n    build: ..\n',
    /stacks\/x\.yml:4: service web is built by the action but its image "docker\.io\/me\/web:1" is not under reg:5000\/sprocket\//,
  );
  refused(
    wd,
    'services:\n  web:\n    build: ..\n',
    /stacks\/x\.yml:3: service web has build: but no image: .*reg:5000\/sprocket\/web:\$\{WEB_VERSION\}/,
  );
  refused(
    wd,
    'services:\n  web:\n    image: reg:5000/sprocket/web:1\n    build: ../nowhere\n',
    /service web: build context nowhere is not a folder/,
  );
  refused(
    wd,
    'services:\n  web:\n    image: reg:5000/sprocket/web:1\n    build: { context: .., dockerfile: web.Dockerfile }\n',
    /service web: Dockerfile web\.Dockerfile: no such file/,
  );
  refused(
    wd,
    'services:\n  a:\n    image: reg:5000/sprocket/web:1\n    build: { context: .., dockerfile: dockerfiles/node.Dockerfile }\n  b:\n    image: reg:5000/sprocket/web:2\n    build: { context: .., dockerfile: dockerfiles/node.Dockerfile }\n',
    /services a and b both build the image reg:5000\/sprocket\/web/,
  );
});

test('stackBuilds without sources (deploy, check): a context not cloned in this job is fine', () => {
  const wd = tree({
    'stacks/x.yml': 'services:\n  api:\n    image: reg:5000/sprocket/api:1\n    build: ../service/api/src\n',
  });
  const b = stackBuilds([{ name: 'x', files: ['stacks/x.yml'] }], wd, ENV, 'reg:5000', 'sprocket').get('api');
  assert.equal(b?.context, path.join(wd, 'service/api/src'));
  assert.throws(
    () => stackBuilds([{ name: 'x', files: ['stacks/x.yml'] }], wd, ENV, 'reg:5000', 'sprocket', { sources: true }),
    /build context service\/api\/src is not a folder/,
  );
});

test('stackBuilds: a stack file Docker cannot load is left to the pre-flight checks', () => {
  const wd = tree({ 'stacks/bad.yml': 'services: [unclosed\n' });
  assert.equal(stackBuilds([{ name: 'x', files: ['stacks/bad.yml'] }], wd, ENV, 'reg:5000', 'sprocket').size, 0);
});

test("buildImages, stack build:: its Dockerfile, target, args over the input's, labels; siblings of one Dockerfile share their caches", async () => {
  const wd = tree(SPROCKET);
  const services = readServices(
    wd,
    'service/*',
    stackBuilds([{ name: 'platform', files: ['stacks/platform.yml'] }], wd, ENV, 'reg:5000', 'sprocket'),
  );
  const docker = new FakeDocker((argv) =>
    argv[1] === 'manifest'
      ? { code: 1, stderr: 'no such manifest' }
      : argv[1] === 'push'
        ? { stdout: `digest: sha256:${'a'.repeat(64)} size: 1` }
        : {},
  );
  const built = await buildImages(docker, services, {
    registry: 'reg:5000',
    imagePrefix: 'sprocket',
    buildArgs: { APP: 'input', NODE_ENV: 'production' },
    target: 'dev',
    sha: '0123456789',
    push: true,
  });
  assert.deepEqual(
    built.map((b) => b.image),
    ['reg:5000/sprocket/orders:1.2.0', 'reg:5000/sprocket/billing:0.9.1'],
  );
  const builds = docker.calls.filter((c) => c[1] === 'build');
  const flag = (argv: string[], f: string) => argv.flatMap((a, i) => (argv[i - 1] === f ? [a] : []));
  assert.deepEqual(flag(builds[0], '--file'), [path.join(wd, 'dockerfiles/node.Dockerfile')]);
  assert.equal(builds[0][builds[0].length - 1], wd, 'the build context');
  assert.deepEqual(flag(builds[0], '--target'), ['run']);
  assert.deepEqual(flag(builds[1], '--target'), ['dev'], "no target in the stack: the input's");
  assert.ok(
    flag(builds[0], '--build-arg').includes('APP=orders') && !flag(builds[0], '--build-arg').includes('APP=input'),
  );
  assert.ok(flag(builds[0], '--build-arg').includes('NODE_ENV=production'));
  assert.ok(flag(builds[0], '--label').includes('team=core'));
  assert.deepEqual(flag(builds[0], '--cache-from'), [
    'reg:5000/sprocket/orders:buildcache',
    'reg:5000/sprocket/billing:buildcache',
    'reg:5000/sprocket/node:cache',
  ]);
  assert.deepEqual(flag(builds[1], '--cache-from'), [
    'reg:5000/sprocket/billing:buildcache',
    'reg:5000/sprocket/orders:buildcache',
  ]);
  assert.deepEqual(flag(builds[1], '--tag'), [
    'reg:5000/sprocket/billing:0.9.1',
    'reg:5000/sprocket/billing:sha-0123456',
    'reg:5000/sprocket/billing:buildcache',
  ]);
});

test('buildImages: a version from input `versions` alone is not built here; an unchanged version is not rebuilt', async () => {
  const wd = tree(SPROCKET);
  const services = readServices(
    wd,
    'service/*',
    stackBuilds([{ name: 'platform', files: ['stacks/platform.yml'] }], wd, ENV, 'reg:5000', 'sprocket'),
    { web: '3.0.0' },
  );
  const digest = `sha256:${'b'.repeat(64)}`;
  const docker = new FakeDocker((argv) =>
    argv[1] === 'manifest' ? { stdout: JSON.stringify({ Descriptor: { digest } }) } : {},
  );
  const built = await buildImages(docker, services, {
    registry: 'reg:5000',
    imagePrefix: 'sprocket',
    buildArgs: {},
    target: '',
    sha: '0123456789',
    push: true,
  });
  assert.deepEqual(
    built.map((b) => `${b.service} ${b.reused}`),
    ['orders true', 'billing true'],
  );
  assert.equal(docker.calls.filter((c) => c[1] === 'build').length, 0);
});

test('missingImages: only "not there" counts as missing; an unreachable or refusing registry is unreadable', async () => {
  const docker = new FakeDocker((argv) => {
    const ref = argv[argv.length - 1];
    if (ref.endsWith(':ok')) return {};
    if (ref.endsWith(':gone')) return { code: 1, stderr: `no such manifest: ${ref}` };
    if (ref.endsWith(':unknown')) return { code: 1, stderr: 'manifest unknown' };
    return { code: 1, stderr: 'unauthorized: authentication required' };
  });
  const r = await missingImages(docker, [
    '127.0.0.1:5000/p/a:ok',
    '127.0.0.1:5000/p/a:gone',
    'ghcr.io/p/a:unknown',
    'ghcr.io/p/a:private',
    '127.0.0.1:5000/p/a:gone',
  ]);
  assert.deepEqual(r.missing, ['127.0.0.1:5000/p/a:gone', 'ghcr.io/p/a:unknown']);
  assert.deepEqual(r.unreadable, [{ image: 'ghcr.io/p/a:private', why: 'unauthorized: authentication required' }]);
  const asked = docker.calls.filter((c) => c[1] === 'manifest');
  assert.deepEqual(
    asked[0],
    ['docker', 'manifest', 'inspect', '--insecure', '127.0.0.1:5000/p/a:ok'],
    'a loopback registry is plain HTTP',
  );
  assert.deepEqual(asked[2], ['docker', 'manifest', 'inspect', 'ghcr.io/p/a:unknown']);
  assert.equal(asked.length, 4, 'each image asked once');
});

test('missingImages: the look-ups run at the same time, at most 4 at once, each marked concurrent (a channel of its own on a host)', async () => {
  let running = 0;
  let most = 0;
  const opts: (RunOptions | undefined)[] = [];
  const slow: Runner = {
    where: 'me@vps',
    async run(argv, o) {
      opts.push(o);
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return argv.at(-1)!.endsWith(':3')
        ? { code: 1, stdout: '', stderr: 'manifest unknown' }
        : { code: 0, stdout: '', stderr: '' };
    },
  };
  const images = Array.from({ length: 10 }, (_, i) => `127.0.0.1:5000/p/a:${i}`);
  const r = await missingImages(slow, images);
  assert.deepEqual(r.missing, ['127.0.0.1:5000/p/a:3']);
  // Four in flight at once: not one after another, and never more (a time bound would fail on a busy machine).
  assert.equal(most, 4);
  assert.ok(opts.every((o) => o?.concurrent === true && o.silent === true));
});

test('missingImages: a look-up that cannot run at all is unreadable (left for the deploy), not missing', async () => {
  const host: Runner = {
    where: 'me@vps',
    async run(argv) {
      if (argv.at(-1)!.endsWith(':cut')) throw new Error('Lost the SSH connection to me@vps: it closed');
      return argv.at(-1)!.endsWith(':gone')
        ? { code: 1, stdout: '', stderr: 'manifest unknown' }
        : { code: 0, stdout: '', stderr: '' };
    },
  };
  const r = await missingImages(host, ['127.0.0.1:5000/p/a:1', '127.0.0.1:5000/p/a:gone', '127.0.0.1:5000/p/a:cut']);
  assert.deepEqual(r, {
    missing: ['127.0.0.1:5000/p/a:gone'],
    unreadable: [{ image: '127.0.0.1:5000/p/a:cut', why: 'Lost the SSH connection to me@vps: it closed' }],
  });
});

test('a registry the engine lists as insecure (plain HTTP, not loopback) is asked with --insecure, in the look-up and the check', async () => {
  const info = JSON.stringify({
    '10.213.1.1:5000': { Name: '10.213.1.1:5000', Secure: false },
    'docker.io': { Name: 'docker.io', Secure: true },
  });
  const reply = (argv: string[]) => (argv[1] === 'info' ? { stdout: `${info} ["127.0.0.0/8","10.9.0.0/16"]\n` } : {});
  const docker = new FakeDocker(reply);
  await missingImages(docker, [
    '10.213.1.1:5000/p/a:1',
    '10.9.3.4:5000/p/b:1',
    'reg.example.com/p/c:1',
    '127.0.0.1:5000/p/d:1',
  ]);
  const asked = docker.calls.filter((c) => c[1] === 'manifest');
  assert.deepEqual(asked, [
    ['docker', 'manifest', 'inspect', '--insecure', '10.213.1.1:5000/p/a:1'],
    ['docker', 'manifest', 'inspect', '--insecure', '10.9.3.4:5000/p/b:1'],
    ['docker', 'manifest', 'inspect', 'reg.example.com/p/c:1'],
    ['docker', 'manifest', 'inspect', '--insecure', '127.0.0.1:5000/p/d:1'],
  ]);
  assert.equal(docker.calls.filter((c) => c[1] === 'info').length, 1, 'the engine is asked once');
  // No answer from the engine: only loopback is plain HTTP, as before.
  const quiet = new FakeDocker((argv) => (argv[1] === 'info' ? { code: 1, stderr: 'Cannot connect' } : {}));
  await missingImages(quiet, ['10.213.1.1:5000/p/a:1']);
  assert.deepEqual(
    quiet.calls.filter((c) => c[1] === 'manifest'),
    [['docker', 'manifest', 'inspect', '10.213.1.1:5000/p/a:1']],
  );
});

test('missingImagesOnHost: the engine\'s "there" is taken; anything else is asked again with the CLI, which decides', async () => {
  const requests: string[] = [];
  const engine: Engine = {
    requests: 0,
    hostNow: () => Date.now(),
    close() {},
    async get(p) {
      requests.push(p);
      if (p.includes(':ok/')) return { Descriptor: { digest: 'sha256:1' } };
      if (p.includes(':gone/')) throw Object.assign(new Error('the engine refused /distribution (HTTP 404)'), {});
      throw new Error('the engine refused /distribution (HTTP 401): unauthorized');
    },
  };
  const docker = new FakeDocker((argv) => {
    const ref = argv[argv.length - 1];
    if (ref.endsWith(':gone')) return { code: 1, stderr: `no such manifest: ${ref}` };
    return {};
  });
  const r = await missingImagesOnHost(engine, docker, [
    '127.0.0.1:5000/p/a:ok',
    '127.0.0.1:5000/p/a:gone',
    'ghcr.io/p/a:private',
    '127.0.0.1:5000/p/a:ok',
    'ghcr.io/p/a:x?y',
  ]);
  assert.deepEqual(r, { missing: ['127.0.0.1:5000/p/a:gone'], unreadable: [] });
  assert.deepEqual(requests.sort(), [
    '/distribution/127.0.0.1:5000/p/a:gone/json',
    '/distribution/127.0.0.1:5000/p/a:ok/json',
    '/distribution/ghcr.io/p/a:private/json',
  ]);
  // Asked with the CLI: the two the engine did not say were there, and the one not put in a path.
  assert.deepEqual(
    docker.calls.filter((c) => c[1] === 'manifest').map((c) => c.at(-1)),
    ['127.0.0.1:5000/p/a:gone', 'ghcr.io/p/a:private', 'ghcr.io/p/a:x?y'],
  );
});

test('missingImagesOnHost: every image there for the engine: no CLI at all', async () => {
  const engine: Engine = { requests: 0, hostNow: () => Date.now(), close() {}, get: async () => ({}) };
  const docker = new FakeDocker(() => ({ code: 1, stderr: 'should not run' }));
  const r = await missingImagesOnHost(engine, docker, ['127.0.0.1:5000/p/a:1', '127.0.0.1:5000/p/b:1']);
  assert.deepEqual(r, { missing: [], unreadable: [] });
  assert.equal(docker.calls.length, 0);
});
