import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { InputError } from '../../src/errors';
import { captureStdout } from '../helpers/stdout';
import { DEFAULTS, Inputs, defaultRelease, parseKeyValues, parseStacks, readInputs } from '../../src/inputs';

const ACTION = YAML.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'action.yml'), 'utf8')) as {
  inputs: Record<string, { default?: string; required?: boolean }>;
};

const SSH_KEY = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDmT',
  '-----END OPENSSH PRIVATE KEY-----',
].join('\n');
const KNOWN_HOSTS = 'vps.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKg1Sc3zT';
const ENV = {
  GITHUB_WORKSPACE: '/ws',
  GITHUB_REF: 'refs/heads/main',
  GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
};

/** A complete, valid deploy; override or blank out what a test is about. */
const VALID: Record<string, string> = {
  host: 'vps.example.com',
  user: 'deploy',
  'ssh-key': SSH_KEY,
  'known-hosts': KNOWN_HOSTS,
  stacks: 'infra=stack/infra.yml\napp=stack/app.yml',
};

/** Like core.getInput: '' for anything not given. Records which inputs were read. */
function getter(values: Record<string, string>, seen?: Set<string>) {
  return (n: string) => {
    seen?.add(n);
    return values[n] ?? '';
  };
}

/** Runs with stdout captured: core.setSecret prints `::add-mask::` there. */
function captured<T>(fn: () => T): { value?: T; error?: unknown; out: string } {
  const stop = captureStdout();
  try {
    const value = fn();
    return { value, out: stop() };
  } catch (error) {
    return { error, out: stop() };
  }
}

function read(values: Record<string, string>, env: NodeJS.ProcessEnv = ENV): Inputs {
  const r = captured(() => readInputs(getter(values), env));
  if (r.error) throw r.error;
  return r.value as Inputs;
}

const deploy = (over: Record<string, string> = {}) => read({ ...VALID, ...over });

/** Asserts an InputError whose message names the input. */
function rejects(fn: () => unknown, input: string, also?: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `an InputError, got ${String(e)}`);
    assert.ok(e.message.includes(`\`${input}\``), `the message names \`${input}\`: ${e.message}`);
    if (also) assert.match(e.message, also);
    return true;
  });
}

// ---------- defaults ----------

test('DEFAULTS equals the non-empty defaults of action.yml, input for input', () => {
  const fromYml: Record<string, string> = {};
  for (const [name, spec] of Object.entries(ACTION.inputs))
    if (spec.default !== undefined && spec.default !== '') fromYml[name] = String(spec.default);
  assert.deepEqual({ ...DEFAULTS }, fromYml);
});

test('readInputs reads every input action.yml declares, and no other', () => {
  const seen = new Set<string>();
  captured(() =>
    readInputs(
      getter({ ...VALID, 'registry-password': 'secret-password', 'ssh-passphrase': 'passphrase!' }, seen),
      ENV,
    ),
  );
  assert.deepEqual([...seen].sort(), Object.keys(ACTION.inputs).sort());
});

test('no input is `required: true` in action.yml (readInputs checks them per command)', () => {
  for (const [name, spec] of Object.entries(ACTION.inputs)) assert.notEqual(spec.required, true, name);
});

test('readInputs: defaults when inputs are empty (what the runner gives for a missing input)', () => {
  const i = read({ command: 'build' });
  assert.equal(i.command, 'build');
  assert.equal(i.workingDirectory, path.resolve('/ws'));
  assert.equal(i.services, 'service/*');
  assert.equal(i.registry, '');
  assert.equal(i.imagePrefix, '');
  assert.deepEqual(i.buildArgs, {});
  assert.equal(i.releaseTagCheck, 'warn');
  assert.equal(i.port, 22);
  assert.deepEqual(i.stacks, []);
  assert.deepEqual(i.env, {});
  assert.equal(i.timeout, undefined, 'auto');
  assert.equal(i.stability, undefined);
  assert.equal(i.rollbackTo, 'previous');
  assert.equal(i.release, 'sha-0123456');
  assert.equal(i.keepReleases, 10);
  assert.equal(i.lockTimeout, 300);
  assert.equal(i.remoteDir, '.deploy-action');
  assert.deepEqual(i.skipChecks, []);
  assert.equal(i.dryRun, false);
  // With no input at all the command is deploy, which needs a host.
  rejects(() => read({}), 'host');
});

