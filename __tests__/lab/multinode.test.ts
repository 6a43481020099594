// The action on a real 3-node Swarm (lab/multinode.sh: 1 manager, 2 workers, each a dockerd in its
// own network namespace, overlay across them, a registry every node pulls from, the sshd the action
// connects to in the manager's namespace), through dist/index.js as the runner runs it: the core
// scenarios (deploy with placement by node label and a secret, failed release, manual rollback) and
// faults across nodes (a drained worker, a worker that cannot pull, a worker's engine stopped).
// The file brings the 3-node lab up if it is absent and always takes it down at the end (its engines
// would load the machine during later tests); LAB_NODES_KEEP=1 keeps it up for the next run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ActionRun, runAction } from '../helpers/action';
import {
  LAB_SCRIPT,
  copyExample,
  docker,
  dockerOk,
  parseExports,
  run,
  setServiceMode,
  setServiceVersion,
  uniqueName,
  waitFor,
  WEB_HEALTHCHECK,
} from '../helpers/lab';
import { ActionProcess, startAction } from '../helpers/action';

const NAME = uniqueName('mn');
const DATA = `${NAME}-data`;
const WEB = `${NAME}-web`;
const MESH = `${NAME}_mesh`;
const TOKEN = `tok-${uniqueName('mn')}-never-printed`;
const remoteDir = `.deploy-action-${NAME}`;

type Node = 'manager' | 'worker1' | 'worker2';
let env: Record<string, string>;
let dir: string;
let inputs: Record<string, string>;
const timings: [string, string][] = [];
let blocked = false;

const lab = (...args: string[]) => run('bash', [LAB_SCRIPT, ...args, '--nodes', '3'], { timeoutMs: 240_000 });
const host = (n: Node) => env[`LAB_${n.toUpperCase()}_HOSTNAME`];
/** The docker CLI against one node's engine. */
const nd = (n: Node, args: string[]) =>
  dockerOk(['-H', env[`LAB_${n.toUpperCase()}_DOCKER_HOST`], ...args], { timeoutMs: 60_000 });
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// web's update and rollback run stop-first: a replaced task goes back to the node its predecessor
// left (the spread counts it no more), so each worker keeps one web task across releases.
const COMMON = `${WEB_HEALTHCHECK}    stop_grace_period: 2s
    networks: [mesh]`;
const DEPLOY = (order: string) => `      endpoint_mode: dnsrr
      update_config: { parallelism: 1, order: ${order}, failure_action: rollback, monitor: 5s }
      rollback_config: { parallelism: 1, order: ${order} }
      restart_policy: { condition: any, delay: 1s }`;
const DATA_YML = `version: "3.8"
services:
  api:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/api:\${API_VERSION}
${COMMON}
    secrets: [mn_token]
    deploy:
      replicas: 1
      placement:
        constraints: [node.labels.zone == c]
${DEPLOY('start-first')}
networks:
  mesh:
    name: \${MESH}
    driver: overlay
    attachable: true
    driver_opts: { com.docker.network.driver.mtu: "1450" }
secrets:
  mn_token: { external: true }
`;
const WEB_YML = `version: "3.8"
services:
  web:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/web:\${WEB_VERSION}
${COMMON}
    deploy:
      replicas: 2
      placement:
        constraints: [node.role == worker]
${DEPLOY('stop-first')}
networks:
  mesh: { name: "\${MESH}", external: true }
`;

/** Builds and pushes the service folders through the action, with the manager's engine (it trusts the lab's registry). */
async function build(services: string): Promise<void> {
  const t0 = Date.now();
  const r = await runAction({
    inputs: { ...inputs, command: 'build', services },
    cwd: dir,
    env: { DOCKER_HOST: env.LAB_MANAGER_DOCKER_HOST },
    timeoutMs: 180_000,
  });
  keep(`build-${services.replace(/\W+/g, '_')}`, r.log);
  assert.equal(r.code, 0, `build ${services} failed:\n${r.maskedLog.slice(-3000)}`);
  timings.push([`build ${services} (action)`, seconds(Date.now() - t0)]);
}

/**
 * A later version of a service, cheaply: its 1.0.0 image with the new VERSION and MODE copied in
 * (one COPY layer, no container run), pushed to the lab's registry; the VERSION file follows.
 * The action's own build is exercised by the first deploy.
 */
