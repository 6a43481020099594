import * as core from '@actions/core';
import type { Outcome } from './commands';
import type { Shell } from './host/shell';
import type { LayerPlan } from './layer';
import { OVERRIDE_FILE, overrideFile } from './secrets';
import type { PreparedStack } from './stack';

/** The files a dry run of a deploy would upload: the stack files, and the override naming secrets and configs. */
export function printDeployFiles(prepared: PreparedStack[], plans: LayerPlan[]): void {
  // Only the stack files: referenced files (env_file, configs) may hold values that must not be logged.
  for (const p of prepared)
    for (const u of p.uploads) if (p.composePaths.includes(u.rel)) core.info(`--- ${p.name}: ${u.rel}\n${u.content}`);
  // No connection, so no keyed hash: the host's part of each secret name shows as placeholder text.
  prepared.forEach((p, i) => {
    const { secrets = [], configs = [] } = plans[i];
    if (secrets.length || configs.length)
      core.info(`--- ${p.name}: ${OVERRIDE_FILE}\n${overrideFile(p, secrets, configs, { placeholders: true })}`);
  });
}

const shortImage = (image: string) => image.split('@')[0].split('/').pop() ?? image;

/** What a rollback would change, per service (image now → image of the target release); changes nothing. */
export async function dryRunRollback(remote: Shell, plans: LayerPlan[]): Promise<Outcome> {
  await printPlan(remote, plans, 'would roll back to release');
  const note = 'dry-run: nothing was rolled back (no lock, no ledger record, no file on the host).';
  core.info(note);
  const versions = Object.assign({}, ...plans.map((p) => p.versions));
  return {
    result: 'checked',
    release: plans[plans.length - 1]?.release ?? '',
    versions,
    images: {},
    layers: [],
    notes: [note],
  };
}

/** Per layer and service: the image it runs now → the one the plan would give it. Reads only. */
export async function printPlan(remote: Shell, plans: LayerPlan[], verb: string): Promise<void> {
  for (const p of plans) {
    const res = await remote.run(
      [
        'docker',
        'service',
        'ls',
        '--filter',
        `label=com.docker.stack.namespace=${p.stack}`,
        '--format',
        '{{.Name}} {{.Image}}',
      ],
      { retry: true, silent: true },
    );
    if (res.code !== 0)
      throw new Error(`Cannot list the services of ${p.stack} on ${remote.where}: ${res.stderr.trim()}`);
    const now = new Map(
      res.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ') as [string, string]),
    );
    core.info(`${p.stack}: ${verb} ${p.release}:`);
    for (const w of p.watches) {
      const running = now.has(w.name) ? shortImage(now.get(w.name) as string) : '(not running)';
      core.info(`  ${w.name}: ${running} → ${shortImage(w.expectedImage)}`);
    }
  }
}