test('readInputs: a full deploy', () => {
  const i = deploy({
    'working-directory': 'deploy',
    registry: 'registry.example.com:5000',
    'registry-username': ' bot ',
    'image-prefix': 'acme/shop',
    'build-args': 'NODE_ENV=production',
    target: ' runtime ',
    port: '2222',
    timeout: '120',
    stability: '45',
    'rollback-to': '1.4.2',
    release: 'v2',
    'keep-releases': '3',
    'lock-timeout': '0',
    'remote-dir': '/srv/deploy',
    'skip-checks': 'no-healthcheck, overlay-mtu\nswarm-ignored',
    'dry-run': 'TRUE',
  });
  assert.equal(i.workingDirectory, path.resolve('/ws/deploy'));
  assert.equal(i.registryUsername, 'bot');
  assert.equal(i.imagePrefix, 'acme/shop');
  assert.deepEqual(i.buildArgs, { NODE_ENV: 'production' });
  assert.equal(i.target, 'runtime');
  assert.equal(i.port, 2222);
  assert.equal(i.timeout, 120);
  assert.equal(i.stability, 45);
  assert.equal(i.rollbackTo, '1.4.2');
  assert.equal(i.release, 'v2');
  assert.equal(i.keepReleases, 3);
  assert.equal(i.lockTimeout, 0);
  assert.equal(i.remoteDir, '/srv/deploy');
  assert.deepEqual(i.skipChecks, ['no-healthcheck', 'overlay-mtu', 'swarm-ignored']);
  assert.equal(i.dryRun, true);
  assert.equal(i.sshKey, SSH_KEY);
  assert.equal(i.knownHosts, KNOWN_HOSTS);
});

test('readInputs: an unknown command is an InputError naming `command`', () => {
  rejects(() => read({ ...VALID, command: 'destroy' }), 'command', /deploy, build, check, rollback/);
});

// ---------- stacks ----------

test('parseStacks: order kept, several files per stack, comments and blank lines skipped', () => {
  const s = parseStacks(
    [
      '# layers',
      '',
      'infra = stack/infra.yml',
      'app=stack/app.yml, stack/app.prod.yml ,',
      '  edge=edge.yml  ',
      'b-2_x=x.yml',
    ].join('\r\n'),
  );
  assert.deepEqual(s, [
    { name: 'infra', files: ['stack/infra.yml'] },
    { name: 'app', files: ['stack/app.yml', 'stack/app.prod.yml'] },
    { name: 'edge', files: ['edge.yml'] },
    { name: 'b-2_x', files: ['x.yml'] },
  ]);
  assert.deepEqual(parseStacks(''), []);
  // A path that only passes through a folder and comes back is still inside.
  assert.deepEqual(parseStacks('app=stack/../app.yml')[0].files, ['stack/../app.yml']);
});

test('parseStacks: a compose file name with a double quote is refused (docker reads -c as CSV); other odd names pass', () => {
  assert.throws(
    () => parseStacks('app=stack/a "b".yml'),
    (e: unknown) =>
      e instanceof InputError &&
      /compose file "stack\/a "b".yml" of stack "app" contains a double quote/.test(e.message),
  );
  assert.deepEqual(parseStacks("app=stack/a;b $(x) `y` 'q'.yml")[0].files, ["stack/a;b $(x) `y` 'q'.yml"]);
});

test('parseStacks: a stack listed twice is refused', () => {
  assert.throws(
    () => parseStacks('app=a.yml\ninfra=i.yml\napp=b.yml'),
    (e: unknown) => e instanceof InputError && /stack "app" is listed twice/.test(e.message),
  );
});

test('parseStacks: unsafe or malformed stack names are refused, naming the input and the line', () => {
  for (const name of ['a;b', '../x', '$(x)', '`x`', 'my stack', '-app', '_app', 'a/b', 'a.b', 'a'.repeat(64), 'é']) {
    assert.throws(
      () => parseStacks(`ok=a.yml\n${name}=b.yml`),
      (e: unknown) => e instanceof InputError && /Input `stacks` line 2/.test(e.message),
      name,
    );
  }
  assert.equal(parseStacks(`${'a'.repeat(63)}=a.yml`)[0].name.length, 63);
  assert.throws(() => parseStacks('app'), /line 1/);
  assert.throws(() => parseStacks('=a.yml'), /line 1/);
  assert.throws(() => parseStacks('app='), /stack "app" names no compose file/);
  assert.throws(() => parseStacks('app= , '), /names no compose file/);
});

