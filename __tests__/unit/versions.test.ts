import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InputError } from '../../src/errors';
import {
  Service,
  StackBuild,
  readServices,
  releaseTagMismatches,
  versionEnv,
  versionVariable,
} from '../../src/versions';

const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A working directory from a map of relative path → file content (a trailing / makes a folder). */
function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'versions-test-'));
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

const summary = (s: Service[]) => s.map((x) => `${x.name}@${x.version}`);

function inputError(fn: () => unknown, re: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `an InputError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

// ---------- readServices ----------

test('readServices: service/* reads every folder in name order, skipping dot folders and files', () => {
  const wd = tree({
    'service/web/VERSION': '1.4.2\n',
    'service/api/VERSION': '2.0.0',
    'service/worker/VERSION': '  0.9.1-rc.1\r\n',
    'service/.cache/VERSION': 'nope',
    'service/README.md': 'not a service',
  });
  const s = readServices(wd, 'service/*');
  assert.deepEqual(summary(s), ['api@2.0.0', 'web@1.4.2', 'worker@0.9.1-rc.1']);
  assert.equal(s[0].versionFile, path.join('service', 'api', 'VERSION'));
  assert.equal(s[0].dir, path.join(wd, 'service', 'api'));
});

test('readServices: a VERSION with a byte-order mark or surrounding blank lines is trimmed', () => {
  const wd = tree({ 'service/web/VERSION': '\uFEFF\n1.0.0\n\n' });
  assert.deepEqual(summary(readServices(wd, 'service/*')), ['web@1.0.0']);
});

test('readServices: a single folder, a comma list and a newline list', () => {
  const wd = tree({ 'service/web/VERSION': '1.0.0', 'service/api/VERSION': '2.0.0', 'tools/cron/VERSION': '3.0.0' });
  assert.deepEqual(summary(readServices(wd, 'service/web')), ['web@1.0.0']);
  assert.deepEqual(summary(readServices(wd, 'service/web, tools/cron')), ['web@1.0.0', 'cron@3.0.0']);
  assert.deepEqual(summary(readServices(wd, 'tools/cron\nservice/*\n')), ['cron@3.0.0', 'api@2.0.0', 'web@1.0.0']);
  assert.deepEqual(summary(readServices(wd, './service/web/')), ['web@1.0.0']);
});

test('readServices: a glob anywhere but at the end, or a partial glob, is refused', () => {
  const wd = tree({ 'service/web/app/VERSION': '1.0.0', 'service/web/VERSION': '1.0.0' });
  for (const p of ['service/*/app', 'service/w*', '*', 'service/**', 'service/web,*/x'])
    inputError(() => readServices(wd, p), /Input `services`.*only a folder or a folder followed by \/\*/);
});

test('readServices: the folder of a glob must exist, and the pattern must match something', () => {
  const wd = tree({ 'service/': '' });
  inputError(() => readServices(wd, 'apps/*'), /Input `services`: folder "apps" does not exist/);
  // The default pattern on a repository without service folders: none (a deploy-only or stack-build: layout).
  assert.deepEqual(readServices(wd, 'service/*'), []);
  assert.deepEqual(readServices(tree({ 'stacks/app.yml': '' }), 'service/*'), []);
  inputError(() => readServices(wd, 'apps/*,'), /Input `services`: folder "apps" does not exist/);
  inputError(() => readServices(wd, ' , '), /matches no service folder/);
});

test('readServices: a missing VERSION is an InputError naming service/x/VERSION', () => {
  const wd = tree({ 'service/web/VERSION': '1.0.0', 'service/x/Dockerfile': 'FROM scratch' });
  inputError(() => readServices(wd, 'service/*'), /^service\/x\/VERSION: missing/);
  inputError(() => readServices(wd, 'service/nope'), /^service\/nope\/VERSION: missing/);
});

test('readServices: an empty VERSION is refused', () => {
  for (const content of ['', '   \n\t\n']) {
    const wd = tree({ 'service/web/VERSION': content });
    inputError(() => readServices(wd, 'service/*'), /^service\/web\/VERSION: empty/);
  }
});

test('readServices: a VERSION that is not a Docker tag is refused', () => {
  for (const v of ['1.0 beta', '-x', '.x', 'x'.repeat(129), '1.0.0\n2.0.0', 'v1/2', '1.0.0+build', 'é1', '1:2']) {
    const wd = tree({ 'service/web/VERSION': v });
    inputError(() => readServices(wd, 'service/web'), /^service\/web\/VERSION: ".*" is not a valid image tag/s);
  }
  for (const v of ['x'.repeat(128), 'v1.2.3', '_a', '1.0.0-rc.1', 'latest', 'A.b_c-D']) {
    const wd = tree({ 'service/web/VERSION': v });
    assert.equal(readServices(wd, 'service/web')[0].version, v);
  }
});

test('readServices: a service folder that is not a valid image name is refused, naming the folder', () => {
  for (const name of ['Web', 'web api', '-web', 'web-', 'web..api', 'wéb', '1x']) {
    const wd = tree({ [`service/${name}/VERSION`]: '1.0.0' });
    inputError(
      () => readServices(wd, 'service/*'),
      new RegExp(`^Service folder "service/${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`),
    );
  }
  const wd = tree({ 'service/web-api/VERSION': '1', 'service/web_api2/VERSION': '2', 'service/web.v2/VERSION': '3' });
  assert.deepEqual(
    summary(readServices(wd, 'service/*')),
    ['web_api2@2', 'web-api@1', 'web.v2@3'].sort((a, b) => a.localeCompare(b)),
  );
});