async function derive(service: string, version: string, mode: 'ok' | 'crash' = 'ok'): Promise<void> {
  const t0 = Date.now();
  setServiceVersion(dir, service, version);
  setServiceMode(dir, service, mode);
  const repo = `${env.LAB_REGISTRY}/${NAME}/${service}`;
  const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'mn-derive-'));
  try {
    fs.writeFileSync(
      path.join(ctx, 'Dockerfile'),
      `FROM ${repo}:1.0.0\nCOPY version /app/www/version\nCOPY MODE /app/MODE\n`,
    );
    fs.writeFileSync(path.join(ctx, 'version'), `${version}\n`);
    fs.writeFileSync(path.join(ctx, 'MODE'), `${mode}\n`);
    await nd('manager', ['build', '-q', '-t', `${repo}:${version}`, ctx]);
    await nd('manager', ['push', '-q', `${repo}:${version}`]);
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
  timings.push([
    `image ${service} ${version}${mode === 'ok' ? '' : ` (${mode})`} derived and pushed`,
    seconds(Date.now() - t0),
  ]);
}

/** MN_LOG_DIR=folder keeps every run's log there (to read where the time went). */
function keep(name: string, log: string): void {
  const d = process.env.MN_LOG_DIR;
  if (d) {
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `${name}.log`), log);
  }
}

async function deploy(extra: Record<string, string> = {}): Promise<ActionRun> {
  const r = await runAction({ inputs: { ...inputs, command: 'deploy', ...extra }, cwd: dir, timeoutMs: 240_000 });
  keep(`deploy-${extra.release ?? 'x'}`, r.log);
  return r;
}

/** The first line of a live run matching `re` that came after `since` (bounded). */
function lineAfter(a: ActionProcess, re: RegExp, since: number, timeoutMs = 120_000) {
  return waitFor(() => a.lines.find((l) => l.t > since && re.test(l.text)), {
    timeoutMs,
    intervalMs: 200,
    what: `a line matching ${re}`,
  });
}

function live(extra: Record<string, string>): ActionProcess {
  return startAction({ inputs: { ...inputs, command: 'deploy', ...extra }, cwd: dir });
}

/** Where a service's tasks run (desired running, state running): node hostname and image tag. */
async function placement(service: string): Promise<{ node: string; tag: string }[]> {
  const out = await nd('manager', [
    'service',
    'ps',
    service,
    '--filter',
    'desired-state=running',
    '--format',
    '{{.Node}} {{.CurrentState}} {{.Image}}',
  ]);
  return out
    .split('\n')
    .filter((l) => / Running /.test(l))
    .map((l) => ({ node: l.split(' ')[0], tag: (l.split(' ').pop() ?? '').split('@')[0].split(':').pop() ?? '' }))
    .sort((a, b) => a.node.localeCompare(b.node));
}

/** The spec's image tag of a service. */
async function specTag(service: string): Promise<string> {
  const image = (
    await nd('manager', ['service', 'inspect', service, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])
  ).trim();
  return image.split('@')[0].split(':').pop() ?? '';
}