test('parseStacks: a compose file outside the working directory is refused, naming the input', () => {
  for (const f of ['../x.yml', '/etc/stack.yml', 'a/../../x.yml', '..', './../x.yml']) {
    assert.throws(
      () => parseStacks(`app=ok.yml,${f}`),
      (e: unknown) =>
        e instanceof InputError &&
        e.message.includes('Input `stacks`') &&
        e.message.includes(`"${f}"`) &&
        /inside working-directory/.test(e.message),
      f,
    );
  }
});

test('readInputs: stacks required for deploy, rollback and check, not for build', () => {
  rejects(() => deploy({ stacks: '' }), 'stacks', /required for command deploy/);
  rejects(() => deploy({ command: 'rollback', stacks: '# nothing\n' }), 'stacks', /rollback/);
  rejects(() => read({ command: 'check' }), 'stacks');
  assert.deepEqual(read({ command: 'build' }).stacks, []);
  assert.deepEqual(
    deploy().stacks.map((s) => s.name),
    ['infra', 'app'],
  );
});

// ---------- KEY=VALUE ----------

test('parseKeyValues: values keep = and spaces; comments, blank lines and CRLF are handled', () => {
  const kv = parseKeyValues(
    [
      '# comment',
      '',
      'A=1',
      'URL=postgres://u:p@db/x?sslmode=require&a=b',
      '  SPACED = v w ',
      'EMPTY=',
      '_X1=#not-a-comment',
    ].join('\r\n'),
    'env',
  );
  assert.deepEqual(kv, {
    A: '1',
    URL: 'postgres://u:p@db/x?sslmode=require&a=b',
    SPACED: ' v w ',
    EMPTY: '',
    _X1: '#not-a-comment',
  });
  assert.deepEqual(parseKeyValues('A=1\nA=2', 'env'), { A: '2' }, 'the last one wins');
});

test('parseKeyValues: a bad key is an InputError naming the input and the line', () => {
  for (const line of ['1A=x', 'A-B=x', 'NOEQUALS', '=x', 'export A=1', 'A B=1']) {
    assert.throws(
      () => parseKeyValues(`OK=1\n${line}`, 'env'),
      (e: unknown) => e instanceof InputError && /Input `env` line 2/.test(e.message),
      line,
    );
  }
});

test('readInputs: env and build-args go through KEY=VALUE parsing under their own names', () => {
  assert.deepEqual(deploy({ env: 'DOMAIN=example.com\nOPTS=a=b' }).env, { DOMAIN: 'example.com', OPTS: 'a=b' });
  rejects(() => deploy({ env: 'bad key=1' }), 'env', /line 1/);
  rejects(() => deploy({ 'build-args': 'OK=1\n\n9=x' }), 'build-args', /line 3/);
});

// ---------- connection ----------

test('readInputs: host, user, ssh-key and known-hosts are required for deploy and rollback', () => {
  for (const command of ['deploy', 'rollback']) {
    for (const name of ['host', 'user', 'ssh-key', 'known-hosts']) {
      rejects(() => read({ ...VALID, command, [name]: '' }), name);
      rejects(() => read({ ...VALID, command, [name]: '   ' }), name);
    }
  }
});

test('readInputs: check and build need no host, user, key or known-hosts', () => {
  const i = read({ command: 'check', stacks: 'app=a.yml' });
  assert.equal(i.host, '');
  assert.equal(i.sshKey, '');
  assert.equal(read({ command: 'build' }).user, '');
});

test('readInputs: check given a host connects, so it needs the same key, known-hosts and user as deploy', () => {
  const i = read({ ...VALID, command: 'check' });
  assert.equal(i.host, VALID.host);
  for (const name of ['user', 'ssh-key', 'known-hosts'])
    rejects(() => read({ ...VALID, command: 'check', [name]: '' }), name);
  rejects(() => read({ ...VALID, command: 'check', host: 'a;b' }), 'host');
});

