import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import {
  ComposeFile,
  loadComposeFile,
  parseDuration,
  positionOf,
  referencedFiles,
  resolveCompose,
  stackServices,
} from '../../src/compose';
import { InputError } from '../../src/errors';
import { interpolateString } from '../../src/interpolate';

const FIX = path.join(__dirname, '..', 'fixtures', 'checks');
const load = (rel: string): ComposeFile => loadComposeFile(path.join(FIX, rel), rel);

function tmpFile(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-test-'));
  const file = path.join(dir, 'stack.yml');
  fs.writeFileSync(file, text);
  return file;
}

/** What `docker stack deploy` on the host makes of the uploaded text: it interpolates once more. */
function hostView(text: string): unknown {
  const unescape = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const r = interpolateString(v, {});
      assert.deepEqual(r.unset, [], `the uploaded text has no variable left: ${v}`);
      assert.deepEqual(r.errors, []);
      return r.value;
    }
    if (Array.isArray(v)) return v.map(unescape);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unescape(x)]));
    return v;
  };
  return unescape(YAML.parseDocument(text, { merge: true }).toJS({ maxAliasCount: -1 }));
}

test('loadComposeFile: a missing file is an InputError naming it', () => {
  assert.throws(
    () => loadComposeFile(path.join(FIX, 'nope.yml'), 'stacks/nope.yml'),
    (e: unknown) => e instanceof InputError && /stacks\/nope\.yml not found/.test(e.message),
  );
});

test('loadComposeFile: invalid YAML names file, line and column', () => {
  assert.throws(
    () => load('invalid-yaml.yml'),
    (e: unknown) => e instanceof InputError && /^invalid-yaml\.yml:\d+:\d+: invalid YAML: /.test(e.message),
  );
  const dup = tmpFile('services:\n  web:\n    image: a\n  web:\n    image: b\n');
  assert.throws(
    () => loadComposeFile(dup, 'dup.yml'),
    (e: unknown) => e instanceof InputError && /^dup\.yml:4:3: invalid YAML: Map keys must be unique/.test(e.message),
  );
});

test('loadComposeFile: unknown top-level key and non-map top level', () => {
  assert.throws(
    () => load('unknown-key.yml'),
    (e: unknown) => e instanceof InputError && /^unknown-key\.yml:2:1: unknown top-level key "name"/.test(e.message),
  );
  assert.throws(
    () => load('not-a-map.yml'),
    (e: unknown) =>
      e instanceof InputError && /^not-a-map\.yml:1:1: the top level of a stack file must be a mapping/.test(e.message),
  );
  assert.throws(
    () => loadComposeFile(tmpFile('# only a comment\n'), 'empty.yml'),
    (e: unknown) => e instanceof InputError && /empty\.yml:1:1: .*the file is empty/.test(e.message),
  );
  // x-* extensions and every Swarm section are accepted.
  const ok = loadComposeFile(
    tmpFile('version: "3.8"\nx-any: 1\nservices: {}\nnetworks: {}\nvolumes: {}\nconfigs: {}\nsecrets: {}\n'),
    'ok.yml',
  );
  assert.equal(ok.path, 'ok.yml');
});

test('resolveCompose: anchors and merge keys resolve in data', () => {
  const r = resolveCompose(load('good.yml'), { WEB_VERSION: '1.0.0' });
  const web = r.data.services.web;
  assert.equal(web.image, 'registry.example.com/app/web:1.0.0');
  assert.equal(web.deploy.replicas, 2);
  assert.deepEqual(web.deploy.update_config, { order: 'start-first', failure_action: 'rollback', monitor: '30s' });
  assert.equal(web.healthcheck.interval, '5s');
  assert.deepEqual(web.healthcheck.test, ['CMD', 'wget', '-qO-', 'http://localhost:8080/health']);
  assert.equal(r.data.services.redis.deploy.replicas, 1, 'a key next to <<: overrides the merged one');
  assert.equal(r.data.services.api.image, 'registry.example.com/app/api:latest');
  assert.equal(r.data.services.api.command[2], 'echo $HOME && exec api');
  assert.deepEqual(r.unset, []);
  assert.deepEqual(r.errors, []);
});

