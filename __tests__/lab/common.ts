// Shared set-up of the end-to-end tests: the example app, built and deployed through dist/index.js
// against the lab (real dockerd in Swarm mode, registry, sshd).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { ActionProcess, ActionRun, runAction, startAction } from '../helpers/action';
import {
  LabEnv,
  RunResult,
  copyExample,
  labInputs,
  docker,
  dockerOk,
  removeStack,
  run,
  ServiceChange,
} from '../helpers/lab';

export const INFRA = 'example-infra';
export const APP = 'example-app';
export const STACKS = `${INFRA}=stacks/infra.yml\n${APP}=stacks/app.yml`;

/** The stack names of one copy of the example; `NETWORK_PREFIX` keeps copies' networks apart. */
export function exampleStacks(name: string): { infra: string; app: string; stacks: string; env: string } {
  return {
    infra: `${name}-infra`,
    app: `${name}-app`,
    stacks: `${name}-infra=stacks/infra.yml\n${name}-app=stacks/app.yml`,
    env: name === 'example' ? '' : `NETWORK_PREFIX=${name}`,
  };
}

export function baseInputs(
  lab: LabEnv,
  remoteDir: string,
  prefix = 'example',
  copy = 'example',
): Record<string, string> {
  const ex = exampleStacks(copy);
  return {
    ...labInputs(lab, prefix, remoteDir),
    stacks: ex.stacks,
    env: ex.env,
    stability: '2',
    timeout: '120',
    'lock-timeout': '120',
  };
}

/** Removes the example stacks so a test file starts from an empty swarm. */
export async function resetExample(): Promise<void> {
  await removeStack(APP);
  await removeStack(INFRA);
}

/** The local copies are removed after the push: a deploy must pull from the registry. */
export async function removeLocalImages(prefix: string, services: string[], lab: LabEnv): Promise<void> {
  const refs = (await dockerOk(['images', '--format', '{{.Repository}}:{{.Tag}}']))
    .split('\n')
    .filter((r) => !r.endsWith(':<none>') && services.some((s) => r.startsWith(`${lab.registry}/${prefix}/${s}:`)));
  if (refs.length) await dockerOk(['rmi', '--no-prune', '--force', ...refs]);
}

export interface Release {
  dir: string;
  build: ActionRun;
  deploy: ActionRun;
}