test('readInputs: host and user are validated', () => {
  for (const host of ['vps.example.com', '203.0.113.7', '[2001:db8::1]', '2001:db8::1', 'my_host'])
    assert.equal(deploy({ host }).host, host);
  for (const host of ['a b', 'a;b', '$(x)', 'user@host', 'host/path']) rejects(() => deploy({ host }), 'host');
  for (const user of ['deploy', 'ci-bot', 'a.b', '_x']) assert.equal(deploy({ user }).user, user);
  for (const user of ['1x', 'a b', 'a;b', 'x'.repeat(33), '-x']) rejects(() => deploy({ user }), 'user');
});

test('readInputs: port is a whole number 1..65535', () => {
  assert.equal(deploy({ port: '1' }).port, 1);
  assert.equal(deploy({ port: '65535' }).port, 65535);
  assert.equal(deploy({ port: ' 2222 ' }).port, 2222);
  for (const port of ['0', '65536', 'abc', '22.5', '-1', '1e3', '0x16']) rejects(() => deploy({ port }), 'port');
});

// ---------- registry and images ----------

test('readInputs: registry is host[:port]', () => {
  for (const registry of ['ghcr.io', 'registry.example.com:5000', '127.0.0.1:5000', 'localhost:5000', 'docker.io'])
    assert.equal(deploy({ registry }).registry, registry);
  for (const registry of ['https://ghcr.io', 'ghcr.io/acme', 'ghcr.io:port', 'a b', 'ghcr.io:', 'reg;rm'])
    rejects(() => deploy({ registry }), 'registry');
});

test('readInputs: image-prefix is a repository path; surrounding slashes are dropped', () => {
  assert.equal(deploy({ 'image-prefix': 'acme' }).imagePrefix, 'acme');
  assert.equal(deploy({ 'image-prefix': '/acme/shop/' }).imagePrefix, 'acme/shop');
  assert.equal(deploy({ 'image-prefix': 'a.b/c__d/e-f' }).imagePrefix, 'a.b/c__d/e-f');
  for (const p of ['Acme', 'acme//shop', 'acme/-x', 'acme shop', 'acme/shop:1', 'a_-b', 'acme/_x'])
    rejects(() => deploy({ 'image-prefix': p }), 'image-prefix');
});

// ---------- remote-dir ----------

test('readInputs: remote-dir: ~ means the home folder (SSH starts there); .. is refused', () => {
  assert.equal(deploy({ 'remote-dir': '~/x' }).remoteDir, 'x');
  assert.equal(deploy({ 'remote-dir': '~/deploy/state' }).remoteDir, 'deploy/state');
  assert.equal(deploy({ 'remote-dir': '~' }).remoteDir, '.');
  assert.equal(deploy({ 'remote-dir': '~/' }).remoteDir, '.');
  assert.equal(deploy({ 'remote-dir': '/srv/deploy-action' }).remoteDir, '/srv/deploy-action');
  for (const d of ['..', '../x', 'a/../b', '~/..', 'a b', '$(x)', 'x;rm -rf', 'a\nb'])
    rejects(() => deploy({ 'remote-dir': d }), 'remote-dir');
});

// ---------- release ----------

test('defaultRelease: a tag without its v, else sha-<7>', () => {
  assert.equal(defaultRelease('refs/tags/v1.2.3', 'abcdef0123'), '1.2.3');
  assert.equal(defaultRelease('refs/tags/1.2.3', 'abcdef0123'), '1.2.3');
  assert.equal(defaultRelease('refs/tags/v2.0.0-rc.1', 'abcdef0123'), '2.0.0-rc.1');
  assert.equal(defaultRelease('refs/heads/main', 'abcdef0123'), 'sha-abcdef0');
  assert.equal(defaultRelease('refs/pull/7/merge', 'abcdef0123'), 'sha-abcdef0');
  // A tag that is not a valid label falls back to the commit.
  assert.equal(defaultRelease('refs/tags/release/2024', 'abcdef0123'), 'sha-abcdef0');
  assert.equal(defaultRelease(undefined, undefined), 'sha-unknown');
});