/** The id of the container a node runs for a service. */
async function container(n: Node, service: string): Promise<string> {
  return waitFor(
    async () =>
      (await nd(n, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).trim().split('\n')[0],
    { timeoutMs: 20_000, what: `a container of ${service} on ${n}` },
  );
}

function blockRegistry(n: Node, on: boolean): Promise<unknown> {
  const rule = [
    '-d',
    env.LAB_BRIDGE_ADDR,
    '-p',
    'tcp',
    '--dport',
    env.LAB_REGISTRY.split(':')[1],
    '-j',
    'REJECT',
    '--reject-with',
    'tcp-reset',
  ];
  blocked = on;
  return run('ip', [
    'netns',
    'exec',
    env[`LAB_${n.toUpperCase()}_NETNS`],
    'iptables',
    on ? '-I' : '-D',
    'OUTPUT',
    ...rule,
  ]).then((r) => assert.equal(r.code, 0, r.stderr));
}

before(async () => {
  const t0 = Date.now();
  const up = await lab('up');
  assert.equal(up.code, 0, `bash lab/lab.sh up --nodes 3 failed:\n${up.stderr.slice(-3000)}`);
  timings.push(['bash lab/lab.sh up --nodes 3', seconds(Date.now() - t0)]);
  env = parseExports((await lab('env')).stdout);
  dir = copyExample();
  fs.writeFileSync(path.join(dir, 'stacks', 'data.yml'), DATA_YML);
  fs.writeFileSync(path.join(dir, 'stacks', 'web.yml'), WEB_YML);
  inputs = {
    registry: env.LAB_REGISTRY,
    'image-prefix': NAME,
    host: env.LAB_HOST,
    port: env.LAB_PORT,
    user: env.LAB_USER,
    'ssh-key': fs.readFileSync(env.LAB_SSH_KEY_FILE, 'utf8'),
    'known-hosts': fs.readFileSync(env.LAB_KNOWN_HOSTS_FILE, 'utf8'),
    'remote-dir': remoteDir,
    stacks: `${DATA}=stacks/data.yml\n${WEB}=stacks/web.yml`,
    env: `MESH=${MESH}`,
    secrets: `mn_token=${TOKEN}`,
    stability: '2',
  };
});

after(async () => {
  if (blocked) await blockRegistry('worker2', false).catch(() => undefined);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(path.join(os.homedir(), remoteDir), { recursive: true, force: true });
  if (process.env.LAB_NODES_KEEP === '1') {
    await docker(['-H', env.LAB_MANAGER_DOCKER_HOST, 'stack', 'rm', WEB, DATA]);
  } else {
    const t0 = Date.now();
    const down = await lab('down');
    assert.equal(down.code, 0, `bash lab/lab.sh down --nodes 3 failed:\n${down.stderr.slice(-3000)}`);
    timings.push(['bash lab/lab.sh down --nodes 3', seconds(Date.now() - t0)]);
    // Nothing of it is left: namespaces, bridge, FORWARD rule, engines.
    const prefix = env.LAB_MANAGER_NETNS.replace(/-m$/, '-');
    assert.ok(!(await run('ip', ['netns', 'list'])).stdout.includes(prefix), 'a namespace of the 3-node lab is left');
    assert.notEqual((await run('ip', ['link', 'show', env.LAB_BRIDGE])).code, 0, 'the bridge is left');
    assert.notEqual(
      (await run('iptables', ['-w', '-C', 'FORWARD', '-i', env.LAB_BRIDGE, '-o', env.LAB_BRIDGE, '-j', 'ACCEPT'])).code,
      0,
      'the FORWARD rule is left',
    );
    assert.ok(
      !(await run('ps', ['-eo', 'args'])).stdout.includes(
        env.LAB_MANAGER_DOCKER_HOST.replace(/^unix:\/\/|\/manager\.sock$/g, ''),
      ),
      'a process of the 3-node lab is left',
    );
  }
  console.log(`\n3-node lab timings:\n${timings.map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
});

describe('3-node swarm', { timeout: 420_000 }, () => {
  it('deploys both layers: api placed by its zone label with its secret, web on the workers, overlay across nodes', async () => {
    await build('service/*');
    const r = await deploy({ release: '1.0.0' });
    assert.equal(r.code, 0, r.maskedLog.slice(-4000));
    assert.equal(r.outputs.result, 'deployed');
    timings.push(['deploy 1.0.0 (2 layers)', seconds(r.durationMs)]);
    assert.deepEqual(await placement(`${DATA}_api`), [{ node: host('worker2'), tag: '1.0.0' }]);
    assert.deepEqual(await placement(`${WEB}_web`), [
      { node: host('worker1'), tag: '1.0.0' },
      { node: host('worker2'), tag: '1.0.0' },
    ]);
    // The secret reached the task on worker2, and the log never shows it.
    const api = await container('worker2', `${DATA}_api`);
    assert.equal((await nd('worker2', ['exec', api, 'cat', '/run/secrets/mn_token'])).trim(), TOKEN);
    assert.ok(
      !r.log
        .split('\n')
        .filter((l) => !l.startsWith('::add-mask::'))
        .join('\n')
        .includes(TOKEN),
      'the secret appears in the log',
    );
    // Overlay across nodes: api on worker2 reaches web on worker1 by its overlay address.
    const web1 = await container('worker1', `${WEB}_web`);
    const ip = (
      await nd('worker1', ['inspect', web1, '--format', `{{(index .NetworkSettings.Networks "${MESH}").IPAddress}}`])
    ).trim();
    assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);
    // (busybox's static wget crashes in these containers; nc speaks the HTTP.)
    const answer = await nd('worker2', [
      'exec',
      api,
      'sh',
      '-c',
      `printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${ip} 8080`,
    ]);
    assert.match(answer, /^HTTP\/1\.[01] 200/);
    assert.equal(answer.trim().split('\n').pop()?.trim(), '1.0.0');
  });

  it('a failed release (web crashes on the workers) is rolled back by Swarm; the job names the nodes', async () => {
    await derive('web', '1.1.0', 'crash');
    const r = await deploy({ release: '1.1.0' });
    assert.notEqual(r.code, 0);
    assert.equal(r.outputs.result, 'rolled-back', r.maskedLog.slice(-4000));
    timings.push(['deploy 1.1.0 (crash) → rolled back', seconds(r.durationMs)]);
    const reason = r.errors.join('\n');
    assert.match(reason, /exit 3/);
    assert.match(reason, new RegExp(`on (${host('worker1')}|${host('worker2')})`), reason);
    assert.equal(await specTag(`${WEB}_web`), '1.0.0');
    assert.deepEqual(
      (await placement(`${WEB}_web`)).map((t) => t.tag),
      ['1.0.0', '1.0.0'],
    );
  });

  it('a worker drained during the deploy (before web rolls out): the release is deployed on the others', async () => {
    await derive('web', '1.2.0');
    const a = live({ release: '1.2.0' });
    try {
      // During the run, before web's rolling update: the first layer's gate has started. (Drained
      // while a new web task is inside its monitor window, Swarm counts the task's shutdown as an
      // "early termination" and rolls the update back itself: seen once, see the README.)
      await a.waitLine(new RegExp(`Gate: watching .* of ${DATA};`), 120_000);
      await nd('manager', ['node', 'update', '--availability', 'drain', host('worker1')]);
      const r = await a.finish(240_000);
      keep('deploy-drain', r.log);
      assert.equal(r.code, 0, r.maskedLog.slice(-4000));
      assert.equal(r.outputs.result, 'deployed');
      timings.push(["deploy 1.2.0, worker1 drained at the first layer's gate", seconds(r.durationMs)]);
      assert.deepEqual(await placement(`${WEB}_web`), [
        { node: host('worker2'), tag: '1.2.0' },
        { node: host('worker2'), tag: '1.2.0' },
      ]);
    } finally {
      await nd('manager', ['node', 'update', '--availability', 'active', host('worker1')]);
    }
  });

  it('manual rollback to the previous release: 1.2.0 → 1.0.0', async () => {
    const r = await runAction({
      inputs: { ...inputs, command: 'rollback', 'rollback-to': 'previous' },
      cwd: dir,
      timeoutMs: 240_000,
    });
    assert.equal(r.code, 0, r.maskedLog.slice(-4000));
    assert.equal(r.outputs.result, 'rolled-back');
    timings.push(['rollback to previous (1.2.0 → 1.0.0)', seconds(r.durationMs)]);
    assert.equal(await specTag(`${WEB}_web`), '1.0.0');
    // Stop-first: the task that leaves worker2 comes back on the node with fewer, worker1 active again.
    assert.deepEqual(await placement(`${WEB}_web`), [
      { node: host('worker1'), tag: '1.0.0' },
      { node: host('worker2'), tag: '1.0.0' },
    ]);
  });

  it('a worker that cannot pull the image: the job names the node and why, and the release is rolled back', async () => {
    await derive('api', '1.1.0');
    await blockRegistry('worker2', true);
    try {
      const r = await deploy({ release: 'api-1.1.0' });
      assert.notEqual(r.code, 0);
      assert.equal(r.outputs.result, 'rolled-back', r.maskedLog.slice(-4000));
      timings.push(['deploy api 1.1.0, worker2 cannot reach the registry → rolled back', seconds(r.durationMs)]);
      const reason = r.errors.join('\n');
      assert.match(reason, new RegExp(`on ${host('worker2')}`), reason);
      assert.match(reason, /No such image|pull/i, reason);
      assert.deepEqual(await placement(`${DATA}_api`), [{ node: host('worker2'), tag: '1.0.0' }]);
      // Later layers are not deployed.
      assert.ok(!r.log.includes(`Layer ${WEB}`), 'the web layer was deployed after a failed data layer');
    } finally {
      await blockRegistry('worker2', false);
    }
  });

  it("a worker's engine stopped mid-gate: web rescheduled → deployed; api pinned to it → failed with the reason, no hang", async () => {
    await derive('api', '1.2.0');
    await derive('web', '1.3.0');
    // Two runs at once, one per stack, each inside its stability window when the engine stops, however
    // long the rollouts took: the engine stops as web converges (45 s window), and api, which converges
    // first, watches 120 s (it ends at its verdict anyway).
    const a = live({ release: 'web-1.3.0', stacks: `${WEB}=stacks/web.yml`, stability: '45' });
    const b = live({ release: 'api-1.2.0', stacks: `${DATA}=stacks/data.yml`, stability: '120' });
    let restarted = false;
    try {
      await b.waitLine(new RegExp(`${DATA}_api: converged`), 120_000);
      await a.waitLine(new RegExp(`${WEB}_web: converged`), 120_000);
      assert.deepEqual(
        (await placement(`${WEB}_web`)).map((t) => t.node),
        [host('worker1'), host('worker2')],
      );
      const t0 = Date.now();
      const stop = lab('stop-node', 'worker2').then((r) => {
        timings.push(['worker2 engine: SIGTERM until it exited', seconds(Date.now() - t0)]);
        return r;
      });
      const lost = await lineAfter(a, new RegExp(`${WEB}_web: pending`), t0);
      timings.push(['worker2 engine SIGTERM → web gate sees a task gone', seconds(lost.t - t0)]);
      const failed = await b.waitLine(/cannot be placed/, 120_000);
      timings.push(['worker2 engine SIGTERM → api gate verdict', seconds(failed.t - t0)]);
      const back = await lineAfter(a, new RegExp(`${WEB}_web: converged: 2/2`), lost.t);
      timings.push(['worker2 engine SIGTERM → web 2/2 again (rescheduled on worker1)', seconds(back.t - t0)]);
      assert.equal((await stop).code, 0);
      // The engine comes back so the api rollback can converge (the lab stays whole).
      const t1 = Date.now();
      const up = await lab('up');
      assert.equal(up.code, 0, up.stderr.slice(-2000));
      restarted = true;
      timings.push(['worker2 engine started again (bash lab/lab.sh up --nodes 3)', seconds(Date.now() - t1)]);
      const [ra, rb] = await Promise.all([a.finish(240_000), b.finish(240_000)]);
      keep('deploy-stop-web', ra.log);
      keep('deploy-stop-api', rb.log);
      assert.equal(ra.code, 0, ra.maskedLog.slice(-4000));
      assert.equal(ra.outputs.result, 'deployed');
      // The fault reached web's gate: it lost its worker2 task after converging, and got it back on worker1.
      const converged = ra.log.indexOf(`${WEB}_web: converged`);
      assert.ok(
        ra.log.indexOf(`${WEB}_web: pending`, converged) > converged,
        `web never lost a task during its gate:\n${ra.maskedLog.slice(-3000)}`,
      );
      assert.deepEqual(await placement(`${WEB}_web`), [
        { node: host('worker1'), tag: '1.3.0' },
        { node: host('worker1'), tag: '1.3.0' },
      ]);
      timings.push(['web 1.3.0 with worker2 stopped mid-gate → deployed', seconds(ra.durationMs)]);
      assert.notEqual(rb.code, 0);
      const reason = rb.errors.join('\n');
      assert.match(reason, /no suitable node/, reason);
      assert.match(reason, new RegExp(`nodes not taking new tasks: ${host('worker2')} \\(down\\)`), reason);
      // worker2 came back: the rollback found api's old spec a place again.
      assert.equal(rb.outputs.result, 'rolled-back', rb.maskedLog.slice(-3000));
      assert.deepEqual(await placement(`${DATA}_api`), [{ node: host('worker2'), tag: '1.0.0' }]);
      timings.push([`api 1.2.0 with worker2 stopped mid-gate → ${rb.outputs.result}`, seconds(rb.durationMs)]);
    } finally {
      if (!restarted) await lab('up');
      await Promise.all([a.wait(60_000).catch(() => undefined), b.wait(60_000).catch(() => undefined)]);
    }
  });
});
