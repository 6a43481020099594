// Shared set-up of the end-to-end tests: the example app, built and deployed through dist/index.js
// against the lab (real dockerd in Swarm mode, registry, sshd).
import * as fs from 'node:fs';
import { ActionRun, runAction } from '../helpers/action';
import { LabEnv, copyExample, labInputs, docker, dockerOk, removeStack, run, ServiceChange } from '../helpers/lab';

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

/** Builds (or awaits the build ahead of) the example with `changes`, then deploys it. */
export async function release(
  lab: LabEnv,
  inputs: Record<string, string>,
  version: string,
  changes: Record<string, ServiceChange>,
  extra: Record<string, string> = {},
  builds?: Map<string, Promise<ActionRun>>,
): Promise<Release> {
  const built = await (builds?.get(version) ?? build(lab, inputs, version, changes));
  const dir = copyExample(changes);
  try {
    const deploy = await runAction({ inputs: { ...inputs, command: 'deploy', release: version, ...extra }, cwd: dir });
    return { dir, build: built, deploy };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The image (with digest) a service's spec runs, and how many of its tasks run. */
export async function serviceState(name: string): Promise<{ image: string; running: number; update: string }> {
  const image = (
    await dockerOk(['service', 'inspect', name, '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}'])
  ).trim();
  const update = (
    await dockerOk(['service', 'inspect', name, '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}'])
  ).trim();
  const ps = await dockerOk([
    'service',
    'ps',
    name,
    '--filter',
    'desired-state=running',
    '--format',
    '{{.CurrentState}}',
  ]);
  return { image, update, running: ps.split('\n').filter((l) => l.startsWith('Running')).length };
}

/** What a running task of the service answers on /version, asked inside its container. */
export async function servedVersion(service: string): Promise<string> {
  const ids = (await dockerOk(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]))
    .trim()
    .split('\n')
    .filter(Boolean);
  const versions = new Set<string>();
  for (const id of ids) {
    const r = await docker(['exec', id, 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/version']);
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
