/**
 * Files the stacks bind-mount with a relative source: found as docker/cli reads them, refused when
 * missing (checks and deploy alike, with file and line), shipped by content and pointed at from the
 * uploaded stack file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';
import { checkStack } from '../../src/checks';
import { bindMounts, rewriteBindSources } from '../../src/compose';
import { InputError } from '../../src/errors';
import { installFiles, mountSource, shipPath } from '../../src/files';
import { LoadedStack, loadStack, prepareStack } from '../../src/stack';
import { buildModel } from '../../src/model';

/** The deploy's rendering of a stack, its model built with `env`. */
const prepare = (s: LoadedStack, dir: string, env: Record<string, string>) => prepareStack(buildModel(s, env), dir);
import { bindMountFindings } from '../../src/placement';
import { node } from '../helpers/nodes';
import { LocalShell } from '../helpers/host';

function project(files: Record<string, string | Buffer>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'files-unit-'));
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

const KEYSTORE = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0a, 0x00, 0x0d, 0x0a]);

const STACK = `version: "3.8"
x-conf: &conf ./config/app.conf:/etc/app.conf:ro
services:
  proxy:
    image: traefik:v3.1
    volumes:
      - ./config/traefik.yml:/etc/traefik/traefik.yml:ro
      - type: bind
        source: ./certs
        target: /certs
        read_only: true
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - data:/data
      - ~/logs:/logs
      - \${CONF_DIR}/dynamic:/etc/traefik/dynamic
  app:
    image: app:1
    environment:
      PRICE: "$$5"
    volumes:
      - *conf
      - type: bind
        source: config/keystore.p12
        target: /run/keystore.p12
      - type: volume
        source: ./not-a-bind
        target: /x
volumes:
  data:
`;

function files(): Record<string, string | Buffer> {
  return {
    'stacks/app.yml': STACK,
    'stacks/config/traefik.yml': 'entryPoints:\n  web:\n    address: ":80"\n',
    'stacks/config/app.conf': 'greeting = hello\n',
    'stacks/config/keystore.p12': KEYSTORE,
    'stacks/certs/site.crt': 'CERT\n',
    'stacks/certs/sub/chain.pem': 'CHAIN\n',
    'stacks/config/dynamic/routes.yml': 'http: {}\n',
  };
}

test('bindMounts: relative sources only, short and long syntax, as docker/cli tells bind from volume', () => {
  const dir = project(files());
  const p = prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, dir), dir, { CONF_DIR: './config' });
  const found = bindMounts(p.resolved[0].data).map((b) => `${b.service}#${b.index} ${b.source} ${b.path.join('.')}`);
  assert.deepEqual(found, [
    'proxy#0 ./config/traefik.yml services.proxy.volumes.0',
    'proxy#1 ./certs services.proxy.volumes.1.source',
    'proxy#5 ./config/dynamic services.proxy.volumes.5',
    'app#0 ./config/app.conf services.app.volumes.0',
    'app#1 config/keystore.p12 services.app.volumes.1.source',
  ]);
});

test('prepareStack: ships each bind-mounted file and folder by content, and points the uploaded stack file at it', () => {
  const dir = project(files());
  fs.chmodSync(path.join(dir, 'stacks/certs/site.crt'), 0o640);
  const p = prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, dir), dir, { CONF_DIR: './config' });
  assert.deepEqual(p.shipped.map((f) => `${f.rel} ${f.kind}`).sort(), [
    'stacks/certs dir',
    'stacks/config/app.conf file',
    'stacks/config/dynamic dir',
    'stacks/config/keystore.p12 file',
    'stacks/config/traefik.yml file',
  ]);
  const ks = p.shipped.find((f) => f.name === 'keystore.p12');
  assert.ok(ks?.entries[0].content?.equals(KEYSTORE), 'the keystore is shipped byte for byte');
  const certs = p.shipped.find((f) => f.name === 'certs');
  const mode = (rel: string) => (fs.statSync(path.join(dir, 'stacks/certs', rel)).mode & 0o777).toString(8);
  assert.deepEqual(
    certs?.entries.map((e) => `${e.sub || '.'} ${e.kind} ${e.mode.toString(8)}`),
    ['. dir', 'site.crt file', 'sub dir', 'sub/chain.pem file'].map((l) => `${l} ${mode(l.split(' ')[0])}`),
  );
  assert.equal(mode('site.crt'), '640');
  // The release folder holds the stack file; the shipped files live under files/<hash>/<name>.
  assert.deepEqual(
    p.uploads.map((u) => u.rel),
    ['stacks/app.yml'],
  );
  const up = String(p.uploads[0].content);
  const data = YAML.parse(up);
  const src = (f: string) => `../../../files/${p.shipped.find((x) => x.name === f)?.hash}/${f}`;
  assert.deepEqual(data.services.proxy.volumes.slice(0, 3), [
    `${src('traefik.yml')}:/etc/traefik/traefik.yml:ro`,
    { type: 'bind', source: src('certs'), target: '/certs', read_only: true },
    '/var/run/docker.sock:/var/run/docker.sock:ro',
  ]);
  assert.deepEqual(data.services.proxy.volumes.slice(3), [
    'data:/data',
    '~/logs:/logs',
    `${src('dynamic')}:/etc/traefik/dynamic`,
  ]);
  assert.equal(data.services.app.volumes[0], `${src('app.conf')}:/etc/app.conf:ro`);
  assert.equal(data.services.app.volumes[1].source, src('keystore.p12'));
  assert.equal(data.services.app.volumes[2].source, './not-a-bind', 'a volume is left alone');
  assert.match(up, /PRICE: "\$\$5"/, 'a literal $ stays escaped for the host');
  // The same content elsewhere: the same hash. Another byte: another hash.
  const other = project(files());
  const again = prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, other), other, {
    CONF_DIR: './config',
  });
  assert.equal(
    again.shipped.find((f) => f.name === 'traefik.yml')?.hash,
    p.shipped.find((f) => f.name === 'traefik.yml')?.hash,
  );
  fs.appendFileSync(path.join(dir, 'stacks/certs/sub/chain.pem'), 'X');
  const changed = prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, dir), dir, {
    CONF_DIR: './config',
  });
  assert.notEqual(changed.shipped.find((f) => f.name === 'certs')?.hash, certs?.hash);
  assert.equal(
    changed.shipped.find((f) => f.name === 'traefik.yml')?.hash,
    p.shipped.find((f) => f.name === 'traefik.yml')?.hash,
  );
});