test('resolveCompose: every interpolation form, with positions of unset variables', () => {
  const file = load('variables.yml');
  const r = resolveCompose(file, { SOFT: '', ALT: 'x', INNER: 'inner' });
  const e = r.data.services.app.environment;
  assert.equal(r.data.services.app.image, 'registry.example.com/app:');
  assert.equal(e.PLAIN, '');
  assert.equal(e.SOFT, 'soft-default');
  assert.equal(e.HARD, 'hard-default');
  // As docker stack deploy: a default is literal up to the first }.
  assert.equal(e.HASH, '$2y$05$abc');
  assert.equal(e.BRACES, 'x}');
  assert.equal(e.NESTED, '${INNER:-inner-default}');
  assert.equal(e.ESCAPED, '${NOT_A_VAR} and $HOME');
  assert.equal(e.PRICE, 'cost is 5$ per $ unit');
  assert.equal(e.REQUIRED, '');
  assert.equal(r.data.services.app.command, 'echo  ');
  assert.deepEqual(
    r.unset.map((u) => `${u.name}@${u.line}:${u.col}`),
    ['APP_VERSION@3:38', 'PLAIN_VAR@5:14', 'MISSING_ONE@14:19', 'MISSING_TWO@14:34'],
  );
  assert.deepEqual(r.unset[0].path, ['services', 'app', 'image']);
  assert.equal(r.errors.length, 1);
  assert.match(
    r.errors[0].message,
    /required variable REQUIRED_VAR is missing a value: set REQUIRED_VAR to the API key/,
  );
  assert.deepEqual([r.errors[0].line, r.errors[0].col], [13, 17]);
  // The original document is left as it was.
  assert.equal(file.doc.toJS().services.app.image, 'registry.example.com/app:${APP_VERSION}');
});

