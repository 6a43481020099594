import * as core from '@actions/core';
import { Outcome, commandBuild, commandCheck, commandDeploy, commandRollback } from './commands';
import { commandComment } from './comment';
import { InputError } from './errors';
import { Inputs, readInputs } from './inputs';
import { commandRemove } from './remove';
import { writeSummary } from './summary';

const TITLES: Record<Inputs['command'], string> = {
  deploy: 'Deploy',
  build: 'Build',
  check: 'Pre-flight checks',
  rollback: 'Rollback',
  remove: 'Remove',
  comment: 'Comment',
};

/** Reads the inputs once, runs the command, and reports: outputs, job summary, and the job's status. */
export async function run(): Promise<void> {
  const started = Date.now();
  let inputs: Inputs | undefined;
  let outcome: Outcome | undefined;
  let error: string | undefined;
  try {
    inputs = readInputs();
    const commands = {
      deploy: commandDeploy,
      build: commandBuild,
      check: commandCheck,
      rollback: commandRollback,
      remove: commandRemove,
      comment: commandComment,
    };
    outcome = await commands[inputs.command](inputs);
    error = outcome.error;
  } catch (e) {
    const err = e as Error & { markdown?: string };
    error = err.message;
    if (!(err instanceof InputError) && core.isDebug() && err.stack) core.debug(err.stack);
    outcome = {
      result: 'failed',
      release: inputs?.release ?? '',
      versions: {},
      images: {},
      layers: [],
      checks: err.markdown,
      error,
      notes: [],
    };
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  core.setOutput('versions', JSON.stringify(outcome.versions));
  core.setOutput('images', JSON.stringify(outcome.images));
  core.setOutput('result', outcome.result);
  core.setOutput('duration', String(seconds));
  core.setOutput('release', outcome.release);
  core.setOutput(
    'versions-before',
    JSON.stringify(Object.fromEntries(outcome.layers.flatMap((l) => l.rows.map((r) => [r.service, r.before])))),
  );
  await writeSummary({
    title: TITLES[inputs?.command ?? 'deploy'],
    result: outcome.result,
    release: outcome.release,
    host:
      inputs && ['deploy', 'rollback', 'remove'].includes(inputs.command)
        ? `${inputs.user}@${inputs.host}:${inputs.port}`
        : '',
    seconds,
    versions: outcome.versions,
    layers: outcome.layers,
    checks: outcome.checks,
    error,
    notes: outcome.notes,
  }).catch((e) => core.warning(`Could not write the job summary: ${(e as Error).message}`));
  if (error) core.setFailed(error);
  else core.info(`Result: ${outcome.result} in ${seconds} s.`);
}