test(
  'docker stack config reads the uploaded stack file from the release folder: the source is the shipped copy',
  { skip: spawnSync('docker', ['--version']).status !== 0 && 'no docker client' },
  () => {
    const dir = project(files());
    const p = prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, dir), dir, { CONF_DIR: './config' });
    const host = fs.mkdtempSync(path.join(os.tmpdir(), 'files-host-'));
    const release = path.join(host, 'stacks/edge/releases/20261201T140200Z-sha-05e17b6');
    for (const u of p.uploads) {
      fs.mkdirSync(path.dirname(path.join(release, u.rel)), { recursive: true });
      fs.writeFileSync(path.join(release, u.rel), u.content);
    }
    const res = spawnSync('docker', ['stack', 'config', '-c', 'stacks/app.yml'], {
      cwd: release,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, DOCKER_HOST: 'unix:///nonexistent/docker.sock', DOCKER_CONFIG: host },
    });
    assert.equal(res.status, 0, res.stderr);
    const traefik = p.shipped.find((f) => f.name === 'traefik.yml')!;
    assert.ok(
      res.stdout.includes(`source: ${path.join(host, 'stacks/edge/files', traefik.hash, 'traefik.yml')}`),
      res.stdout,
    );
  },
);

test('mountSource: relative to the first compose file inside the release folder', () => {
  assert.equal(mountSource('stacks/app.yml', { hash: 'h', name: 'a.yml' }), '../../../files/h/a.yml');
  assert.equal(mountSource('app.yml', { hash: 'h', name: 'a.yml' }), '../../files/h/a.yml');
  assert.equal(mountSource('deploy/stacks/app.yml', { hash: 'h', name: 'conf' }), '../../../../files/h/conf');
});

test('a missing bind source: missing-file with file and line in the checks, and the deploy refuses it', () => {
  const dir = project({
    'stacks/app.yml':
      'services:\n  proxy:\n    image: traefik:v3.1\n    volumes:\n      - ./config/traefik.yml:/etc/traefik/traefik.yml:ro\n      - type: bind\n        source: ./certs\n        target: /certs\n',
  });
  const stack = loadStack({ name: 'edge', files: ['stacks/app.yml'] }, dir);
  const found = checkStack(stack, {}).filter((f) => f.rule === 'missing-file');
  assert.deepEqual(
    found.map((f) => `${f.file}:${f.line}:${f.col} ${f.severity} ${f.service}`),
    ['stacks/app.yml:5:9 error proxy', 'stacks/app.yml:7:9 error proxy'],
  );
  assert.match(found[0].message, /bind mount source \.\/config\/traefik\.yml does not exist/);
  assert.throws(
    () => prepare(stack, dir, {}),
    (e: unknown) =>
      e instanceof InputError &&
      /^stacks\/app\.yml:5:9: service "proxy" bind-mounts \.\/config\/traefik\.yml, which does not exist/.test(
        e.message,
      ),
  );
  // Outside working-directory: refused by the deploy, with the line.
  const out = project({
    'stacks/app.yml': 'services:\n  proxy:\n    image: traefik:v3.1\n    volumes: ["../../etc:/x"]\n',
  });
  assert.throws(
    () => prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, out), out, {}),
    /stacks\/app\.yml:4:15: service "proxy" bind-mounts \.\.\/\.\.\/etc, outside working-directory/,
  );
});

