// The gate follows the stack's own timing and the swarm's nodes, through dist/index.js on the lab:
// `timeout: auto` lets a slow but healthy rolling update finish, an explicit timeout it cannot fit
// is refused before anything changes, and placement the nodes cannot satisfy fails early with the
// scheduler's words.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runAction } from '../helpers/action';
import { LabEnv, docker, dockerOk, labInputs, removeStack, requireLab, tempDir, uniqueName } from '../helpers/lab';
import { onHost } from './common';

const STACK = uniqueName('tm');
const SVC = `${STACK}_slow`;
const remoteDir = `.deploy-action-test-${uniqueName('tm')}`;
let lab: LabEnv;
let dir: string;

/**
 * 3 replicas updated one at a time, 5 s apart, monitor 10 s: Swarm takes about 40 s (measured 38 s),
 * and the gate's stability window follows.
 */
function stackFile(placement = '', reservation = ''): string {
  return `services:
  slow:
    image: ${lab.registry}/lab/base:1
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
    environment:
      MARK: \${MARK}
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      timeout: 10s
      retries: 5
      start_period: 30s
    deploy:
      replicas: 3
      endpoint_mode: dnsrr
      update_config: { parallelism: 1, delay: 5s, monitor: 10s, order: start-first, failure_action: rollback }
${placement}${reservation}`;
}

function write(text: string): void {
  fs.writeFileSync(path.join(dir, 'stacks', 'slow.yml'), text);
}

async function deploy(release: string, extra: Record<string, string> = {}) {
  return runAction({
    inputs: {
      ...labInputs(lab, 'tm', remoteDir),
      command: 'deploy',
      stacks: `${STACK}=stacks/slow.yml`,
      release,
      env: `MARK=${release}`,
      'lock-timeout': '60',
      ...extra,
    },
    cwd: dir,
  });
}

const spec = async () =>
  (await dockerOk(['service', 'inspect', SVC, '--format', '{{json .Spec.TaskTemplate}}'])).trim();
const exists = async () => (await docker(['service', 'inspect', SVC])).code === 0;

before(async () => {
  lab = await requireLab();
  dir = tempDir('tm-');
  fs.mkdirSync(path.join(dir, 'stacks'));
  // A VERSION per service is how the action reads versions; this stack's image is not built here.
  fs.mkdirSync(path.join(dir, 'service', 'slow'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'service', 'slow', 'VERSION'), '1.0.0\n');
  write(stackFile());
  await removeStack(STACK);
});

after(async () => {
  await removeStack(STACK);
  await onHost(lab, `rm -rf ${remoteDir}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test(
  'an explicit timeout a healthy rolling update cannot fit is refused before anything changes, naming both figures',
  { timeout: 120_000 },
  async () => {
    const r = await deploy('short', { timeout: '30', stability: '5' });
    assert.notEqual(r.code, 0);
    // 3 batches × (first check 2 s + delay 5 s) + monitor 10 s + stability 5 s = 36 s
    assert.match(
      r.errors.join('\n'),
      /\[timeout-too-short\] Service slow: input `timeout` is 30 s, but a healthy rolling update of it takes at least 36 s/,
    );
    assert.equal(await exists(), false, 'the refused release created the service');
  },
);

test(
  'timeout auto: a slow, healthy rolling update is waited for, with the figure and its reasons printed and calm progress lines',
  { timeout: 300_000 },
  async () => {
    // The first deploy only creates the service: its stability window proves nothing here.
    const first = await deploy('a', { stability: '0' });
    assert.equal(first.code, 0, first.maskedLog.slice(-3000));
    const r = await deploy('b');
    assert.equal(r.code, 0, r.maskedLog.slice(-4000));
    assert.equal(r.outputs.result, 'deployed');
    // 3 × (10 start + 30 + 2×5 + 10 to healthy + 5 delay) + monitor 10 + stability (10 + 2×5) + pulls 60
    assert.match(
      r.log,
      new RegExp(
        `timeout 285 s \\(auto, set by ${SVC}: 3 batch\\(es\\) × \\(10 s start \\+ 50 s to healthy \\+ 5 s delay\\) \\+ monitor 10 s \\+ stability 20 s \\+ pulls 60 s\\)`,
      ),
    );
    // Swarm alone takes about 40 s here: the gate said where it stood at least once meanwhile.
    assert.match(
      r.log,
      /Gate: 3\d s in, \d+ s left; 0\/1 service\(s\) done\.\n\s+[^\n]*_slow: pending: updating[^\n]*running the new spec/,
    );
    const marks = (
      await dockerOk(['service', 'inspect', SVC, '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'])
    ).trim();
    assert.match(marks, /MARK=b/);
    const rolled = /Gate: \d+ polls in ([\d.]+) s/.exec(r.log);
    console.log(`timing: healthy 3-replica rolling update gated in ${rolled?.[1]} s with timeout auto 285 s`);
  },
);

test(
  'placement no node meets: a pre-flight error naming the service, the constraint and the nodes; nothing changes',
  { timeout: 120_000 },
  async () => {
    const before = await spec();
    write(stackFile('      placement:\n        constraints: [node.labels.zone == nowhere]\n'));
    try {
      const r = await deploy('nowhere');
      assert.notEqual(r.code, 0);
      assert.match(
        r.errors.join('\n'),
        /\[placement\] Service slow: no node meets "node.labels.zone == nowhere"\. The swarm's nodes: [^\n]*\(manager; /,
      );
      assert.equal(await spec(), before, 'the refused release changed the service');
    } finally {
      write(stackFile());
    }
  },
);

test(
  "a task no node has room for fails the layer at once with the scheduler's words, and the last good version keeps running",
  { timeout: 300_000 },
  async () => {
    const before = await spec();
    write(stackFile('', '      resources:\n        reservations:\n          memory: 100000G\n'));
    try {
      const r = await deploy('huge', { timeout: '200' });
      assert.notEqual(r.code, 0);
      assert.equal(r.outputs.result, 'rolled-back', r.maskedLog.slice(-3000));
      assert.match(r.errors.join('\n'), /cannot be placed: [^\n]*insufficient resources/);
      assert.doesNotMatch(r.log, /not healthy within the timeout/, 'the verdict waited for the timeout');
      assert.equal(await spec(), before, 'the last good spec is not back');
      const took = /Gate: \d+ polls in ([\d.]+) s/.exec(r.log);
      console.log(`timing: unplaceable task judged after ${took?.[1]} s of gate (timeout 200 s)`);
    } finally {
      write(stackFile());
    }
  },
);
