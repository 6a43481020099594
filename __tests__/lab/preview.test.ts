// Pull request previews, run for real against the lab: a caller of the starter
// workflows-templates/preview.yml runs .github/workflows/preview.yml (stacks →
// build → deploy → comment, or stacks → remove) through the workflow harness
// (helpers/workflow.ts: the action's steps through dist/index.js), with a
// local fake GitHub API (GITHUB_API_URL) taking the comments.
//
// Opened → the preview stack `<app>-pr-<N>` deployed and gated, with its own
// host rule, network, config and secrets, and one comment with the URL; a
// second push → the same comment updated; the cap → a clear failure, nothing
// deployed; closed → the preview's stacks, secrets, configs, networks and host
// folder gone, while the non-preview stack `<app>` on the same host is untouched.
//
// The lab is shared: everything here is named preview-<8 hex>[...], under its
// own image prefix and remote-dir, and removed at the end.
import { after, before, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { runAction } from '../helpers/action';
import {
  LabEnv,
  copyExample,
  docker,
  dockerOk,
  labInputs,
  removeStack,
  requireLab,
  uniqueName,
  waitFor,
  WEB_HEALTHCHECK,
} from '../helpers/lab';
import { Value, WorkflowRun, evaluateCaller, evaluateIf, runWorkflow } from '../helpers/workflow';
import { onHost, removeLocalImages, stackFingerprint } from './common';

const APP = uniqueName('preview');
const prefix = APP;
const remoteDir = `.deploy-action-${APP}`;
const DOMAIN = 'preview.example';
const SERVICES = ['web', 'api'];
// Pull request numbers of this run (random, so that a leftover of another run is not counted as ours).
const base = 1000 + Math.floor(Math.random() * 8000);
const PR = { a: base, b: base + 1, c: base + 2 };
const previewStack = (n: number) => `${APP}-pr-${n}`;

// One web replica on a network of its own, a config from a file, an input secret and a generated
// one: what `remove` must take away. The host rule comes from PREVIEW_HOST.
const STACK = `version: "3.8"
services:
  web:
    image: \${REGISTRY}/\${IMAGE_PREFIX}/web:\${WEB_VERSION}
${WEB_HEALTHCHECK}    stop_grace_period: 2s
    networks: [default]
    configs: [{ source: site, target: /etc/site.conf }]
    secrets: [token, salt]
    deploy:
      replicas: 1
      endpoint_mode: dnsrr
      labels:
        # the host rule: a Traefik defaultRule can read it (index .Labels "app.host")
        app.host: \${PREVIEW_HOST:-www.example}
      update_config:
        parallelism: 1
        order: start-first
        failure_action: rollback
        monitor: 2s
      restart_policy:
        condition: any
        delay: 1s
networks:
  default:
    driver: overlay
configs:
  site:
    file: ./site.conf
secrets:
  token:
    external: true
  salt:
    external: true
`;

let lab: LabEnv;
let api: FakeGitHub;
let mainFingerprint = '';

// ------------------------------------------------------------ fake GitHub

interface Comment {
  id: number;
  body: string;
  issue: number;
}

/** Enough of the REST API for the comment step: list, create and update issue comments. */
class FakeGitHub {
  comments: Comment[] = [];
  requests: string[] = [];
  auth = new Set<string>();
  private server = http.createServer((req, res) => this.handle(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
  on(issue: number): Comment[] {
    return this.comments.filter((c) => c.issue === issue);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      this.requests.push(`${req.method} ${req.url}`);
      this.auth.add(String(req.headers.authorization ?? ''));
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const view = (c: Comment) => ({
        id: c.id,
        body: c.body,
        html_url: `https://github.com/glasck/example/pull/${c.issue}#issuecomment-${c.id}`,
      });
      const list = /^\/repos\/glasck\/example\/issues\/(\d+)\/comments(\?.*)?$/.exec(req.url ?? '');
      const one = /^\/repos\/glasck\/example\/issues\/comments\/(\d+)$/.exec(req.url ?? '');
      if (list && req.method === 'GET') return send(200, this.on(Number(list[1])).map(view));
      if (list && req.method === 'POST') {
        const c = {
          id: 500 + this.comments.length,
          issue: Number(list[1]),
          body: (JSON.parse(data) as { body: string }).body,
        };
        this.comments.push(c);
        return send(201, view(c));
      }
      if (one && req.method === 'PATCH') {
        const c = this.comments.find((x) => x.id === Number(one[1]));
        if (!c) return send(404, { message: 'Not Found' });
        c.body = (JSON.parse(data) as { body: string }).body;
        return send(200, view(c));
      }
      send(404, { message: `not modelled: ${req.method} ${req.url}` });
    });
  }
}

// ------------------------------------------------------------ set-up

/** A copy of example/ with the preview stack file and its config file. */
function workspace(): string {
  const dir = copyExample();
  fs.writeFileSync(path.join(dir, 'stacks', 'preview.yml'), STACK);
  fs.writeFileSync(path.join(dir, 'stacks', 'site.conf'), 'greeting = hello\n');
  return dir;
}

const SECRETS = 'TOKEN=preview-token-value-0123456789';

async function cleanUp(): Promise<void> {
  for (const n of Object.values(PR)) await removeStack(previewStack(n));
  await removeStack(APP);
  // Only what this run created: names under its own unique prefix.
  for (const kind of ['secret', 'config']) {
    const names = (await dockerOk([kind, 'ls', '--format', '{{.Name}}']))
      .split('\n')
      .filter((n) => n.startsWith(`${APP}_`) || n.startsWith(`${APP}-pr-`));
    if (names.length) await docker([kind, 'rm', ...names]);
  }
  await onHost(lab, `rm -rf ${remoteDir}`);
}

before(async () => {
  lab = await requireLab();
  api = new FakeGitHub();
  await api.start();
  // The non-preview stack on the same host, deployed as any release would be.
  const dir = workspace();
  try {
    const inputs = {
      ...labInputs(lab, prefix, remoteDir),
      stacks: `${APP}=stacks/preview.yml`,
      secrets: SECRETS,
      'generate-secrets': 'salt',
      stability: '2',
      timeout: '240',
      'lock-timeout': '120',
    };
    const build = await runAction({ inputs: { ...inputs, command: 'build' }, cwd: dir });
    assert.equal(build.code, 0, build.log.slice(-3000));
    const deploy = await runAction({ inputs: { ...inputs, command: 'deploy', release: 'main-1' }, cwd: dir });
    assert.equal(deploy.code, 0, deploy.log.slice(-3000));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  mainFingerprint = await stackFingerprint(APP);
});

after(async () => {
  if (!lab) return;
  await api?.stop();
  await cleanUp();
  await removeLocalImages(prefix, SERVICES, lab);
});

// ------------------------------------------------------------ the caller

function vars(): Record<string, Value> {
  return {
    REGISTRY: lab.registry,
    REGISTRY_USERNAME: '',
    IMAGE_PREFIX: prefix,
    DEPLOY_HOST: lab.host,
    DEPLOY_USER: lab.user,
    DEPLOY_PORT: String(lab.port),
    PREVIEW_DOMAIN: DOMAIN,
  };
}

function repoSecrets(): Record<string, Value> {
  return { SSH_KEY: lab.sshKey, KNOWN_HOSTS: lab.knownHosts, REGISTRY_PASSWORD: '', DEPLOY_HOST: '' };
}

/** A `pull_request` event of pull request `n` (labelled `preview`), through the starter into preview.yml. */
async function pullRequest(
  t: TestContext,
  n: number,
  action: 'opened' | 'synchronize' | 'closed',
  maxPreviews = 3,
): Promise<WorkflowRun> {
  const sha = randomBytes(20).toString('hex');
  const event = {
    action,
    number: n,
    pull_request: { number: n, labels: [{ name: 'preview' }], head: { repo: { fork: false } } },
  };
  const github = {
    actor: 'glasck',
    token: 'ghs_preview_job_token',
    sha,
    ref: `refs/pull/${n}/merge`,
    event_name: 'pull_request',
    repository: 'glasck/example',
    event,
  };
  const file = 'workflows-templates/preview.yml';
  const job = parse(fs.readFileSync(path.join(__dirname, '..', '..', file), 'utf8')).jobs.preview;
  assert.equal(
    evaluateIf(job.if, { github }, { success: true, failure: false, cancelled: false }),
    true,
    'the starter runs for this event',
  );
  const caller = evaluateCaller(file, 'preview', { vars: vars(), secrets: repoSecrets(), github });
  assert.equal(caller.workflow, '.github/workflows/preview.yml');
  const dir = workspace();
  try {
    return await runWorkflow({
      workflow: caller.workflow,
      // What a caller edits in the starter: the layers, the cap; and what keeps it apart on the lab.
      inputs: {
        ...caller.with,
        'app-stacks': `${APP}=stacks/preview.yml\n`,
        'max-previews': maxPreviews,
        'remote-dir': remoteDir,
        'generate-secrets': 'salt',
        stability: '2',
        timeout: '240',
        environment: 'lab',
        'job-timeout-minutes': 10,
      },
      secrets: { ...caller.secrets, STACK_SECRETS: SECRETS },
      github,
      workspace: dir,
      runnerEnv: {
        GITHUB_SHA: sha,
        GITHUB_REF: github.ref,
        GITHUB_EVENT_NAME: 'pull_request',
        GITHUB_RUN_ID: String(3_000_000_000 + Math.floor(Math.random() * 1_000_000_000)),
        GITHUB_API_URL: api.url,
        GITHUB_REPOSITORY: 'glasck/example',
      },
      afterJob: async (j) => {
        if (j.id === 'build' && j.ran) await removeLocalImages(prefix, SERVICES, lab);
      },
      log: (line) => t.diagnostic(line),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function logs(run: WorkflowRun): string {
  return run.steps
    .map((s) => `===== ${s.job} / ${s.name}: ${s.outcome}\n${s.log.split('\n').slice(-50).join('\n')}`)
    .join('\n')
    .slice(-12000);
}

const lines = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

/** What the host has of a stack: services with running tasks, networks, configs, secrets, folder. */
async function onSwarm(stack: string): Promise<{
  services: string[];
  running: number;
  networks: string[];
  configs: string[];
  secrets: string[];
  folder: boolean;
}> {
  const ns = `label=com.docker.stack.namespace=${stack}`;
  const services = lines(await dockerOk(['service', 'ls', '--filter', ns, '--format', '{{.Name}}']));
  let running = 0;
  for (const s of services)
    running += lines(
      await dockerOk(['service', 'ps', s, '--filter', 'desired-state=running', '--format', '{{.CurrentState}}']),
    ).filter((l) => l.startsWith('Running')).length;
  const networks = lines(await dockerOk(['network', 'ls', '--filter', ns, '--format', '{{.Name}}']));
  const configs = lines(await dockerOk(['config', 'ls', '--format', '{{.Name}}'])).filter((n) =>
    n.startsWith(`${stack}_`),
  );
  const secrets = lines(await dockerOk(['secret', 'ls', '--format', '{{.Name}}'])).filter((n) =>
    n.startsWith(`${stack}_`),
  );
  const folder = (await onHost(lab, `test -e ${remoteDir}/stacks/${stack}`)).code === 0;
  return { services, running, networks, configs, secrets, folder };
}

// ------------------------------------------------------------ tests

test(
  'pull request opened: the preview stack <app>-pr-<N> deployed and gated with its own host rule; one comment with the URL',
  { timeout: 420_000 },
  async (t) => {
    const t0 = Date.now();
    const run = await pullRequest(t, PR.a, 'opened');
    t.diagnostic(`opened: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(run.ran, ['stacks', 'build', 'deploy', 'comment'], logs(run));
    assert.deepEqual(
      run.results,
      { stacks: 'success', build: 'success', deploy: 'success', comment: 'success', remove: 'skipped' },
      logs(run),
    );
    assert.equal(run.concurrency, `preview-${PR.a}`);
    const deploy = run.jobs.deploy.steps.find((s) => s.id === 'deploy')!;
    assert.equal(deploy.with?.stacks, `${previewStack(PR.a)}=stacks/preview.yml`);
    assert.match(deploy.log, new RegExp(`Gate: watching 1 service\\(s\\) of ${previewStack(PR.a)}`));
    assert.equal(deploy.outputs.result, 'deployed');
    assert.deepEqual(run.outputs, { url: `https://pr-${PR.a}.${DOMAIN}`, result: 'deployed' });

    const s = await onSwarm(previewStack(PR.a));
    assert.deepEqual(s.services, [`${previewStack(PR.a)}_web`]);
    // Gated healthy; a loaded lab may be replacing the task after a slow healthcheck: wait, bounded.
    await waitFor(async () => (await onSwarm(previewStack(PR.a))).running === 1, {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'the preview task running',
    });
    assert.deepEqual(s.networks, [`${previewStack(PR.a)}_default`]);
    assert.equal(s.configs.length, 1, `its config: ${s.configs}`);
    assert.deepEqual(s.secrets.map((n) => n.replace(/_[0-9a-f]{10}$/, '_<hash>')).sort(), [
      `${previewStack(PR.a)}_salt`,
      `${previewStack(PR.a)}_token_<hash>`,
    ]);
    assert.equal(s.folder, true);
    const hostLabel = (stack: string) =>
      dockerOk(['service', 'inspect', `${stack}_web`, '--format', '{{index .Spec.Labels "app.host"}}']).then((x) =>
        x.trim(),
      );
    assert.equal(await hostLabel(previewStack(PR.a)), `pr-${PR.a}.${DOMAIN}`, 'its own host rule');
    assert.equal(await hostLabel(APP), 'www.example', 'the non-preview stack keeps its own');

    const comments = api.on(PR.a);
    assert.equal(comments.length, 1);
    assert.match(comments[0].body, new RegExp(`https://pr-${PR.a}\\.preview\\.example`));
    assert.ok(api.auth.has('token ghs_preview_job_token'), `the job token: ${[...api.auth]}`);
    assert.equal(await stackFingerprint(APP), mainFingerprint, 'the non-preview stack is untouched');
  },
);

test(
  'a second push: the preview is deployed again and its comment updated, not duplicated',
  { timeout: 420_000 },
  async (t) => {
    const before = api.requests.length;
    const t0 = Date.now();
    const run = await pullRequest(t, PR.a, 'synchronize');
    t.diagnostic(`synchronize: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      run.results,
      { stacks: 'success', build: 'success', deploy: 'success', comment: 'success', remove: 'skipped' },
      logs(run),
    );
    const comments = api.on(PR.a);
    assert.equal(comments.length, 1, 'one comment');
    const release = run.jobs.deploy.outputs.release;
    assert.ok(comments[0].body.includes(release), `updated with release ${release}`);
    assert.ok(api.requests.slice(before).some((r) => r.startsWith('PATCH /repos/glasck/example/issues/comments/')));
    assert.ok(!api.requests.slice(before).some((r) => r.startsWith('POST')), 'no new comment');
  },
);

test(
  'the cap: with max-previews 2 and 2 previews live, a third pull request fails with the live ones listed; nothing deployed',
  { timeout: 420_000 },
  async (t) => {
    const b = await pullRequest(t, PR.b, 'opened', 2);
    assert.equal(b.results.deploy, 'success', logs(b));
    const t0 = Date.now();
    const c = await pullRequest(t, PR.c, 'opened', 2);
    t.diagnostic(`capped: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      c.results,
      { stacks: 'success', build: 'success', deploy: 'failure', comment: 'skipped', remove: 'skipped' },
      logs(c),
    );
    const deploy = c.jobs.deploy.steps.find((s) => s.id === 'deploy')!;
    const error = deploy.action!.errors.join('\n');
    assert.match(error, /Input `max-previews` is 2 and 2 pull request preview\(s\) are live/);
    assert.match(error, new RegExp(`#${PR.a}: ${previewStack(PR.a)}`));
    assert.match(error, new RegExp(`#${PR.b}: ${previewStack(PR.b)}`));
    assert.match(error, /Nothing was deployed/);
    assert.equal(c.outputs.result, 'failed');
    const s = await onSwarm(previewStack(PR.c));
    assert.deepEqual(
      [s.services, s.networks, s.configs, s.secrets, s.folder],
      [[], [], [], [], false],
      'nothing of the third preview on the host',
    );
    assert.equal(api.on(PR.c).length, 0, 'no comment');
  },
);

test(
  'pull requests closed: their stacks, secrets, configs, networks and host folders are gone; the non-preview stack is untouched',
  { timeout: 420_000 },
  async (t) => {
    const mainBefore = await onSwarm(APP);
    for (const n of [PR.a, PR.b]) {
      const t0 = Date.now();
      const run = await pullRequest(t, n, 'closed');
      t.diagnostic(`closed #${n}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      assert.deepEqual(run.ran, ['stacks', 'remove'], logs(run));
      assert.equal(run.results.remove, 'success', logs(run));
      assert.equal(run.outputs.result, 'removed');
      const s = await onSwarm(previewStack(n));
      assert.deepEqual(
        [s.services, s.networks, s.configs, s.secrets, s.folder],
        [[], [], [], [], false],
        `everything of ${previewStack(n)} is gone`,
      );
    }
    assert.equal(
      (await docker(['ps', '-aq', '--filter', `label=com.docker.stack.namespace=${previewStack(PR.a)}`])).stdout.trim(),
      '',
      'no container left',
    );
    // The non-preview stack: same spec, same objects, its folder and ledger.
    assert.equal(await stackFingerprint(APP), mainFingerprint);
    const { running: _before, ...objectsBefore } = mainBefore;
    const { running: _now, ...objectsNow } = await onSwarm(APP);
    assert.deepEqual(objectsNow, objectsBefore);
    // Its task runs (a loaded lab may be replacing it after a slow healthcheck: wait, bounded).
    await waitFor(async () => (await onSwarm(APP)).running === 1, {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: `${APP}_web running`,
    });
    assert.equal((await onHost(lab, `test -s ${remoteDir}/stacks/${APP}/ledger.json`)).code, 0);
    // A second close: nothing there, nothing to do.
    const again = await pullRequest(t, PR.a, 'closed');
    assert.equal(again.results.remove, 'success', logs(again));
    assert.match(again.jobs.remove.steps[0].log, /nothing on the host/);
  },
);