test('rewriteBindSources: anchors are rewritten once, quoted scalars whole, unknown sources left alone', () => {
  const text = 'x: &a "./a:/a"\nservices:\n  s:\n    volumes: [*a, \'./b:/b:ro\', ./c:/c]\n  t:\n    volumes: [*a]\n';
  const out = rewriteBindSources(text, (src) => (src === './c' ? undefined : `/new${src.slice(1)}`));
  assert.equal(
    out,
    'x: &a "/new/a:/a"\nservices:\n  s:\n    volumes: [*a, "/new/b:/b:ro", ./c:/c]\n  t:\n    volumes: [*a]\n',
  );
});

/** A host that is a temp folder: scripts run in `sh` there, files written through the real writeFileScript. */
const localHost = () => new LocalShell('local@host');

test('installFiles: byte for byte with their modes, under the content hash; an existing hash is not sent again', async () => {
  const dir = project(files());
  fs.chmodSync(path.join(dir, 'stacks/certs/sub'), 0o550);
  fs.chmodSync(path.join(dir, 'stacks/config/keystore.p12'), 0o644);
  fs.mkdirSync(path.join(dir, 'stacks/certs/empty'));
  const p = prepare(loadStack({ name: 'edge', files: ['stacks/app.yml'] }, dir), dir, { CONF_DIR: './config' });
  const host = localHost();
  const first = await installFiles(host, 'd/stacks/edge/files', p.shipped);
  assert.equal(first.shipped.length, 5);
  const at = (f: string) => p.shipped.find((x) => x.name === f)!;
  const ks = path.join(host.home, 'd/stacks/edge/files', at('keystore.p12').hash, 'keystore.p12');
  assert.ok(fs.readFileSync(ks).equals(KEYSTORE));
  assert.equal(fs.statSync(ks).mode & 0o777, 0o644, 'the local mode, not 600: a container user may not be the owner');
  const certs = path.join(host.home, 'd/stacks/edge/files', at('certs').hash, 'certs');
  assert.equal(fs.readFileSync(path.join(certs, 'sub/chain.pem'), 'utf8'), 'CHAIN\n');
  assert.equal(fs.statSync(path.join(certs, 'sub')).mode & 0o777, 0o550);
  assert.ok(fs.statSync(path.join(certs, 'empty')).isDirectory(), 'an empty folder is shipped too');
  assert.deepEqual(
    fs.readdirSync(path.join(host.home, 'd/stacks/edge/files')).filter((n) => n.startsWith('.tmp')),
    [],
    'a temp folder left',
  );
  // Again: one probe, nothing written.
  const n = host.scripts.length;
  const second = await installFiles(host, 'd/stacks/edge/files', p.shipped);
  assert.deepEqual([second.shipped.length, second.present.length, host.scripts.length - n], [0, 5, 1]);
});

test('bindMountFindings: a warning on a multi-node swarm unless the service can only run on this manager', () => {
  const nodes = [
    node({ id: 'm1', role: 'manager', hostname: 'manager1' }),
    node({ id: 'w1', role: 'worker', hostname: 'worker1' }),
    node({ id: 'w2', role: 'worker', hostname: 'worker2' }),
  ];
  const svc = (name: string, constraints: string[]) =>
    ({ name, placement: { constraints, maxReplicasPerNode: 0 } }) as never;
  const stack = {
    name: 'edge',
    binds: [{ service: 'proxy', source: './config/traefik.yml', file: 'stacks/app.yml', line: 7, col: 9 }],
  };
  const f = bindMountFindings(stack, [svc('proxy', [])], nodes, 'm1');
  assert.deepEqual(
    f.map((x) => `${x.rule} ${x.severity} ${x.file}:${x.line}:${x.col}`),
    ['bind-mount-node warning stacks/app.yml:7:9'],
  );
  assert.match(
    f[0].message,
    /ships it to this manager \(manager1 \(manager; no labels\)\) only.*2 other node\(s\) \(worker1.*worker2.*node\.hostname == manager1/,
  );
  assert.deepEqual(bindMountFindings(stack, [svc('proxy', ['node.hostname == manager1'])], nodes, 'm1'), []);
  assert.deepEqual(bindMountFindings(stack, [svc('proxy', ['node.role == manager'])], nodes, 'm1'), []);
  assert.deepEqual(
    bindMountFindings(stack, [svc('proxy', [])], [nodes[0]], 'm1'),
    [],
    'one node: nothing to warn about',
  );
  assert.deepEqual(bindMountFindings(stack, [svc('other', [])], nodes, 'm1'), [], 'a service without bind mounts');
});

test('shipPath: a symbolic link looping back is an InputError naming the path', () => {
  const dir = project({ 'a/x': '1' });
  fs.symlinkSync('..', path.join(dir, 'a', 'up'));
  assert.throws(
    () => shipPath(path.join(dir, 'a'), 'a'),
    (e: unknown) => e instanceof InputError && /a\/up\/a: a symbolic link loops back/.test(e.message),
  );
});
