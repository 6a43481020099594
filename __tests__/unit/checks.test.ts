import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadComposeFile } from '../../src/compose';
import { buildModel } from '../../src/model';
import { captureStdout } from '../helpers/stdout';
import {
  CheckOptions,
  Finding,
  RULE_IDS,
  checkStack,
  hostMtuFindings,
  overlayNetworks,
  reportFindings,
  statefulKind,
  swarmNetworkName,
  traefikProviderNetworks,
} from '../../src/checks';

const FIX = path.join(__dirname, '..', 'fixtures', 'checks');
const ENV = { WEB_VERSION: '1.0.0', API_VERSION: '2.0.0', WORKER_VERSION: '3' };

function check(
  files: string[],
  opts: CheckOptions = {},
  stack = 'app',
  env: Record<string, string | undefined> = ENV,
): Finding[] {
  return checkStack({ name: stack, files: files.map((f) => loadComposeFile(path.join(FIX, f), f)) }, env, opts);
}

/** Findings of one rule, as `service@line:col severity`. */
function of(findings: Finding[], rule: string): string[] {
  return findings.filter((f) => f.rule === rule).map((f) => `${f.service ?? '-'}@${f.line}:${f.col} ${f.severity}`);
}

function services(findings: Finding[], rule: string): string[] {
  return [...new Set(findings.filter((f) => f.rule === rule).map((f) => f.service ?? '-'))].sort();
}