/** Copies the example with `changes`, builds and pushes it, and drops the local images. */
async function build(
  lab: LabEnv,
  inputs: Record<string, string>,
  version: string,
  changes: Record<string, ServiceChange>,
): Promise<ActionRun> {
  const dir = copyExample(changes);
  try {
    const r = await runAction({ inputs: { ...inputs, command: 'build' }, cwd: dir });
    if (r.code !== 0) throw new Error(`build ${version} failed:\n${r.maskedLog.slice(-3000)}`);
    await removeLocalImages(inputs['image-prefix'], Object.keys(changes).concat(['web', 'api']), lab);
    return r;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Builds releases one after another in the background, while the file deploys: `release` given the
 * returned builds awaits its own instead of building.
 */
export function buildAhead(
  lab: LabEnv,
  inputs: Record<string, string>,
  releases: [string, Record<string, ServiceChange>][],
): Map<string, Promise<ActionRun>> {
  const builds = new Map<string, Promise<ActionRun>>();
  let chain: Promise<unknown> = Promise.resolve();
  for (const [version, changes] of releases) {
    const b = chain.then(() => build(lab, inputs, version, changes));
    b.catch(() => {}); // awaited by the release that deploys it
    builds.set(version, b);
    chain = b.catch(() => {});
  }
  return builds;
}

export interface ReleaseOptions {
  /** More inputs of the deploy. */
  extra?: Record<string, string>;
  /** The builds started by `buildAhead`. */
  builds?: Map<string, Promise<ActionRun>>;
  /** Runs beside the deploy, given its live process; its error fails the release after the deploy ends. */
  during?: (run: ActionProcess) => Promise<void>;
}

/** Builds (or awaits the build ahead of) the example with `changes`, then deploys it. */
export async function release(
  lab: LabEnv,
  inputs: Record<string, string>,
  version: string,
  changes: Record<string, ServiceChange>,
  { extra = {}, builds, during }: ReleaseOptions = {},
): Promise<Release> {
  const built = await (builds?.get(version) ?? build(lab, inputs, version, changes));
  const dir = copyExample(changes);
  try {
    const run = startAction({ inputs: { ...inputs, command: 'deploy', release: version, ...extra }, cwd: dir });
    // Caught now, thrown once the deploy (and its post step) ended: no rejection left unhandled meanwhile.
    const beside = during?.(run).then(
      () => undefined,
      (e: unknown) => e,
    );
    const deploy = await run.finish();
    const err = await beside;
    if (err) throw err;
    return { dir, build: built, deploy };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Once the deploy logs that `service` converged, crashes one of its tasks running `version`: the
 * example's entry exits 4 on SIGUSR1. So the crash comes after Swarm called the update completed,
 * however long the update took. `dockerCli` runs the docker CLI against the engine that runs it.
 */
export function crashOnceConverged(
  service: string,
  version: string,
  dockerCli: (args: string[]) => Promise<string> = dockerOk,
): (run: ActionProcess) => Promise<void> {
  return async (run) => {
    await run.waitLine(new RegExp(`${service}: converged: `), 180_000);
    const ours = (
      await dockerCli([
        'ps',
        '--filter',
        `label=com.docker.swarm.service.name=${service}`,
        '--format',
        '{{.ID}} {{.Image}}',
      ])
    )
      .trim()
      .split('\n')
      .filter((l) => l.split(' ')[1]?.includes(`:${version}`));
    if (!ours.length) throw new Error(`no container of ${service} runs ${version} once it converged`);
    await dockerCli(['kill', '--signal', 'USR1', ours[0].split(' ')[0]]);
  };
}

/** The image (with digest) a service's spec runs, and how many of its tasks run. */
export async function serviceState(
  name: string,
  cli: (args: string[]) => Promise<string> = dockerOk,
): Promise<{ image: string; running: number; runningImages: string[]; update: string }> {
  const [image, update] = (
    await cli([
      'service',
      'inspect',
      name,
      '--format',
      '{{.Spec.TaskTemplate.ContainerSpec.Image}}|{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}',
    ])
  )
    .trim()
    .split('|');
  const ps = await cli([
    'service',
    'ps',
    name,
    '--filter',
    'desired-state=running',
    '--format',
    '{{.CurrentState}}|{{.Image}}',
  ]);
  const running = ps.split('\n').filter((l) => l.startsWith('Running'));
  return { image, update, running: running.length, runningImages: running.map((l) => l.split('|')[1]) };
}

/**
 * Back on `version` by the gate's rule: at least `replicas` tasks running, all of them on it. (Swarm
 * may show one more for a while: a crashed task's restart can race the rollback.)
 */
export function assertBackOn(
  state: { image: string; running: number; runningImages: string[] },
  version: string,
  replicas: number,
): void {
  const v = version.replace(/\./g, '\\.');
  // The spec pins the digest the action deployed; `service ps` shows tasks' images without it.
  assert.match(state.image, new RegExp(`:${v}@sha256:`));
  const tag = new RegExp(`:${v}(@|$)`);
  assert.ok(state.running >= replicas, `${state.running} running, want ${replicas} or more`);
  assert.ok(
    state.runningImages.every((i) => tag.test(i)),
    `running images: ${state.runningImages.join(', ')}`,
  );
}

/** What a running task of the service answers on /version, asked inside its container. */
export async function servedVersion(
  service: string,
  cli: (args: string[]) => Promise<RunResult> = docker,
): Promise<string> {
  const ids = (await cli(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).stdout
    .trim()
    .split('\n')
    .filter(Boolean);
  const versions = new Set<string>();
  for (const id of ids) {
    const r = await cli(['exec', id, 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/version']);
    if (r.code === 0) versions.add(r.stdout.trim());
  }
  return [...versions].sort().join(',');
}

/**
 * The spec of every service of a stack: a deploy that changes anything changes it. (Not Version.Index
 * nor UpdatedAt: Swarm bumps them on its own, e.g. "update completed" after a rollback's monitor;
 * nor task ids: under load Swarm replaces a task whose healthcheck timed out.)
 */
export async function stackFingerprint(stack: string): Promise<string> {
  const ids = (await dockerOk(['service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${stack}`]))
    .trim()
    .split('\n')
    .filter(Boolean);
  const lines: string[] = [];
  for (const id of ids)
    lines.push((await dockerOk(['service', 'inspect', '--format', '{{.Spec.Name}} {{json .Spec}}', id])).trim());
  return lines.sort().join('\n');
}

/** Runs a command on the "VPS" over the lab's sshd, as the action's user. */
export async function onHost(lab: LabEnv, script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await run('ssh', [
    '-i',
    lab.sshKeyFile,
    '-o',
    `UserKnownHostsFile=${lab.knownHostsFile}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-p',
    String(lab.port),
    `${lab.user}@${lab.host}`,
    script,
  ]);
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}