test('readInputs: release from GITHUB_REF and GITHUB_SHA unless given; validated', () => {
  assert.equal(read({ ...VALID }, { ...ENV, GITHUB_REF: 'refs/tags/v1.2.3' }).release, '1.2.3');
  assert.equal(read({ ...VALID }, { ...ENV, GITHUB_REF: 'refs/heads/main' }).release, 'sha-0123456');
  assert.equal(read({ ...VALID, release: 'hotfix-7' }, { ...ENV, GITHUB_REF: 'refs/tags/v1.2.3' }).release, 'hotfix-7');
  for (const release of ['a b', '-x', '.x', 'a/b', 'x'.repeat(129), '$(x)'])
    rejects(() => deploy({ release }), 'release');
  assert.equal(deploy({ release: 'x'.repeat(128) }).release.length, 128);
});

// ---------- numbers and switches ----------

test('readInputs: timeout ≥ 1, keep-releases ≥ 1, lock-timeout ≥ 0, stability auto or seconds', () => {
  rejects(() => deploy({ timeout: '0' }), 'timeout');
  rejects(() => deploy({ timeout: '5m' }), 'timeout');
  assert.equal(deploy({ timeout: 'auto' }).timeout, undefined);
  rejects(() => deploy({ 'keep-releases': '0' }), 'keep-releases');
  rejects(() => deploy({ 'lock-timeout': '-1' }), 'lock-timeout');
  assert.equal(deploy({ 'lock-timeout': '0' }).lockTimeout, 0);
  assert.equal(deploy({ stability: 'auto' }).stability, undefined);
  assert.equal(deploy({ stability: '0' }).stability, 0);
  assert.equal(deploy({ stability: ' 30 ' }).stability, 30);
  for (const stability of ['30s', '-1', 'AUTO ', 'none', '1.5']) rejects(() => deploy({ stability }), 'stability');
});

test('readInputs: dry-run and release-tag-check take only their values', () => {
  assert.equal(deploy({ 'dry-run': 'true' }).dryRun, true);
  assert.equal(deploy({ 'dry-run': 'False' }).dryRun, false);
  rejects(() => deploy({ 'dry-run': 'yes' }), 'dry-run');
  for (const v of ['warn', 'strict', 'off'] as const)
    assert.equal(deploy({ 'release-tag-check': v }).releaseTagCheck, v);
  rejects(() => deploy({ 'release-tag-check': 'fail' }), 'release-tag-check', /warn, strict, off/);
});

// ---------- secrets ----------

test('readInputs: secrets go to core.setSecret (::add-mask::), whole and line by line, before any validation error', () => {
  const values = {
    ...VALID,
    'registry-password': 'ghp_registrytoken123',
    'ssh-passphrase': 'open sesame',
    port: 'not-a-port',
  };
  const r = captured(() => readInputs(getter(values), ENV));
  assert.ok(r.error instanceof InputError, 'the bad port still fails');
  const masks = r.out
    .split(/\r?\n/)
    .filter((l) => l.startsWith('::add-mask::'))
    .map((l) => l.slice('::add-mask::'.length));
  assert.ok(masks.includes('ghp_registrytoken123'));
  assert.ok(masks.includes('open sesame'));
  // The whole key (newlines escaped as the runner expects) and each long line of it.
  assert.ok(masks.includes(SSH_KEY.replace(/\n/g, '%0A')));
  for (const line of SSH_KEY.split('\n')) {
    if (line.length > 8) assert.ok(masks.includes(line), `masked: ${line}`);
  }
  assert.ok(!masks.includes('QyNTUxOQAAACDmT'.slice(0, 8)));
  assert.ok(!r.out.includes('::add-mask::\n'), 'no empty mask');
});

test('readInputs: secrets are masked even when the `command` input itself is invalid', () => {
  const r = captured(() =>
    readInputs(getter({ ...VALID, command: 'deploi', 'registry-password': 'ghp_registrytoken123' }), ENV),
  );
  assert.ok(r.error instanceof InputError, 'the bad command still fails');
  assert.match(String((r.error as Error).message), /command/);
  assert.match(r.out, /^::add-mask::ghp_registrytoken123$/m);
});

/** Every substring of `value` at least `min` long. */
function pieces(value: string, min: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + min <= value.length; i++)
    for (let j = i + min; j <= value.length; j++) out.push(value.slice(i, j));
  return out;
}

