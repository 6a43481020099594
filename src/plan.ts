/** What a deploy decides before it connects: versions, checks, each layer's release files and timing. */
import * as core from '@actions/core';
import { stackBuilds } from './build';
import { missingImages, missingImagesOnHost } from './image-lookup';
import type { Engine } from './host/engine-api';
import { ServiceInfo } from './compose';
import { InputError } from './errors';
import { Runner } from './exec';
import { Inputs } from './inputs';
import { StackLoader } from './model';
import { LayerPlan, releaseDirFor, watchesFor } from './layer';
import { runChecks } from './preflight';
import { SecretPlan, checkShared, overrideUpload, planConfigs, planSecrets } from './secrets';
import { PreparedStack, prepareStack } from './stack';
import { describeTiming, layerTiming } from './timing';
import { checksFor } from './verify';
import { FROM_INPUT, Service, readServices, releaseTagMismatches, versionEnv } from './versions';

export function readVersions(inputs: Inputs, notes: string[], loader: StackLoader): Service[] {
  // The stacks' build: sections name their images with ${REGISTRY}, ${IMAGE_PREFIX} or the env input.
  const env = { REGISTRY: inputs.registry, IMAGE_PREFIX: inputs.imagePrefix, ...inputs.env };
  const builds = stackBuilds(inputs.stacks, inputs.workingDirectory, env, inputs.registry, inputs.imagePrefix, {
    sources: inputs.command === 'build',
    loader,
  });
  const services = readServices(inputs.workingDirectory, inputs.services, builds, inputs.versions);
  if (inputs.releaseTagCheck !== 'off') {
    const bad = releaseTagMismatches(services, process.env.GITHUB_REF);
    for (const m of bad) {
      const text = `${m.versionFile} says ${m.version} but the release tag is ${m.tag}.`;
      if (inputs.releaseTagCheck === 'strict') throw new InputError(`${text} (release-tag-check: strict)`);
      core.warning(text, { file: m.versionFile });
      notes.push(text);
    }
  }
  const listed = services.map((s) => `${s.name} ${s.version}${s.versionFile === FROM_INPUT ? ' (input)' : ''}`);
  core.info(
    services.length
      ? `Versions: ${listed.join(', ')}`
      : 'Versions: none (no service folder, no stack service with build:, no input `versions`).',
  );
  return services;
}

export function variables(inputs: Inputs, services: Service[]): Record<string, string> {
  return { ...versionEnv(services, inputs.registry, inputs.imagePrefix), ...inputs.env };
}

export interface DeployPlan {
  notes: string[];
  versions: Record<string, string>;
  markdown: string;
  prepared: PreparedStack[];
  plans: LayerPlan[];
}

/**
 * Everything a deploy decides before it connects: versions, the checks, each layer's model rendered
 * into its release files, its secrets and configs and its gate's timing. Each stack file is read and
 * parsed once (`loader`), each layer's model built once and read by every step.
 */
export async function planDeploy(
  inputs: Inputs,
  loader = new StackLoader(inputs.workingDirectory),
): Promise<DeployPlan> {
  const notes: string[] = [];
  const services = readVersions(inputs, notes, loader);
  const env = variables(inputs, services);
  const versions = Object.fromEntries(services.map((s) => [s.name, s.version]));
  const { models, markdown } = await core.group('Pre-flight checks', async () => runChecks(inputs, env, loader));
  const prepared = models.map((m) => prepareStack(m, inputs.workingDirectory));
  // The input secrets of every layer: the first layer has the host name them all in one command.
  const run: SecretPlan[] = [];
  checkShared(prepared, inputs.sharedSecrets);
  const plans: LayerPlan[] = prepared.map((p) => {
    const secrets = planSecrets(p, inputs.secrets, inputs.generateSecrets, run, inputs.sharedSecrets);
    const configs = planConfigs(p);
    // Written at upload time: the secret names come from the host once connected (runLayer).
    const extra = secrets.length || configs.length ? [overrideUpload(p, secrets, configs)] : [];
    return {
      stack: p.name,
      release: inputs.release,
      kind: 'deploy',
      dir: releaseDirFor(inputs.remoteDir, p.name, inputs.release),
      composePaths: [...p.composePaths, ...extra.map((e) => e.rel)],
      uploads: [...p.uploads, ...extra],
      versions,
      watches: watchesFor(p, inputs.stability),
      ...layerTimeout(p.name, Object.values(p.services), inputs),
      secrets,
      configs,
      shipped: p.shipped,
      verify: checksFor(inputs.verify, p.name, p === prepared[prepared.length - 1]),
    };
  });
  return { notes, versions, markdown, prepared, plans };
}

/**
 * Every image the stacks name in our registry (or under image-prefix, without one) must be there
 * before anything is deployed; asked where the pulls happen, with the host's login. A dry run warns.
 */
export async function checkImages(
  runner: Runner,
  prepared: PreparedStack[],
  inputs: Inputs,
  /** The host's engine, asked first (src/build.ts). */
  engine?: Engine,
): Promise<void> {
  const ours = (image: string) =>
    inputs.registry
      ? image.startsWith(`${inputs.registry}/`)
      : !!inputs.imagePrefix && image.startsWith(`${inputs.imagePrefix}/`);
  const users = new Map<string, string[]>();
  for (const p of prepared) {
    for (const s of Object.values(p.services)) {
      if (!s.image || !ours(s.image)) continue;
      users.set(s.image, [...(users.get(s.image) ?? []), `${p.name}/${s.name}`]);
    }
  }
  if (!users.size) return;
  const t0 = Date.now();
  const { missing, unreadable } = engine
    ? await missingImagesOnHost(engine, runner, [...users.keys()])
    : await missingImages(runner, [...users.keys()]);
  for (const u of unreadable)
    core.warning(`Could not check that ${u.image} is in the registry (${u.why}); the deploy will tell.`);
  const list = missing.map((m) => `  ${m} (${(users.get(m) ?? []).join(', ')})`).join('\n');
  if (missing.length && inputs.dryRun) {
    core.warning(`Not in the registry (a deploy would fail before changing anything):\n${list}`);
    return;
  }
  if (missing.length)
    throw new InputError(
      `${missing.length} image(s) the stacks name are not in the registry; nothing was ` +
        `deployed:\n${list}\nPush them (command: build), or fix the version (input \`versions\`, VERSION files).`,
    );
  core.info(
    `Registry: the ${users.size} image(s) of the stacks in ${inputs.registry || inputs.imagePrefix} ` +
      `are there (checked on ${runner.where} in ${((Date.now() - t0) / 1000).toFixed(1)} s).`,
  );
}

/** The layer's gate timeout: the input, or `auto` from its services' update_config and healthchecks. */
export function layerTimeout(
  stack: string,
  services: ServiceInfo[],
  inputs: Inputs,
  nodes = 1,
): { timeoutS: number; timing: string } {
  const t = layerTiming(services, { timeout: inputs.timeout, stability: inputs.stability, nodes });
  return { timeoutS: t.seconds, timing: describeTiming(stack, t) };
}