test('readServices: two service folders that would share an image name or a version variable are refused', () => {
  const wd = tree({
    'service/web/VERSION': '1.0.0',
    'tools/web/VERSION': '9.9.9',
    'service/web-api/VERSION': '1.0.0',
    'service/web_api/VERSION': '2.0.0',
  });
  assert.throws(() => readServices(wd, 'service/web,tools/web'), InputError);
  assert.throws(() => readServices(wd, 'service/web-api,service/web_api'), InputError);
});

// ---------- variables ----------

test('versionVariable: upper case, anything else becomes _', () => {
  assert.equal(versionVariable('web-api'), 'WEB_API_VERSION');
  assert.equal(versionVariable('web'), 'WEB_VERSION');
  assert.equal(versionVariable('web.v2'), 'WEB_V2_VERSION');
  assert.equal(versionVariable('a__b'), 'A__B_VERSION');
});

test('readServices: a folder starting with a digit is refused (2FA_VERSION could not be used as ${VAR})', () => {
  inputError(() => readServices(tree({ 'service/2fa/VERSION': '1.0.0' }), 'service/*'), /starting with a letter/);
  assert.match(versionVariable('fa2'), /^[A-Za-z_][A-Za-z0-9_]*$/);
});

const svc = (name: string, version: string): Service => ({
  name,
  version,
  dir: `/wd/service/${name}`,
  versionFile: `service/${name}/VERSION`,
});

test('versionEnv: REGISTRY, IMAGE_PREFIX, <SERVICE>_VERSION and <SERVICE>_IMAGE', () => {
  assert.deepEqual(
    versionEnv([svc('web', '1.4.2'), svc('web-api', '2.0.0')], 'registry.example.com:5000', 'acme/shop'),
    {
      REGISTRY: 'registry.example.com:5000',
      IMAGE_PREFIX: 'acme/shop',
      WEB_VERSION: '1.4.2',
      WEB_IMAGE: 'registry.example.com:5000/acme/shop/web:1.4.2',
      WEB_API_VERSION: '2.0.0',
      WEB_API_IMAGE: 'registry.example.com:5000/acme/shop/web-api:2.0.0',
    },
  );
  // Without registry or prefix there is no stray slash.
  assert.deepEqual(versionEnv([svc('web', '1')], '', ''), {
    REGISTRY: '',
    IMAGE_PREFIX: '',
    WEB_VERSION: '1',
    WEB_IMAGE: 'web:1',
  });
  assert.equal(versionEnv([svc('web', '1')], 'ghcr.io', '').WEB_IMAGE, 'ghcr.io/web:1');
  assert.equal(versionEnv([svc('web', '1')], '', 'acme').WEB_IMAGE, 'acme/web:1');
});

// ---------- release tag check ----------

test('releaseTagMismatches: on refs/tags/v1.2.0, each VERSION that is not 1.2.0', () => {
  const services = [
    svc('web', '1.2.0'),
    svc('api', '1.2.1'),
    svc('worker', 'latest'),
    svc('cron', 'v1.2.0'),
    svc('edge', '1.2'),
  ];
  const m = releaseTagMismatches(services, 'refs/tags/v1.2.0');
  assert.deepEqual(
    m.map((x) => x.service),
    ['api', 'worker', 'edge'],
  );
  assert.deepEqual(m[0], { service: 'api', versionFile: 'service/api/VERSION', version: '1.2.1', tag: 'v1.2.0' });
});

test('releaseTagMismatches: a tag without v and a pre-release tag', () => {
  assert.deepEqual(releaseTagMismatches([svc('web', '1.2.0')], 'refs/tags/1.2.0'), []);
  assert.deepEqual(releaseTagMismatches([svc('web', '2.0.0-rc.1')], 'refs/tags/v2.0.0-rc.1'), []);
  assert.equal(releaseTagMismatches([svc('web', '2.0.0')], 'refs/tags/v2.0.0-rc.1').length, 1);
});