test('readInputs: a bad `secrets` line is named by its number (and key), never by any part of its value', () => {
  const cases = [
    // No `=`: the whole line may be the value.
    { line: 'not a valid line with s3cr3t-value', values: ['s3cr3t-value'], whole: true, key: undefined },
    { line: 'BAD KEY=s3cr3t', values: ['s3cr3t'], whole: false, key: undefined },
    { line: 'db-password=hUnt3r2-x9', values: ['hUnt3r2-x9'], whole: false, key: 'db-password' },
    { line: '  =Zq0-v4lu3', values: ['Zq0-v4lu3'], whole: false, key: undefined },
  ];
  for (const c of cases) {
    const r = captured(() =>
      readInputs(
        getter({
          ...VALID,
          'registry-password': 'reg1stry-pw',
          'ssh-passphrase': 'pass-phrase-x',
          secrets: `OK=fine-value\n${c.line}`,
        }),
        ENV,
      ),
    );
    assert.ok(r.error instanceof InputError, `an InputError for ${c.line}`);
    const msg = r.error.message;
    assert.match(msg, /Input `secrets` line 2/);
    for (const v of c.values)
      for (const p of pieces(v, 3)) assert.ok(!msg.includes(p), `"${p}" of the value in: ${msg}`);
    if (c.whole) for (const p of pieces(c.line, 7)) assert.ok(!msg.includes(p), `"${p}" of the line in: ${msg}`);
    if (c.key) assert.ok(msg.includes(`"${c.key}"`), `the key is named: ${msg}`);
    for (const other of ['fine-value', 'reg1stry-pw', 'pass-phrase-x', SSH_KEY.split('\n')[1]])
      assert.ok(!msg.includes(other), msg);
  }
});

test('parseKeyValues: env and build-args still quote the start of a bad line (they are not secret)', () => {
  assert.throws(() => parseKeyValues('A B=1', 'env'), /"A B=1"/);
});

test('readInputs: no mask is issued for empty secrets', () => {
  const r = captured(() => readInputs(getter({ command: 'build' }), ENV));
  assert.equal(r.error, undefined);
  assert.doesNotMatch(r.out, /add-mask/);
});

test('readInputs: skip-checks takes known rule ids (or all); a typo is an error naming the input', () => {
  assert.deepEqual(deploy({ 'skip-checks': 'all' }).skipChecks, ['all']);
  rejects(() => deploy({ 'skip-checks': 'no-healthcheck,overlay-mtuu' }), 'skip-checks', /unknown rule "overlay-mtuu"/);
  rejects(() => deploy({ 'skip-checks': '$(touch /tmp/x)' }), 'skip-checks');
});

test('a bad build-args line (build args often carry tokens) is named by its line, never by its text', () => {
  const r = captured(() => deploy({ 'build-args': 'NPM_TOKEN=ok\nnpm-token ghp_s3cr3tT0ken' }));
  assert.match(String(r.error), /Input `build-args` line 2/);
  assert.doesNotMatch(String(r.error), /ghp_|s3cr3t|T0ken/);
});

test('readInputs: versions as name=version lines or as the JSON of the `versions` output', () => {
  assert.deepEqual(deploy().versions, {});
  assert.deepEqual(deploy({ versions: '# built elsewhere\napi=1.4.2\n\nweb = 2.0.0-rc.1\n' }).versions, {
    api: '1.4.2',
    web: '2.0.0-rc.1',
  });
  assert.deepEqual(deploy({ versions: '{"api":"1.4.2","web-front":"sha-05e17b6"}' }).versions, {
    api: '1.4.2',
    'web-front': 'sha-05e17b6',
  });
  rejects(() => deploy({ versions: 'api 1.4.2' }), 'versions', /line 1: "api 1\.4\.2" is not name=version/);
  rejects(() => deploy({ versions: 'API=1.4.2' }), 'versions', /"API" is not a service name/);
  rejects(() => deploy({ versions: 'api=' }), 'versions', /the version of api, "", is not a valid image tag/);
  rejects(() => deploy({ versions: 'api=1.0\napi=1.1' }), 'versions', /api is given twice/);
  rejects(() => deploy({ versions: '{"api": 1.4}' }), 'versions', /the version of api, 1\.4, is not a valid image tag/);
  rejects(() => deploy({ versions: '{"api": "1.4"' }), 'versions', /not valid JSON/);
  rejects(() => deploy({ versions: '["api"]' }), 'versions', /must be an object/);
});