test('resolveCompose: text re-parses to the same data and keeps each literal $ as $$', () => {
  const env = { APP_VERSION: '2.0.0', PLAIN_VAR: 'p$q', MISSING_ONE: 'one', MISSING_TWO: 'two', REQUIRED_VAR: 'k' };
  for (const [rel, e] of [
    ['variables.yml', env],
    ['good.yml', { WEB_VERSION: '1.0.0' }],
    ['objects.yml', {}],
  ] as const) {
    const r = resolveCompose(load(rel), e);
    assert.deepEqual(hostView(r.text), r.data, rel);
  }
  const r = resolveCompose(load('variables.yml'), env);
  assert.match(r.text, /image: "registry\.example\.com\/app:2\.0\.0"/);
  assert.match(r.text, /ESCAPED: "\$\$\{NOT_A_VAR\} and \$\$HOME"/, 'escapes as written are kept');
  assert.match(r.text, /PLAIN: "p\$\$q"/, 'a $ in a value is escaped');
  assert.match(r.text, /PRICE: cost is 5\$\$ per \$\$ unit/, 'unchanged: kept as written');
  assert.match(r.text, /HASH: "\$\$2y\$\$05\$\$abc"/, 'a $ of a default is escaped');
  assert.match(r.text, /NESTED: "\$\$\{INNER:-inner-default\}"/);
  assert.ok(!/\$\{/.test(r.text.replace(/\$\$\{/g, '')), 'no variable reference left');
  // good.yml: comments, anchors and merge keys are kept as written.
  const good = resolveCompose(load('good.yml'), { WEB_VERSION: '1.0.0' });
  assert.match(good.text, /^# A stack that passes every rule/);
  assert.match(good.text, /<<: \*deploy/);
  assert.match(
    good.text,
    /command: \["sh", "-c", "echo \$\$HOME && exec api"\]/,
    'an unchanged value keeps its source',
  );
});

test('resolveCompose: block scalars, anchored scalars and flow items', () => {
  const file = loadComposeFile(
    tmpFile(
      [
        'x-img: &img "app:${TAG}"',
        'services:',
        '  web:',
        '    image: *img',
        '    command: |',
        '      echo ${GREETING:-hi} $$USER',
        '      exit 0',
        '    entrypoint: [sh, -c, "echo $X"]',
        '    environment:',
        '      - A=${TAG}',
        '',
      ].join('\n'),
    ),
    'block.yml',
  );
  const r = resolveCompose(file, { TAG: '3', X: 'y' });
  assert.equal(r.data.services.web.image, 'app:3');
  assert.equal(r.data.services.web.command, 'echo hi $USER\nexit 0\n');
  assert.deepEqual(r.data.services.web.entrypoint, ['sh', '-c', 'echo y']);
  assert.deepEqual(r.data.services.web.environment, ['A=3']);
  assert.deepEqual(hostView(r.text), r.data);
  assert.match(r.text, /image: \*img/);
});

test('resolveCompose: keys are not interpolated; interpolated values are strings', () => {
  const file = loadComposeFile(
    tmpFile(
      'services:\n  web:\n    image: a\n    labels:\n      ${KEY}: v\n      n: ${N}\n    environment:\n      ON: ${YES}\n',
    ),
    'k.yml',
  );
  const r = resolveCompose(file, { N: '3', KEY: 'nope', YES: 'true' });
  assert.deepEqual(r.data.services.web.labels, { '${KEY}': 'v', n: '3' });
  assert.equal(r.data.services.web.environment.ON, 'true');
  assert.match(r.text, /n: "3"/);
  assert.match(r.text, /ON: "true"/);
  assert.deepEqual(r.unset, []);
});

test('resolveCompose: values Docker converts after interpolation are written with their type', () => {
  const file = loadComposeFile(
    tmpFile(
      [
        'x-deploy: &deploy',
        '  replicas: ${N}',
        'services:',
        '  web:',
        '    image: a',
        '    read_only: ${RO}',
        '    ports:',
        '      - target: ${PORT}',
        '        published: "${PUB:-8080}"',
        '    deploy:',
        '      <<: *deploy',
        '      update_config:',
        '        max_failure_ratio: ${RATIO}',
        'networks:',
        '  edge:',
        '    external: ${EXT:-false}',
        '',
      ].join('\n'),
    ),
    'cast.yml',
  );
  const r = resolveCompose(file, { N: '3', RO: 'yes', PORT: '80', RATIO: '0.25' });
  assert.deepEqual(r.errors, []);
  const web = r.data.services.web;
  assert.equal(web.deploy.replicas, 3, 'cast through the merge key');
  assert.equal(web.read_only, true);
  assert.deepEqual(web.ports, [{ target: 80, published: 8080 }]);
  assert.equal(web.deploy.update_config.max_failure_ratio, 0.25);
  assert.equal(r.data.networks.edge.external, false);
  assert.match(r.text, /^ {2}replicas: 3$/m);
  assert.match(r.text, /^ {8}published: 8080$/m);
  assert.deepEqual(hostView(r.text), r.data);
  assert.equal(stackServices([r]).web.replicas, 3);
  // A value Docker cannot convert is an error where it is written.
  const bad = resolveCompose(file, { N: 'three', RO: 'yes', PORT: '80', RATIO: '0.25' });
  assert.equal(bad.errors.length, 1);
  assert.match(bad.errors[0].message, /services\.web\.deploy\.replicas: "three" is not a whole number/);
  assert.deepEqual([bad.errors[0].line, bad.errors[0].col], [2, 13]);
});

test('parseDuration follows Go', () => {
  assert.equal(parseDuration('5s'), 5);
  assert.equal(parseDuration('1m30s'), 90);
  assert.equal(parseDuration('500ms'), 0.5);
  assert.equal(parseDuration('1.5h'), 5400);
  assert.equal(parseDuration('2h45m'), 9900);
  assert.equal(parseDuration('0'), 0);
  assert.ok(Math.abs((parseDuration('100us') as number) - 0.0001) < 1e-12);
  assert.equal(parseDuration('30'), undefined);
  assert.equal(parseDuration('s'), undefined);
  assert.equal(parseDuration('5 s'), undefined);
  assert.equal(parseDuration(''), undefined);
});

test('stackServices: Docker defaults', () => {
  const s = stackServices([resolveCompose(load('healthcheck.yml'), {})]);
  assert.deepEqual(s.none, {
    name: 'none',
    image: 'app/none:1.0.0',
    replicas: 1,
    mode: 'replicated',
    healthcheck: undefined,
    update: { monitor: 5, failureAction: 'pause', order: 'stop-first', parallelism: 1, delay: 0 },
    stopGracePeriod: 10,
    placement: { constraints: [], maxReplicasPerNode: 0 },
    networks: ['default'],
    labels: {},
  });
  assert.deepEqual(s.present.healthcheck, {
    test: ['CMD', 'true'],
    interval: 90,
    timeout: 0.5,
    retries: 3,
    startPeriod: 0,
    disabled: false,
  });
  assert.equal(s.disabled.healthcheck?.disabled, true);
  assert.equal(s['test-none'].healthcheck?.disabled, true);
});

test('stackServices: anchors, list and map labels, global mode', () => {
  const s = stackServices([resolveCompose(load('good.yml'), { WEB_VERSION: '1.0.0' })]);
  assert.deepEqual(s.web.update, {
    monitor: 30,
    failureAction: 'rollback',
    order: 'start-first',
    parallelism: 1,
    delay: 0,
  });
  assert.equal(s.web.replicas, 2);
  assert.deepEqual(s.web.networks, ['edge', 'backend']);
  assert.equal(s.web.labels['traefik.docker.network'], 'app_edge');
  assert.equal(s.web.labels['traefik.http.routers.web.rule'], 'Host(`example.com`) && PathPrefix(`/`)');
  assert.deepEqual(s.api.labels['traefik.enable'], 'true');
  assert.deepEqual(s.api.networks, ['traefik-public', 'backend']);
  assert.deepEqual(s.web.healthcheck, {
    test: ['CMD', 'wget', '-qO-', 'http://localhost:8080/health'],
    interval: 5,
    timeout: 3,
    retries: 3,
    startPeriod: 10,
    disabled: false,
  });
  const g = stackServices([resolveCompose(load('single-replica.yml'), {})]);
  assert.equal(g.global.mode, 'global');
});

test('stackServices: several files merge like docker stack deploy -c a -c b', () => {
  const env = { WEB_VERSION: '1.0.0', WORKER_VERSION: '2' };
  const s = stackServices([
    resolveCompose(load('multi/base.yml'), env),
    resolveCompose(load('multi/override.yml'), env),
  ]);
  assert.equal(s.web.image, 'app/web:1.0.0');
  assert.deepEqual(s.web.update, {
    monitor: 60,
    failureAction: 'rollback',
    order: 'start-first',
    parallelism: 1,
    delay: 0,
  });
  assert.deepEqual(
    s.web.labels,
    { 'traefik.enable': 'true', 'traefik.docker.network': 'prod_edge' },
    'list and map labels merge',
  );
  assert.deepEqual(s.web.networks, ['edge', 'backend'], 'a later list wins');
  assert.equal(s.worker.image, 'app/worker:2');
});

test('stackServices: a value Docker would refuse is an InputError with file:line', () => {
  const file = loadComposeFile(
    tmpFile('services:\n  web:\n    image: a\n    healthcheck:\n      test: ["CMD", "true"]\n      interval: 30\n'),
    'bad.yml',
  );
  assert.throws(
    () => stackServices([resolveCompose(file, {})]),
    (e: unknown) =>
      e instanceof InputError &&
      /^bad\.yml:6:7: services\.web\.healthcheck\.interval: "30" is not a duration/.test(e.message),
  );
});

test('referencedFiles: configs, secrets and env_file', () => {
  const r = resolveCompose(load('objects.yml'), {});
  assert.deepEqual(referencedFiles(r), [
    { kind: 'config', name: 'nginx_conf', file: './conf/nginx.conf' },
    { kind: 'config', name: 'versioned_conf', file: './conf/nginx.conf' },
    { kind: 'secret', name: 'api_key', file: 'conf/api-key.txt' },
    { kind: 'env_file', name: 'web', file: 'conf/app.env' },
  ]);
  const m = resolveCompose(load('missing-files.yml'), {});
  assert.deepEqual(
    referencedFiles(m).map((f) => f.file),
    ['./conf/gone.conf', 'conf/app.env', 'conf/missing.env'],
  );
});

test('positionOf: keys, list items, merge keys and fallback to the nearest parent', () => {
  const good = load('good.yml');
  assert.deepEqual(positionOf(good, []), { line: 2, col: 1 });
  assert.deepEqual(positionOf(good, ['services', 'web']), { line: 20, col: 3 });
  assert.deepEqual(positionOf(good, ['services', 'web', 'deploy', 'labels', 1]), { line: 29, col: 11 });
  assert.deepEqual(positionOf(good, ['services', 'api', 'deploy', 'labels', 'traefik.docker.network']), {
    line: 43,
    col: 9,
  });
  // Through `<<: *deploy`: the anchor's definition, where the user would change it.
  assert.deepEqual(positionOf(good, ['services', 'web', 'deploy', 'update_config', 'monitor']), { line: 9, col: 5 });
  assert.deepEqual(positionOf(good, ['services', 'redis', 'deploy', 'update_config', 'monitor']), { line: 60, col: 9 });
  // Missing: the nearest existing parent.
  assert.deepEqual(positionOf(good, ['services', 'web', 'deploy', 'update_config', 'delay']), { line: 6, col: 3 });
  assert.deepEqual(positionOf(good, ['services', 'nope', 'image']), { line: 19, col: 1 });
  assert.deepEqual(positionOf(good, ['services', 'web', 'networks', 7]), { line: 31, col: 5 });
});

test('merge keys: a list of aliases and an inline map, interpolated and located', () => {
  const file = loadComposeFile(
    tmpFile(
      [
        'x-a: &a',
        '  replicas: 2',
        'x-b: &b',
        '  replicas: 3',
        '  mode: replicated',
        'services:',
        '  web:',
        '    image: app',
        '    deploy:',
        '      <<: [*a, *b]',
        '    healthcheck:',
        '      <<: {interval: "${HC_INTERVAL:-7s}", retries: 2}',
        '      test: ["CMD", "true"]',
        '',
      ].join('\n'),
    ),
    'merge.yml',
  );
  const r = resolveCompose(file, {});
  assert.equal(r.data.services.web.deploy.replicas, 2, 'the first alias wins');
  assert.equal(r.data.services.web.deploy.mode, 'replicated');
  assert.equal(r.data.services.web.healthcheck.interval, '7s');
  assert.deepEqual(hostView(r.text), r.data);
  assert.deepEqual(positionOf(file, ['services', 'web', 'deploy', 'replicas']), { line: 2, col: 3 });
  assert.deepEqual(positionOf(file, ['services', 'web', 'deploy', 'mode']), { line: 5, col: 3 });
  assert.equal(stackServices([r]).web.healthcheck?.interval, 7);
});

test('resolveCompose: 0440 is octal, as for Docker (secret and config modes)', () => {
  const file = loadComposeFile(
    tmpFile(
      'services:\n  web:\n    image: a\n    secrets:\n      - source: k\n        mode: 0440\n    configs:\n      - source: c\n        mode: ${MODE:-0444}\n',
    ),
    'mode.yml',
  );
  const r = resolveCompose(file, {});
  assert.equal(r.data.services.web.secrets[0].mode, 0o440);
  assert.match(r.text, /mode: 0440/, 'the source is kept as written');
  // An interpolated mode goes through Docker's strconv.Atoi: decimal.
  assert.equal(r.data.services.web.configs[0].mode, 444);
});
