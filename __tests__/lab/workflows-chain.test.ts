// The reusable workflows, run for real against the lab: a caller of the starter
// workflows-templates/release.yml deploys the example app through
// .github/workflows/deploy.yml (build → infra → app → summary) twice, then a
// caller of workflows-templates/rollback.yml rolls it back through
// .github/workflows/rollback.yml (app → infra → summary); last, a deploy whose
// infra layer fails never reaches the app job.
//
// helpers/workflow.ts plays the runner: the jobs in `needs` order, each job's
// `if:`, this action's steps through dist/index.js (runAction) with their
// `with:` evaluated from the workflow's inputs and secrets, the `run:` steps
// with bash (the rollback's layer reversal, the summary), step, job and
// workflow outputs. checkout is skipped: the workspace is a copy of example/.
// Any expression, key or action it does not model throws.
//
// The lab is shared: this file touches only its own stacks (wf-infra,
// wf-app, on the networks wf_edge / wf_backend via NETWORK_PREFIX=wf), its own
// image prefix and its own remote-dir, and removes them at the end.
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  LabEnv,
  copyExample,
  docker,
  dockerOk,
  removeStack,
  requireLab,
  setServiceVersion,
  uniqueName,
} from '../helpers/lab';
import { StepRecord, Value, WorkflowRun, evaluateCaller, runWorkflow } from '../helpers/workflow';
import { onHost, removeLocalImages, servedVersion, serviceState, stackFingerprint } from './common';

const INFRA = 'wf-infra';
const APP = 'wf-app';
const LAYERS = { 'infra-stacks': `${INFRA}=stacks/infra.yml\n`, 'app-stacks': `${APP}=stacks/app.yml\n` };
const SERVICES = ['web', 'api'];

let lab: LabEnv;
const prefix = uniqueName('wf');
const remoteDir = `.deploy-action-${uniqueName('wf')}`;
/** Release label → the web image (with digest) its build job pushed. */
const pushed: Record<string, string> = {};

before(async () => {
  lab = await requireLab();
  // Left over by an interrupted run of this file: only our own stacks.
  await removeStack(APP);
  await removeStack(INFRA);
});

after(async () => {
  if (!lab) return;
  await removeStack(APP);
  await removeStack(INFRA);
  await onHost(lab, `rm -rf ${remoteDir}`);
  await removeLocalImages(prefix, SERVICES, lab);
  // What Swarm pulled by digest (no tag): only references under our own prefix, never by image id.
  const refs = (await dockerOk(['images', '--digests', '--format', '{{.Repository}}@{{.Digest}}']))
    .split('\n')
    .filter((r) => r.startsWith(`${lab.registry}/${prefix}/`) && !r.endsWith('@<none>'));
  if (refs.length) await docker(['rmi', '--no-prune', ...refs]);
});

// ------------------------------------------------------------ the callers

/** The repository's configuration variables, as the starter headers ask for them. */
function vars(): Record<string, Value> {
  return {
    REGISTRY: lab.registry,
    REGISTRY_USERNAME: '',
    IMAGE_PREFIX: prefix,
    DEPLOY_HOST: lab.host,
    DEPLOY_USER: lab.user,
    DEPLOY_PORT: String(lab.port),
  };
}

/** The repository's secrets: the lab's key and host key; no registry password (the lab registry is open), no DEPLOY_HOST secret. */
function repoSecrets(): Record<string, Value> {
  return { SSH_KEY: lab.sshKey, KNOWN_HOSTS: lab.knownHosts, REGISTRY_PASSWORD: '', DEPLOY_HOST: '' };
}

/**
 * What the caller changes in the starter: the environment and the layers
 * (the header says to edit them), plus what keeps this run fast and apart
 * from other lab users.
 */
function edits(): Record<string, Value> {
  return { environment: 'lab', ...LAYERS, 'remote-dir': remoteDir, stability: '2', 'job-timeout-minutes': 10 };
}

interface RunContextVars {
  github: Record<string, Value>;
  runnerEnv: Record<string, string>;
}