function tmpStack(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'checks-test-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

test('the reference stack passes every rule', () => {
  assert.deepEqual(check(['good.yml']), []);
});

test('every rule id is documented in docs/checks.md: what it reads, an example that trips it and one that passes', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'checks.md'), 'utf8');
  const sections = new Map(
    doc
      .split(/^(?=## )/m)
      .map((s) => [/^## `([a-z-]+)`\s*$/m.exec(s.split('\n')[0])?.[1], s] as const)
      .filter((e): e is readonly [string, string] => !!e[0]),
  );
  assert.deepEqual(
    [...sections.keys()].sort(),
    [...RULE_IDS].sort(),
    'one section per rule, no section without a rule',
  );
  for (const id of RULE_IDS) {
    const s = sections.get(id)!;
    // What it reads: the stack files only, or facts from the host (the swarm, its configs, its interfaces).
    assert.match(s, /^Reads: .*(stack files|host|swarm)/m, `${id}: no "Reads:" line`);
    // An example of each: a paragraph starting "Trips" / "Passes", then a code block.
    const lines = s.split('\n');
    for (const kind of ['Trips', 'Passes']) {
      const at = lines.findIndex((l, i) => {
        const blank = lines.indexOf('', i);
        return l.startsWith(kind) && blank > i && (lines[blank + 1] ?? '').startsWith('```');
      });
      assert.ok(at >= 0, `${id}: no "${kind}" paragraph followed by a code block`);
    }
  }
  assert.match(doc, new RegExp(`^\\| \\[\`${RULE_IDS[0]}\`\\]`, 'm'), 'the rule table');
});

test('overlay-mtu: without MTU a notice (Docker gives 1450), above 1450 an error, bridge a notice, external skipped', () => {
  const f = check(['overlay-mtu-trips.yml']);
  assert.deepEqual(of(f, 'overlay-mtu'), ['worker@5:3 notice', '-@8:3 notice', '-@12:7 error', '-@13:3 notice']);
  const byLine = (l: number) => f.find((x) => x.rule === 'overlay-mtu' && x.line === l) as Finding;
  assert.match(
    byLine(8).message,
    /Network edge \(overlay, the default driver in a stack\).*Docker gives it MTU 1450.*below 1500.*host MTU − 50/,
  );
  assert.match(byLine(12).message, /mtu 1500.*above 1450/);
  assert.match(byLine(13).message, /bridge/);
  assert.match(byLine(5).message, /implicit default network \(app_default\)/);
  assert.ok(!f.some((x) => x.rule === 'overlay-mtu' && /outside/.test(x.message)), 'external networks are skipped');
  // good.yml: 1450 (number), "1400" (string), and an external network.
  assert.deepEqual(of(check(['good.yml']), 'overlay-mtu'), []);
});

test('overlay-mtu with the host MTUs: names host min − 50 for each overlay network above it', () => {
  const stack = {
    name: 'app',
    files: [loadComposeFile(path.join(FIX, 'overlay-mtu-trips.yml'), 'overlay-mtu-trips.yml')],
  };
  const nets = overlayNetworks(buildModel(stack, ENV));
  assert.deepEqual(
    nets.map((n) => `${n.key}:${n.name}:${n.mtu ?? '-'}@${n.line}`),
    ['edge:app_edge:-@8', 'big:app_big:1500@12', 'default:app_default:-@5'],
  );
  // A 1500 host: Docker's default 1450 is right; only the explicit 1500 is too high.
  const at1500 = hostMtuFindings({ 'node-1': 1500, 'node-2': 1500 }, nets);
  assert.deepEqual(
    at1500.map((x) => `${x.line} ${x.severity}`),
    ['12 error'],
  );
  assert.match(at1500[0].message, /com\.docker\.network\.driver\.mtu: 1450/);
  // A 1400 node: every overlay network must be at most 1350, the default ones too.
  const low = hostMtuFindings({ 'node-1': 1500, 'node-2': 1400 }, nets);
  assert.deepEqual(
    low.map((x) => `${x.line} ${x.severity}`),
    ['8 error', '12 error', '5 error'],
  );
  for (const x of low) assert.match(x.message, /node-2.*1400.*com\.docker\.network\.driver\.mtu: 1350/);
  assert.equal(low[0].rule, 'overlay-mtu');
  assert.equal(low[0].file, 'overlay-mtu-trips.yml');
  // At or below the number: nothing.
  assert.deepEqual(hostMtuFindings({ a: 1400 }, [{ ...nets[1], mtu: 1350 }]), []);
  assert.deepEqual(hostMtuFindings({}, nets), [], 'no MTU known: nothing to say');
});

test('traefik-network: several networks without traefik.docker.network (map labels)', () => {
  const f = check(['traefik-map-trips.yml']);
  assert.deepEqual(of(f, 'traefik-network'), ['web@6:9 error']);
  assert.match(f.find((x) => x.rule === 'traefik-network')!.message, /traefik\.docker\.network=app_edge/);
});

test('traefik-network: a label that names a network the service is not on (list labels, stack prefix)', () => {
  const f = check(['traefik-list-trips.yml']);
  assert.deepEqual(of(f, 'traefik-network'), ['web@7:11 error', 'admin@16:11 error']);
  const web = f.find((x) => x.rule === 'traefik-network' && x.service === 'web')!;
  assert.match(web.message, /traefik\.docker\.network=edge names a network the service is not on/);
  assert.match(web.message, /Use traefik\.docker\.network=app_edge/);
  // With another stack name the prefix changes.
  const other = check(['traefik-list-trips.yml'], {}, 'shop');
  assert.match(other.find((x) => x.rule === 'traefik-network' && x.service === 'web')!.message, /shop_edge/);
});

test('traefik-network: passes with one network, a correct label, name: and external networks', () => {
  const f = check(['traefik-passes.yml']);
  assert.deepEqual(of(f, 'traefik-network'), []);
  assert.deepEqual(of(check(['good.yml']), 'traefik-network'), []);
  assert.equal(swarmNetworkName('app', 'edge', { edge: {} }), 'app_edge');
  assert.equal(swarmNetworkName('app', 'public', { public: { name: 'proxy' } }), 'proxy');
  assert.equal(swarmNetworkName('app', 'tp', { tp: { external: true } }), 'tp');
  assert.equal(swarmNetworkName('app', 'tp', { tp: { external: true, name: 'traefik-public' } }), 'traefik-public');
  assert.equal(swarmNetworkName('app', 'tp', { tp: { external: { name: 'legacy' } } }), 'legacy');
  assert.equal(swarmNetworkName('app', 'default', {}), 'app_default');
});

test('traefik-labels-placement: traefik labels under labels: instead of deploy.labels', () => {
  const f = check(['traefik-labels-placement.yml']);
  assert.deepEqual(of(f, 'traefik-labels-placement'), ['web@4:5 warning']);
  assert.match(f.find((x) => x.rule === 'traefik-labels-placement')!.message, /Move them under deploy\.labels/);
  // Traefik ignores them, so they do not make the service "routed".
  assert.deepEqual(of(f, 'traefik-network'), []);
  assert.deepEqual(of(check(['good.yml']), 'traefik-labels-placement'), []);
});

test('monitor-window: monitor not longer than interval × retries or start_period, with rollback', () => {
  const f = check(['monitor-window.yml']);
  assert.deepEqual(services(f, 'monitor-window'), ['default-monitor', 'short', 'slow-start']);
  const short = f.find((x) => x.rule === 'monitor-window' && x.service === 'short')!;
  assert.equal(short.severity, 'warning');
  assert.deepEqual([short.line, short.col], [11, 9], 'points at update_config.monitor');
  assert.match(short.message, /interval × retries = 10s × 3 = 30s/);
  assert.match(short.message, /never becomes healthy IS rolled back whatever monitor is/);
  assert.match(short.message, /crashes after monitor has elapsed leaves the update "completed"/);
  assert.match(short.message, /monitor: 40s/);
  assert.match(short.message, /input `stability`/);
  const def = f.find((x) => x.rule === 'monitor-window' && x.service === 'default-monitor')!;
  assert.match(def.message, /5s, Docker's default/);
  assert.deepEqual([def.line, def.col], [19, 7], 'falls back to update_config');
  assert.match(
    f.find((x) => x.rule === 'monitor-window' && x.service === 'slow-start')!.message,
    /start_period \(120s\)/,
  );
  // long-enough (45s > max(20s, 30s)) and pause (not rollback) pass.
  assert.deepEqual(of(check(['good.yml']), 'monitor-window'), []);
});

test('failure-action: missing or pause', () => {
  const f = check(['failure-action.yml']);
  assert.deepEqual(of(f, 'failure-action'), [
    'missing@2:3 warning',
    'missing-deploy@6:5 warning',
    'paused@12:9 warning',
  ]);
  assert.match(
    f.find((x) => x.rule === 'failure-action' && x.service === 'missing')!.message,
    /Docker's default is pause/,
  );
  assert.match(
    f.find((x) => x.rule === 'failure-action' && x.service === 'paused')!.message,
    /failure_action is pause.*failure_action: rollback/,
  );
});

test('unset-variable and interpolation: each form, with file:line:col', () => {
  const f = check(['variables.yml'], {}, 'app', { SOFT: '', ALT: 'x' });
  assert.deepEqual(of(f, 'unset-variable'), ['app@3:38 error', 'app@5:14 error', 'app@14:19 error', 'app@14:34 error']);
  const first = f.find((x) => x.rule === 'unset-variable')!;
  assert.equal(first.file, 'variables.yml');
  assert.match(first.message, /^Variable APP_VERSION is not set and has no default/);
  assert.match(first.message, /\$\{APP_VERSION:-value\}/);
  assert.ok(
    !f.some(
      (x) =>
        ['unset-variable', 'interpolation'].includes(x.rule) &&
        /NOT_A_VAR|HOME|SOFT|HARD|ALT|OUTER|INNER/.test(x.message),
    ),
    '$$, defaults and alternatives pass',
  );
  assert.deepEqual(of(f, 'interpolation'), ['app@13:17 error']);
  // All set: nothing.
  const all = check(['variables.yml'], {}, 'app', {
    APP_VERSION: '1',
    PLAIN_VAR: '',
    MISSING_ONE: 'a',
    MISSING_TWO: 'b',
    REQUIRED_VAR: 'k',
  });
  assert.deepEqual([...of(all, 'unset-variable'), ...of(all, 'interpolation')], []);
});

test('interpolation: invalid syntax', () => {
  const f = check(['interpolation-invalid.yml']);
  assert.deepEqual(of(f, 'interpolation'), ['app@3:16 error', 'app@5:10 error', 'app@6:10 error']);
  assert.match(f.find((x) => x.rule === 'interpolation')!.message, /invalid interpolation format "app:\$\{\}"/);
});

test('single-replica-stop-first: one replica, stop-first; not for start-first, 2 replicas, global, host ports, databases', () => {
  const f = check(['single-replica.yml']);
  assert.deepEqual(of(f, 'single-replica-stop-first'), ['one@2:3 warning', 'one-explicit@9:9 warning']);
  assert.match(f.find((x) => x.rule === 'single-replica-stop-first')!.message, /healthcheck.*order: start-first/);
  // A job has no rolling update: none of the update rules apply.
  assert.ok(!f.some((x) => x.service === 'migrate'), 'replicated-job');
});

test('single-replica-stop-first: a service with a named volume keeps stop-first; start-first on one is a warning', () => {
  const f = check(['stateful-replica.yml']);
  assert.deepEqual(of(f, 'single-replica-stop-first'), [
    'prometheus@2:3 notice',
    'portainer@14:9 warning',
    'web@15:3 warning',
    'api@19:3 warning',
  ]);
  const msg = (s: string) => f.find((x) => x.rule === 'single-replica-stop-first' && x.service === s)!.message;
  assert.match(msg('prometheus'), /named volume prom-data.*keep stop-first/);
  assert.doesNotMatch(msg('prometheus'), /set deploy\.update_config\.order: start-first/);
  assert.match(msg('portainer'), /start-first and named volume portainer-data.*two copies.*same data folder/);
  assert.match(msg('web'), /add a healthcheck.*order: start-first/, 'a bind mount is not a named volume');
  assert.doesNotMatch(msg('api'), /add a healthcheck/, 'api has one');
});

test('undefined-network: a service on a network the stack does not declare', () => {
  const f = check(['undefined-network.yml']);
  assert.deepEqual(of(f, 'undefined-network'), ['web@4:22 error', 'api@9:7 error', 'front@18:16 error']);
  assert.match(
    f.find((x) => x.rule === 'undefined-network' && x.service === 'web')!.message,
    /Service web is on network ghost.*undefined network.*edge, backend, outside/,
  );
  // The Traefik hint names a declared network only.
  const t = f.find((x) => x.rule === 'traefik-network' && x.service === 'front')!;
  assert.match(t.message, /traefik\.docker\.network=app_backend/);
  assert.doesNotMatch(t.message, /network=app_phantom/);
  assert.deepEqual(of(check(['good.yml']), 'undefined-network'), []);
});

test("traefik-network: Traefik's own default network (command, environment, static file) from any stack of the run", () => {
  const load = (f: string) => ({
    name: f.replace(/\W.*$/, ''),
    files: [loadComposeFile(path.join(FIX, 'traefik-default', f), f)],
  });
  const app = load('app.yml');
  assert.deepEqual(of(checkStack(app, {}), 'traefik-network'), ['web@6:11 error'], 'alone, the app stack trips');
  for (const proxy of [
    'proxy-command.yml',
    'proxy-command-v2.yml',
    'proxy-env.yml',
    'proxy-config.yml',
    'proxy-bind.yml',
  ]) {
    const nets = traefikProviderNetworks([app, load(proxy)].map((s) => buildModel(s, {})));
    assert.deepEqual(nets, ['traefik-public'], proxy);
    assert.deepEqual(of(checkStack(app, {}, { traefikNetworks: nets }), 'traefik-network'), [], proxy);
  }
  // A default network the service is not on does not help.
  assert.deepEqual(of(checkStack(app, {}, { traefikNetworks: ['other'] }), 'traefik-network'), ['web@6:11 error']);
  assert.match(
    checkStack(app, {}, { traefikNetworks: ['other'] }).find((x) => x.rule === 'traefik-network')!.message,
    /default network \(other\)/,
  );
});

test('no-healthcheck: none in the stack, or disabled', () => {
  const f = check(['healthcheck.yml']);
  assert.deepEqual(of(f, 'no-healthcheck'), ['none@2:3 notice', 'disabled@6:5 notice', 'test-none@10:5 notice']);
  assert.match(
    f.find((x) => x.service === 'none' && x.rule === 'no-healthcheck')!.message,
    /If the image defines a HEALTHCHECK, Swarm still uses it/,
  );
  assert.deepEqual(of(check(['good.yml']), 'no-healthcheck'), []);
});

test('stateful-on-proxy-network: a database or cache on a network the proxy is on', () => {
  const f = check(['stateful-trips.yml'], {}, 'shop');
  assert.deepEqual(of(f, 'stateful-on-proxy-network'), ['cache@7:5 warning', 'users-db@11:7 warning']);
  assert.match(
    f.find((x) => x.service === 'cache' && x.rule === 'stateful-on-proxy-network')!.message,
    /\(redis\).*proxy is on \(traefik\).*internal network/,
  );
  // Proxy routed by label only (app's traefik.docker.network), database on that network.
  assert.match(
    f.find((x) => x.service === 'users-db' && x.rule === 'stateful-on-proxy-network')!.message,
    /\(postgres\).*app-net/,
  );
});

test('stateful-on-proxy-network: passes for internal networks, routed services and look-alike names', () => {
  const f = check(['stateful-passes.yml'], {}, 'shop');
  assert.deepEqual(of(f, 'stateful-on-proxy-network'), []);
  assert.deepEqual(of(check(['good.yml']), 'stateful-on-proxy-network'), []);
  assert.equal(statefulKind('feedback', 'app/feedback:1'), undefined);
  assert.equal(statefulKind('session', 'bitnami/redis:7'), 'redis');
  assert.equal(statefulKind('store', 'ghcr.io/acme/postgresql:16'), 'postgres');
  assert.equal(statefulKind('users-db', 'app/users:1'), 'db');
  assert.equal(statefulKind('metrics', 'influxdb:2'), 'db');
  assert.equal(statefulKind('page-cache', 'varnish'), 'cache');
  assert.equal(statefulKind('registry.local:5000', 'registry.local:5000/web:1'), undefined);
});

test('immutable-object: an existing config/secret name with other content', () => {
  const conf = fs.readFileSync(path.join(FIX, 'conf', 'nginx.conf'));
  const key = fs.readFileSync(path.join(FIX, 'conf', 'api-key.txt'));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  // Silent without existingObjects.
  assert.deepEqual(of(check(['objects.yml']), 'immutable-object'), []);
  // Same content: fine.
  assert.deepEqual(
    of(
      check(['objects.yml'], { existingObjects: { app_nginx_conf: sha(conf), app_api_key: sha(key).toUpperCase() } }),
      'immutable-object',
    ),
    [],
  );
  // Changed content under the same name (derived <stack>_<key>, and explicit name:). A config read from
  // a file without a name of its own (nginx_conf, line 10) is named by its content at deploy: never stuck.
  const f = check(['objects.yml'], {
    existingObjects: {
      app_nginx_conf: sha(key),
      app_api_key: 'ab'.repeat(32),
      web_nginx_1: sha(key),
      web_nginx_2: sha(key),
    },
  });
  assert.deepEqual(of(f, 'immutable-object'), ['-@13:5 error', '-@18:3 error']);
  const m = f.find((x) => x.rule === 'immutable-object' && x.line === 18)!.message;
  assert.match(
    m,
    /The secret app_api_key already exists on the swarm with other content.*immutable.*name: app_api_key_\$\{API_KEY_VERSION\}/,
  );
  // A new version makes a new name: passes.
  const env = { ...ENV, CONF_VERSION: '2' };
  assert.deepEqual(
    of(check(['objects.yml'], { existingObjects: { web_nginx_1: sha(key) } }, 'app', env), 'immutable-object'),
    [],
  );
});

test('missing-file: config, secret and env_file paths that do not exist', () => {
  const f = check(['missing-files.yml']);
  assert.deepEqual(of(f, 'missing-file'), ['web@6:9 error', '-@9:5 error']);
  assert.deepEqual(of(check(['objects.yml']), 'missing-file'), []);
});

test('swarm-ignored: build, depends_on, container_name, restart, links', () => {
  const f = check(['swarm-ignored.yml']);
  assert.deepEqual(of(f, 'swarm-ignored'), ['legacy@4:5 notice']);
  const m = f.find((x) => x.rule === 'swarm-ignored')!.message;
  for (const k of ['build', 'depends_on', 'container_name', 'restart', 'links']) assert.ok(m.includes(`\`${k}\``), k);
  assert.match(m, /deploy\.restart_policy/);
  assert.deepEqual(of(check(['good.yml']), 'swarm-ignored'), []);
});

test('invalid-value: a duration Docker would refuse', () => {
  const dir = tmpStack({
    'stack.yml': 'services:\n  web:\n    image: a\n    deploy:\n      update_config:\n        monitor: 30\n',
  });
  const f = checkStack({ name: 's', files: [loadComposeFile(path.join(dir, 'stack.yml'), 'stack.yml')] }, {});
  assert.deepEqual(of(f, 'invalid-value'), ['web@6:9 error']);
});

test('switching rules off: comment above or on the service line, deploy label (map and list), whole run', () => {
  const f = check(['skips.yml']);
  assert.deepEqual(services(f, 'no-healthcheck'), ['plain']);
  assert.deepEqual(services(f, 'single-replica-stop-first'), ['plain', 'same-line']);
  assert.deepEqual(services(f, 'failure-action'), ['above', 'plain']);
  assert.ok(!f.some((x) => x.service === 'label-list'), 'deploy-action.skip=all');
  assert.ok(!f.some((x) => x.rule === 'overlay-mtu' && /legacy-net/.test(x.message)), 'comment above a network');
  // The run-wide skip.
  const g = check(['skips.yml'], { skip: ['failure-action', 'overlay-mtu'] });
  assert.deepEqual(services(g, 'failure-action'), []);
  assert.deepEqual(of(g, 'overlay-mtu'), []);
  assert.deepEqual(services(g, 'no-healthcheck'), ['plain']);
  // unset-variable can be switched off too.
  assert.deepEqual(of(check(['variables.yml'], { skip: ['unset-variable'] }, 'app', {}), 'unset-variable'), []);
});

test('several compose files for one stack: merged, findings point at the file that sets the value', () => {
  const f = check(['multi/base.yml', 'multi/override.yml'], {}, 'prod');
  assert.deepEqual(of(f, 'monitor-window'), [], 'override sets monitor: 1m');
  assert.deepEqual(of(f, 'traefik-network'), [], 'prod_edge is right for stack prod');
  assert.deepEqual(of(f, 'single-replica-stop-first'), ['worker@12:5 warning']);
  assert.equal(f.find((x) => x.rule === 'single-replica-stop-first')!.file, 'multi/override.yml');
  const base = check(['multi/base.yml'], {}, 'prod');
  assert.deepEqual(of(base, 'monitor-window'), ['web@12:9 warning']);
  assert.equal(base.find((x) => x.rule === 'monitor-window')!.file, 'multi/base.yml');
  // With another stack name, the override's label is wrong.
  const staging = check(['multi/base.yml', 'multi/override.yml'], {}, 'staging');
  assert.deepEqual(of(staging, 'traefik-network'), ['web@8:9 error']);
  assert.equal(staging.find((x) => x.rule === 'traefik-network')!.file, 'multi/override.yml');
  // Unset variables are reported in the file that uses them.
  const unset = check(['multi/base.yml', 'multi/override.yml'], {}, 'prod', {});
  assert.deepEqual(
    unset.filter((x) => x.rule === 'unset-variable').map((x) => `${x.file}:${x.line}:${x.col}`),
    ['multi/base.yml:3:20', 'multi/override.yml:11:23'],
  );
});

test('anchors and merge keys: values from x-* blocks are checked, positions point into the anchor', () => {
  const dir = tmpStack({
    'stack.yml': [
      'x-deploy: &deploy',
      '  replicas: 1',
      '  update_config:',
      '    failure_action: rollback',
      '    monitor: 5s',
      'x-health: &health',
      '  test: ["CMD", "true"]',
      '  interval: 10s',
      '  retries: 3',
      'services:',
      '  web:',
      '    image: app/web:1',
      '    healthcheck: *health',
      '    deploy:',
      '      <<: *deploy',
      '      labels: [traefik.enable=true]',
      '    networks: [edge]',
      'networks:',
      '  edge:',
      '    driver_opts: {com.docker.network.driver.mtu: 1450}',
      '',
    ].join('\n'),
  });
  const f = checkStack({ name: 's', files: [loadComposeFile(path.join(dir, 'stack.yml'), 'stack.yml')] }, {});
  assert.deepEqual(of(f, 'monitor-window'), ['web@5:5 warning']);
  assert.deepEqual(of(f, 'single-replica-stop-first'), ['web@2:3 warning']);
  assert.deepEqual(of(f, 'failure-action'), []);
  assert.deepEqual(of(f, 'no-healthcheck'), []);
});

test('reportFindings: annotations with file and line, and a markdown table', () => {
  const findings: Finding[] = [
    {
      rule: 'overlay-mtu',
      severity: 'error',
      file: 'stacks/app.yml',
      line: 8,
      col: 3,
      stack: 'app',
      message: 'Network edge | no MTU',
    },
    {
      rule: 'failure-action',
      severity: 'warning',
      file: 'stacks/app.yml',
      line: 2,
      col: 3,
      stack: 'app',
      service: 'web',
      message: 'set rollback',
    },
    {
      rule: 'no-healthcheck',
      severity: 'notice',
      file: 'stacks/app.yml',
      line: 2,
      col: 3,
      stack: 'app',
      service: 'web',
      message: 'add one',
    },
  ];
  const stop = captureStdout();
  let r;
  let text = '';
  try {
    r = reportFindings(findings);
  } finally {
    text = stop();
  }
  assert.deepEqual([r.errors, r.warnings, r.notices], [1, 1, 1]);
  assert.match(text, /::error title=overlay-mtu,file=stacks\/app\.yml,line=8,col=3::\[app\] Network edge \| no MTU/);
  assert.match(text, /::warning title=failure-action,file=stacks\/app\.yml,line=2,col=3::\[app\/web\] set rollback/);
  assert.match(text, /::notice title=no-healthcheck,/);
  assert.match(r.markdown, /1 error, 1 warning, 1 notice/);
  assert.match(r.markdown, /\| stacks\/app\.yml:8:3 \| `overlay-mtu` \| error \| app \| Network edge \\\| no MTU \|/);
  assert.match(r.markdown, /\| stacks\/app\.yml:2:3 \| `failure-action` \| warning \| app \/ web \| set rollback \|/);
  assert.equal(reportFindings([]).markdown.trim(), 'Pre-flight checks: 0 errors, 0 warnings, 0 notices.');
});
