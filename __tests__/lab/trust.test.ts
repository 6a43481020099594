// What a failed or odd release leaves behind, through dist/index.js against the real lab: a
// `docker stack deploy` that fails part-way, a new service that crash-loops, an env-only change.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runAction } from '../helpers/action';
import { LabEnv, copyExample, docker, dockerOk, removeStack, requireLab, uniqueName } from '../helpers/lab';
import { baseInputs, exampleStacks, onHost, release } from './common';

const ex = exampleStacks('tr');
const WEB = `${ex.app}_web`;
const API = `${ex.app}_api`;
let lab: LabEnv;
let inputs: Record<string, string>;
const remoteDir = `.deploy-action-test-${uniqueName('tr')}`;
const BLOCKER = uniqueName('tr-blocker');
// An ingress port the blocker holds: a service of the release asking for it is refused by the engine.
const PORT = 30000 + Math.floor(Math.random() * 2000);

before(async () => {
  lab = await requireLab();
  inputs = { ...baseInputs(lab, remoteDir, uniqueName('e2e-tr'), 'tr'), stability: '0' };
  await removeStack(ex.app);
  await removeStack(ex.infra);
  const r = await release(lab, inputs, '1.0.0', {});
  assert.equal(r.deploy.code, 0, r.deploy.maskedLog.slice(-3000));
});

// What each run did and how long it took, printed at the end for docs/reliability.md.
const rows: string[] = [];
const row = (what: string, happened: string, ms: number) =>
  rows.push(`| ${what} | ${happened} | ${(ms / 1000).toFixed(1)} s |`);

after(async () => {
  console.log(['', '| scenario | what happened | time |', '| --- | --- | --- |', ...rows, ''].join('\n'));
  await docker(['service', 'rm', BLOCKER]);
  await removeStack(ex.app);
  await removeStack(ex.infra);
  await onHost(lab, `rm -rf ${remoteDir}`);
});

/** The example with `MARK` in web's and api's environment, and more services appended to app.yml. */
function variant(extraServices = ''): string {
  const dir = copyExample();
  const app = path.join(dir, 'stacks', 'app.yml');
  let text = fs.readFileSync(app, 'utf8');
  for (const s of ['web', 'api'])
    text = text.replace(`  ${s}:\n    image:`, `  ${s}:\n    environment:\n      MARK: \${MARK:-none}\n    image:`);
  text = text.replace('\nnetworks:\n', `${extraServices}\nnetworks:\n`);
  fs.writeFileSync(app, text);
  return dir;
}

async function deploy(dir: string, release: string, mark: string, extra: Record<string, string> = {}) {
  return runAction({
    inputs: { ...inputs, command: 'deploy', release, env: `${inputs.env}\nMARK=${mark}`, ...extra },
    cwd: dir,
  });
}

const specEnv = async (svc: string) =>
  (await dockerOk(['service', 'inspect', svc, '--format', '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'])).trim();
const exists = async (svc: string) => (await docker(['service', 'inspect', svc])).code === 0;