/** One workflow run: the same sha, ref and run id in every job, as on GitHub. */
function runContext(event: string, ref: string): RunContextVars {
  const sha = randomBytes(20).toString('hex');
  const runId = String(2_000_000_000 + Math.floor(Math.random() * 1_000_000_000));
  const refName = ref.replace(/^refs\/(heads|tags)\//, '');
  return {
    github: {
      actor: 'glasck',
      token: 'ghs_job_token_unused_in_the_lab',
      ref,
      sha,
      event_name: event,
      repository: 'glasck/example',
    },
    runnerEnv: {
      GITHUB_SHA: sha,
      GITHUB_REF: ref,
      GITHUB_REF_NAME: refName,
      GITHUB_REF_TYPE: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
      GITHUB_RUN_ID: runId,
      GITHUB_EVENT_NAME: event,
      GITHUB_ACTOR: 'glasck',
    },
  };
}

function tracer(t: TestContext): (line: string) => void {
  return (line) => t.diagnostic(line);
}

/** The action's warnings, in the trace (the runner would show them as annotations). */
function traceWarnings(t: TestContext, run: WorkflowRun): WorkflowRun {
  for (const s of run.steps) for (const w of s.action?.warnings ?? []) t.diagnostic(`warning (${s.job}): ${w}`);
  return run;
}

/** Every step's log of a run, for a failure message. */
function logs(run: WorkflowRun): string {
  return run.steps
    .filter((s) => s.kind !== 'setup')
    .map((s) => `===== ${s.job} / ${s.name}: ${s.outcome}\n${s.log.split('\n').slice(-60).join('\n')}`)
    .join('\n')
    .slice(-12000);
}

function step(run: WorkflowRun, job: string, id: string): StepRecord {
  const s = run.jobs[job]?.steps.find((x) => x.id === id);
  assert.ok(s, `${run.file}: job ${job} has no step ${id} that ran\n${logs(run)}`);
  return s;
}

/** A tag push `v<release>` calling deploy.yml as workflows-templates/release.yml does, on a copy of example/. */
async function deploy(
  t: TestContext,
  release: string,
  prepare: (dir: string) => void = () => undefined,
): Promise<WorkflowRun> {
  const rc = runContext('push', `refs/tags/v${release}`);
  const caller = evaluateCaller('workflows-templates/release.yml', 'deploy', {
    vars: vars(),
    secrets: repoSecrets(),
    github: rc.github,
  });
  assert.equal(caller.workflow, '.github/workflows/deploy.yml');
  const dir = copyExample();
  try {
    prepare(dir);
    return traceWarnings(
      t,
      await runWorkflow({
        workflow: caller.workflow,
        inputs: { ...caller.with, ...edits(), env: 'NETWORK_PREFIX=wf', release },
        secrets: caller.secrets,
        github: rc.github,
        workspace: dir,
        runnerEnv: rc.runnerEnv,
        // As common.ts release() does: the deploy must pull what the build pushed.
        afterJob: async (job) => {
          if (job.id === 'build' && job.ran) await removeLocalImages(prefix, SERVICES, lab);
        },
        log: tracer(t),
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A "Run workflow" of workflows-templates/rollback.yml, calling rollback.yml. */
async function rollback(t: TestContext, version: string): Promise<WorkflowRun> {
  const rc = runContext('workflow_dispatch', 'refs/heads/main');
  const caller = evaluateCaller('workflows-templates/rollback.yml', 'rollback', {
    inputs: { version, environment: 'lab' },
    vars: vars(),
    secrets: repoSecrets(),
    github: rc.github,
  });
  assert.equal(caller.workflow, '.github/workflows/rollback.yml');
  const dir = copyExample();
  try {
    return traceWarnings(
      t,
      await runWorkflow({
        workflow: caller.workflow,
        inputs: { ...caller.with, ...edits() },
        secrets: caller.secrets,
        github: rc.github,
        workspace: dir,
        runnerEnv: rc.runnerEnv,
        log: tracer(t),
      }),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The ids of the networks a service is attached to. */
async function serviceNetworks(service: string): Promise<string[]> {
  const out = await dockerOk([
    'service',
    'inspect',
    service,
    '--format',
    '{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}',
  ]);
  return out.trim().split(/\s+/).filter(Boolean);
}

async function networkId(name: string): Promise<string> {
  return (await dockerOk(['network', 'inspect', name, '--format', '{{.Id}}'])).trim();
}

async function ledgerReleases(stack: string): Promise<string[]> {
  const r = await onHost(lab, `cat ${remoteDir}/stacks/${stack}/ledger.json`);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { releases: { release: string; kind: string; result: string }[] }).releases.map(
    (x) => `${x.kind} ${x.release} ${x.result}`,
  );
}

// ------------------------------------------------------------------ tests

test(
  'deploy.yml, release 1.0.0: build → infra → app → summary, both layers deployed from the registry',
  { timeout: 420_000 },
  async (t) => {
    const run = await deploy(t, '1.0.0');
    assert.deepEqual(run.ran, ['build', 'infra', 'app', 'summary'], logs(run));
    assert.deepEqual(
      run.results,
      { build: 'success', infra: 'success', app: 'success', summary: 'success' },
      logs(run),
    );
    assert.equal(run.concurrency, 'deploy-lab');
    assert.equal(run.jobs.infra.environment, 'lab');
    assert.equal(run.jobs.app.environment, 'lab');

    // What deploy.yml hands the action, from the caller's inputs and secrets.
    const build = step(run, 'build', 'build');
    assert.equal(build.with?.command, 'build');
    assert.equal(build.with?.registry, lab.registry);
    assert.equal(build.with?.['image-prefix'], prefix);
    assert.equal(build.with?.services, 'service/*');
    assert.equal(build.with?.['registry-username'], '', 'not ghcr.io: no github.actor fallback');
    assert.equal(build.with?.['registry-password'], '', 'not ghcr.io: no job token fallback');
    for (const [job, stacks] of [
      ['infra', LAYERS['infra-stacks']],
      ['app', LAYERS['app-stacks']],
    ] as const) {
      const d = step(run, job, 'deploy');
      assert.equal(d.with?.command, 'deploy');
      assert.equal(d.with?.stacks, stacks, `${job} deploys its own layers`);
      assert.equal(d.with?.host, lab.host, 'DEPLOY_HOST secret empty: the host input');
      assert.equal(d.with?.port, String(lab.port));
      assert.equal(d.with?.user, lab.user);
      assert.equal(d.with?.['ssh-key'], lab.sshKey);
      assert.equal(d.with?.['known-hosts'], lab.knownHosts);
      assert.equal(d.with?.env, 'NETWORK_PREFIX=wf');
      assert.equal(d.with?.['remote-dir'], remoteDir);
      assert.equal(d.with?.stability, '2');
      assert.equal(d.with?.timeout, 'auto', "the starter sets no timeout: the reusable workflow's default, auto");
      assert.equal(d.with?.release, '1.0.0');
      assert.equal(d.with?.['dry-run'], 'false');
      assert.equal(d.outputs.result, 'deployed', d.log.slice(-4000));
      assert.equal(run.jobs[job].outputs.release, '1.0.0');
    }
    // Each job deploys its layer only, behind the gate; infra before app.
    const infraLog = step(run, 'infra', 'deploy').log;
    const appLog = step(run, 'app', 'deploy').log;
    assert.match(infraLog, /Layer wf-infra \(deploy 1\.0\.0\)/);
    assert.match(infraLog, /Gate: watching 2 service\(s\) of wf-infra/);
    assert.doesNotMatch(infraLog, /Layer wf-app/);
    assert.match(appLog, /Layer wf-app \(deploy 1\.0\.0\)/);
    assert.match(appLog, /Gate: watching 2 service\(s\) of wf-app/);
    assert.doesNotMatch(appLog, /Layer wf-infra/);

    // The workflow's outputs, as it maps them from the build and summary jobs.
    assert.equal(run.outputs.result, 'deployed');
    assert.equal(run.outputs.release, '1.0.0');
    assert.deepEqual(JSON.parse(run.outputs.versions), { api: '1.0.0', web: '1.0.0' });
    const images = JSON.parse(run.outputs.images) as Record<string, string>;
    assert.match(images.web, new RegExp(`^${esc(lab.registry)}/${prefix}/web:1\\.0\\.0@sha256:[0-9a-f]{64}$`));
    pushed['1.0.0'] = images.web;
    const summary = step(run, 'summary', 'summary');
    assert.match(summary.summary, /^## Deploy to lab: deployed$/m);
    assert.match(summary.summary, /^\| infra \| wf-infra \| deployed \|$/m);
    assert.match(summary.summary, /^\| app \| wf-app \| deployed \|$/m);

    // The swarm: what the build pushed (the local copies were gone), on the wf_* networks.
    const deployed = JSON.parse(step(run, 'app', 'deploy').outputs.images) as Record<string, string>;
    assert.equal(deployed[`${APP}_web`], images.web, 'Swarm runs the digest the build job pushed');
    const web = await serviceState(`${APP}_web`);
    assert.equal(web.running, 2);
    assert.equal(await servedVersion(`${APP}_web`), '1.0.0');
    assert.equal((await serviceState(`${INFRA}_cache`)).running, 1);
    assert.equal((await serviceState(`${INFRA}_proxy`)).running, 1);
    assert.ok(
      (await serviceNetworks(`${APP}_web`)).includes(await networkId('wf_edge')),
      'web is on wf_edge (env: NETWORK_PREFIX=wf reached the stack files)',
    );
    assert.ok((await serviceNetworks(`${APP}_api`)).includes(await networkId('wf_backend')));
  },
);

test('deploy.yml, release 1.1.0: web 1.1.0 rolls out through the same chain', { timeout: 420_000 }, async (t) => {
  const run = await deploy(t, '1.1.0', (dir) => setServiceVersion(dir, 'web', '1.1.0'));
  assert.deepEqual(run.results, { build: 'success', infra: 'success', app: 'success', summary: 'success' }, logs(run));
  assert.equal(run.outputs.result, 'deployed');
  assert.equal(run.outputs.release, '1.1.0');
  assert.deepEqual(JSON.parse(run.outputs.versions), { api: '1.0.0', web: '1.1.0' });
  const images = JSON.parse(run.outputs.images) as Record<string, string>;
  assert.match(images.web, /\/web:1\.1\.0@sha256:/);
  pushed['1.1.0'] = images.web;
  assert.match(
    step(run, 'app', 'deploy').summary,
    /wf-app_web \| `[^|`]+\/web:1\.1\.0@sha256:[0-9a-f]{12}` \| 1\.0\.0 → 1\.1\.0 \| 2\/2 \| healthy/,
  );
  assert.equal((await serviceState(`${APP}_web`)).image, images.web);
  assert.equal(await servedVersion(`${APP}_web`), '1.1.0');
});

test('rollback.yml, version previous: app then infra go back to 1.0.0, gated', { timeout: 420_000 }, async (t) => {
  assert.ok(pushed['1.0.0'] && pushed['1.1.0'], 'the two deploys ran');
  const run = await rollback(t, 'previous');
  assert.deepEqual(run.ran, ['app', 'infra', 'summary'], logs(run));
  assert.deepEqual(run.results, { app: 'success', infra: 'success', summary: 'success' }, logs(run));
  assert.equal(run.concurrency, 'deploy-lab', 'the same group as deploy.yml');

  for (const [job, stack] of [
    ['app', APP],
    ['infra', INFRA],
  ] as const) {
    // The bash step that reverses the layer lines, and what it hands the action.
    const layers = step(run, job, 'layers');
    assert.equal(layers.env?.STACKS, LAYERS[`${job}-stacks`]);
    assert.equal(layers.outputs.stacks, `${stack}=stacks/${job}.yml`);
    const rb = step(run, job, 'rollback');
    assert.equal(rb.with?.command, 'rollback');
    assert.equal(rb.with?.['rollback-to'], 'previous');
    assert.equal(rb.with?.stacks, layers.outputs.stacks);
    assert.equal(rb.with?.['remote-dir'], remoteDir);
    assert.equal(rb.with?.stability, '2');
    assert.equal(rb.with?.host, lab.host);
    // Gated: the layer is deployed again from the host's history and watched.
    assert.match(rb.log, new RegExp(`${stack}: rolling back to release 1\\.0\\.0 `));
    assert.match(rb.log, new RegExp(`Layer ${stack} \\(rollback 1\\.0\\.0\\)`));
    assert.match(rb.log, new RegExp(`Gate: watching 2 service\\(s\\) of ${stack}`));
    assert.equal(rb.outputs.result, 'rolled-back', rb.log.slice(-4000));
    assert.equal(run.jobs[job].outputs.result, 'rolled-back');
    assert.equal(run.jobs[job].outputs.release, '1.0.0');
  }
  assert.ok(run.jobs.app.steps.at(-1)!.action!.durationMs > 0);
  assert.match(step(run, 'app', 'rollback').log, /wf-app_web: /, 'the gate reports on web');

  // The workflow's outputs and summary.
  assert.deepEqual(run.outputs, { result: 'rolled-back', release: '1.0.0' });
  const summary = step(run, 'summary', 'summary').summary;
  assert.match(summary, /^## Rollback to lab: rolled-back$/m);
  assert.match(summary, /^Release: 1\.0\.0$/m);
  assert.doesNotMatch(summary, /\| build \|/);

  // The swarm runs 1.0.0 again, the very image the first build pushed.
  const web = await serviceState(`${APP}_web`);
  assert.equal(web.image, pushed['1.0.0']);
  assert.equal(web.running, 2);
  assert.equal(await servedVersion(`${APP}_web`), '1.0.0');
  assert.deepEqual(await ledgerReleases(APP), [
    'deploy 1.0.0 deployed',
    'deploy 1.1.0 deployed',
    'rollback 1.0.0 deployed',
  ]);
});

test(
  'deploy.yml with a broken infra stack file: infra fails, app never runs, nothing on the swarm changes',
  { timeout: 420_000 },
  async (t) => {
    const before = `${await stackFingerprint(INFRA)}\n${await stackFingerprint(APP)}`;
    const run = await deploy(t, '1.2.0', (dir) => {
      setServiceVersion(dir, 'web', '1.2.0');
      fs.writeFileSync(path.join(dir, 'stacks', 'infra.yml'), 'services:\n  cache: [unclosed\n');
    });
    assert.deepEqual(
      run.results,
      { build: 'success', infra: 'failure', app: 'skipped', summary: 'success' },
      logs(run),
    );
    assert.deepEqual(run.ran, ['build', 'infra', 'summary']);
    assert.equal(run.jobs.app.ran, false, "the app job's if: is false after a failed infra job");
    assert.deepEqual(run.jobs.app.steps, [], 'no step of the app job ran');
    // The build job gets every layer (to build their build: sections); no deploy ever got the app layer.
    assert.ok(
      !run.steps.some((s) => s.kind === 'action' && s.with?.command === 'deploy' && s.with?.stacks?.includes(APP)),
      'the action never deployed the app layer',
    );

    const infra = step(run, 'infra', 'deploy');
    assert.equal(infra.outcome, 'failure');
    assert.equal(infra.outputs.result, 'failed');
    assert.match(infra.action!.errors.join('\n'), /stacks\/infra\.yml/);
    assert.equal(run.jobs.infra.outputs.result, 'failed');
    assert.deepEqual(run.jobs.app.outputs, { result: '', release: '', duration: '' });

    assert.equal(run.outputs.result, 'failed');
    const summary = step(run, 'summary', 'summary').summary;
    assert.match(summary, /^## Deploy to lab: failed$/m);
    assert.match(summary, /^\| infra \| wf-infra \| failed \|$/m);
    assert.match(summary, /^\| app \| wf-app \| skipped \|$/m);

    // The swarm and the host's history are as the rollback left them.
    assert.equal(`${await stackFingerprint(INFRA)}\n${await stackFingerprint(APP)}`, before, 'the swarm changed');
    assert.equal(await servedVersion(`${APP}_web`), '1.0.0');
    assert.ok(!(await ledgerReleases(APP)).some((r) => r.includes('1.2.0')));
    assert.ok(!(await ledgerReleases(INFRA)).some((r) => r.includes('1.2.0')));
    // (1.2.0 was built and pushed: the build leaves a stack file it cannot read to the deploy's checks.)
    assert.equal(
      (await docker(['image', 'inspect', `${lab.registry}/${prefix}/web:1.2.0`])).code,
      1,
      'the local copy was removed after the build',
    );
  },
);