test('releaseTagMismatches: branches, pull requests and no ref give none', () => {
  const services = [svc('web', '1.2.0'), svc('api', 'whatever')];
  for (const ref of ['refs/heads/main', 'refs/heads/v1.2.0', 'refs/pull/12/merge', '', undefined])
    assert.deepEqual(releaseTagMismatches(services, ref), [], String(ref));
});

test('releaseTagMismatches: a tag that is not a version (refs/tags/nightly) is not a release tag', () => {
  assert.deepEqual(releaseTagMismatches([svc('web', '1.2.0'), svc('api', '0.3.0')], 'refs/tags/nightly'), []);
});

// ---------- stack services with build:, and input `versions` ----------

function stackBuild(wd: string, over: Partial<StackBuild> = {}): StackBuild {
  return {
    stack: 'app',
    file: 'stacks/app.yml',
    line: 3,
    context: wd,
    dockerfile: path.join(wd, 'Dockerfile'),
    target: '',
    args: {},
    cacheFrom: [],
    labels: {},
    repository: 'reg/p/api',
    ...over,
  };
}

test('readServices, build: x-version-file wins, then VERSION in the context, then the service folder, then the root', () => {
  const wd = tree({
    'apps/api/VERSION': '3.0.0',
    'ctx/VERSION': '2.0.0',
    'service/api/VERSION': '1.5.0',
    'service/api/src/': '',
    VERSION: '1.0.0',
  });
  const one = (b: Partial<StackBuild>) => readServices(wd, 'service/*', new Map([['api', stackBuild(wd, b)]]));
  assert.deepEqual(summary(one({ context: path.join(wd, 'ctx'), versionFile: path.join(wd, 'apps/api/VERSION') })), [
    'api@3.0.0',
  ]);
  assert.equal(one({ context: path.join(wd, 'ctx') })[0].versionFile, path.join('ctx', 'VERSION'));
  // Sources cloned into service/api/src, the VERSION beside them: the folder is not built on its own.
  const glasck = one({ context: path.join(wd, 'service/api/src') });
  assert.deepEqual(summary(glasck), ['api@1.5.0']);
  assert.equal(glasck[0].dir, path.join(wd, 'service/api/src'));
  assert.equal(glasck[0].repository, 'reg/p/api');
  const root = tree({ 'apps/': '', VERSION: '1.0.0' });
  assert.deepEqual(
    summary(
      readServices(root, 'service/*', new Map([['api', stackBuild(root, { context: path.join(root, 'apps') })]])),
    ),
    ['api@1.0.0'],
  );
});

test('readServices, build: no version anywhere is an error naming the stack file, line and service', () => {
  const wd = tree({ 'ctx/': '' });
  inputError(
    () => readServices(wd, 'service/*', new Map([['api', stackBuild(wd, { context: path.join(wd, 'ctx') })]])),
    /stacks\/app\.yml:3: service api is built here but has no version.*x-version-file.*input `versions`/,
  );
  inputError(
    () =>
      readServices(wd, 'service/*', new Map([['api', stackBuild(wd, { versionFile: path.join(wd, 'nope/VERSION') })]])),
    /stacks\/app\.yml:3: service api: x-version-file nope\/VERSION: no such file/,
  );
});

test('readServices: input `versions` wins over VERSION files, and names without a folder still get a version', () => {
  const wd = tree({ 'service/web/VERSION': '1.0.0', VERSION: '1.0.0' });
  const s = readServices(wd, 'service/*', new Map([['api', stackBuild(wd)]]), {
    web: '2.0.0',
    api: '3.0.0',
    worker: '4.0.0',
  });
  assert.deepEqual(summary(s), ['web@2.0.0', 'api@3.0.0', 'worker@4.0.0']);
  assert.equal(s[2].dir, '', 'worker is built elsewhere');
  // A folder whose VERSION is missing is fine when the input gives its version.
  assert.deepEqual(summary(readServices(tree({ 'service/web/': '' }), 'service/*', new Map(), { web: '5.0.0' })), [
    'web@5.0.0',
  ]);
  const env = versionEnv(s, 'reg', 'p');
  assert.equal(env.API_IMAGE, 'reg/p/api:3.0.0');
  assert.equal(env.WORKER_VERSION, '4.0.0');
  // A deploy repository's release tag says nothing about versions built elsewhere.
  assert.deepEqual(releaseTagMismatches(s, 'refs/tags/v9.0.0'), []);
});

test('readServices: a stack service and a folder or input name giving one variable clash', () => {
  const wd = tree({ 'service/web-api/VERSION': '1.0.0', VERSION: '1.0.0' });
  inputError(
    () => readServices(wd, 'service/*', new Map([['web_api', stackBuild(wd)]])),
    /service folder "service\/web-api" and stack service "web_api" \(stacks\/app\.yml\) both give the variable WEB_API_VERSION/,
  );
});