/** MARK of every running container of the service. */
async function runningMarks(svc: string): Promise<string[]> {
  const ids = (await dockerOk(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${svc}`]))
    .trim()
    .split('\n')
    .filter(Boolean);
  const marks: string[] = [];
  for (const id of ids)
    marks.push(
      /MARK=([^",\]]*)/.exec(await dockerOk(['inspect', id, '--format', '{{json .Config.Env}}']))?.[1] ?? '(none)',
    );
  return marks.sort();
}

async function ledger(): Promise<{ release: string; result: string }[]> {
  return JSON.parse((await onHost(lab, `cat ${remoteDir}/stacks/${ex.app}/ledger.json`)).stdout).releases;
}

test(
  'a dry-run deploy with a host says per service what would change, and changes nothing: no spec, ledger, lock, secret or file',
  { timeout: 120_000 },
  async () => {
    // This file's secrets only: other test files may create theirs at the same time.
    const files = async () =>
      (
        await onHost(
          lab,
          `cd ${remoteDir} && find . | sort && cat stacks/*/ledger.json; docker secret ls --format '{{.Name}} {{.ID}}' | grep -E '^(${ex.infra}|${ex.app})_' | sort`,
        )
      ).stdout;
    const before = { files: await files(), web: await specEnv(WEB) };
    const dir = variant();
    try {
      const r = await deploy(dir, 'dry', 'dry', { 'dry-run': 'true' });
      assert.equal(r.code, 0, r.maskedLog.slice(-3000));
      assert.equal(r.outputs.result, 'checked');
      assert.match(r.log, new RegExp(`${ex.app}: would deploy release dry:`));
      assert.match(r.log, new RegExp(`  ${WEB}: web:1\\.0\\.0 → web:1\\.0\\.0`));
      assert.doesNotMatch(r.log, /Waiting for the deploy lock|Host logged in/);
      assert.equal(await files(), before.files, 'the dry run changed files, ledgers or secrets on the host');
      assert.equal(await specEnv(WEB), before.web);
      row(
        'dry-run deploy with a host',
        'checked; per service "now → after" printed; host files, ledger, secrets and specs byte for byte the same',
        r.durationMs,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'stability 0, an env-only change: "deployed" only once every running task has the new environment',
  { timeout: 180_000 },
  async () => {
    const dir = variant();
    try {
      for (const mark of ['a', 'b']) {
        const r = await deploy(dir, `env-${mark}`, mark);
        assert.equal(r.code, 0, r.maskedLog.slice(-3000));
        assert.equal(r.outputs.result, 'deployed');
        // Read the moment the action says so: the old tasks ran the same image, but not this environment.
        assert.deepEqual(
          await runningMarks(WEB),
          [mark, mark],
          `deployed while web still ran the old environment (MARK=${mark} asked)`,
        );
        assert.deepEqual(await runningMarks(API), [mark, mark]);
        row(
          `env-only change (MARK=${mark}), stability 0`,
          'deployed; read at once, every running web and api task has the new environment',
          r.durationMs,
        );
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a new service of the release that crash-loops: the layer fails and the service is removed, the others untouched',
  { timeout: 180_000 },
  async () => {
    const webBefore = await specEnv(WEB);
    const dir = variant(
      `\n  worker:\n    image: ${lab.registry}/lab/base:1\n    command: ["sh", "-c", "echo worker boom; exit 3"]\n    networks: [backend]\n    deploy:\n      endpoint_mode: dnsrr\n      restart_policy: { condition: any, delay: 0s }\n`,
    );
    try {
      // A window long enough to see the crash right after the first start (with 0 its first run counts).
      const r = await deploy(dir, 'new-crasher', 'b', { stability: '5' });
      assert.notEqual(r.code, 0);
      assert.match(r.log, new RegExp(`${ex.app}_worker: [^\\n]*failed`));
      assert.match(r.log, /worker boom/);
      assert.match(r.log, new RegExp(`Removed the service\\(s\\) this release created: ${ex.app}_worker`));
      assert.equal(await exists(`${ex.app}_worker`), false, 'the crash-looping new service is still there');
      assert.equal(await specEnv(WEB), webBefore);
      assert.deepEqual(
        (await ledger()).slice(-1).map((l) => `${l.release}:${l.result}`),
        [`new-crasher:${r.outputs.result}`],
      );
      row(
        'a new service crash-looping (exit 3) next to an env change',
        `${r.outputs.result}; the new service removed, web and api back on their spec; ledger says ${r.outputs.result}`,
        r.durationMs,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'docker stack deploy failing part-way: what it changed is rolled back, what it created removed, nothing left on the new spec',
  { timeout: 400_000 },
  async () => {
    await dockerOk([
      'service',
      'create',
      '--detach',
      '--name',
      BLOCKER,
      '--publish',
      `${PORT}:8080`,
      `${lab.registry}/lab/base:1`,
      'sleep',
      '3600',
    ]);
    const webBefore = await specEnv(WEB);
    const apiBefore = await specEnv(API);
    // The CLI creates and updates services in Go map order: the refused one comes first or after others.
    const dir = variant(
      `\n  zz-port:\n    image: ${lab.registry}/lab/base:1\n    command: ["sleep", "3600"]\n    ports: ["${PORT}:8080"]\n    networks: [backend]\n`,
    );
    let partWay = 0;
    try {
      for (let attempt = 1; attempt <= 6 && partWay === 0; attempt++) {
        const r = await deploy(dir, `part-way-${attempt}`, `c${attempt}`);
        assert.notEqual(r.code, 0);
        assert.match(r.errors.join('\n'), new RegExp(`${PORT}|port`, 'i'), 'the error does not name the refusal');
        if (/failed part-way/.test(r.log)) {
          partWay++;
          assert.equal(r.outputs.result, 'rolled-back', r.maskedLog.slice(-3000));
        } else assert.equal(r.outputs.result, 'failed');
        // Whatever the order: the running services are back on their spec, no new service stays.
        assert.equal(await specEnv(WEB), webBefore, `attempt ${attempt}: web is left on the new spec`);
        assert.equal(await specEnv(API), apiBefore, `attempt ${attempt}: api is left on the new spec`);
        assert.equal(await exists(`${ex.app}_zz-port`), false);
        assert.equal((await ledger()).slice(-1)[0].result, r.outputs.result, 'the ledger disagrees with the outputs');
        row(
          `docker stack deploy refused part-way (ingress port ${PORT} taken), attempt ${attempt}`,
          `${/failed part-way/.test(r.log) ? 'the CLI had changed services first: ' : 'refused before any change: '}${r.outputs.result}; web and api on their spec, the new service absent; ledger says ${r.outputs.result}`,
          r.durationMs,
        );
      }
      assert.ok(partWay > 0, 'in 6 attempts the CLI never changed a service before the refused one');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
