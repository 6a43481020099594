import * as core from '@actions/core';
import { redact } from './mask';
import type { LayerOutcome, LayerPlan, RunContext } from './layer';
import { Shell, shellJoin } from './host/shell';

export type HookName = 'pre-deploy' | 'post-deploy' | 'on-failure';

export interface Hooks {
  'pre-deploy': string;
  'post-deploy': string;
  'on-failure': string;
  /** Seconds each hook may run. */
  timeoutS: number;
}

/** Bytes of a hook's output kept for the log (the end of it). */
const OUTPUT_BYTES = 65536;

/** What a hook is told, as `DEPLOY_*` variables. */
export interface HookEnv {
  hook: HookName;
  stack: string;
  layer: number;
  layers: number;
  release: string;
  /** Full service name → version it ran before the layer's deploy (`—`: none). */
  before: Record<string, string>;
  /** Full service name → version: planned (pre-deploy), running (post-deploy, on-failure). */
  after: Record<string, string>;
  /** Service → version of the release (VERSION files). */
  versions: Record<string, string>;
  result: 'pending' | LayerOutcome['result'];
  error?: string;
}

export function hookVariables(e: HookEnv): Record<string, string> {
  return {
    DEPLOY_HOOK: e.hook,
    DEPLOY_STACK: e.stack,
    DEPLOY_LAYER: String(e.layer),
    DEPLOY_LAYERS: String(e.layers),
    DEPLOY_RELEASE: e.release,
    DEPLOY_VERSIONS_BEFORE: JSON.stringify(e.before),
    DEPLOY_VERSIONS_AFTER: JSON.stringify(e.after),
    DEPLOY_VERSIONS: JSON.stringify(e.versions),
    DEPLOY_RESULT: e.result,
    DEPLOY_ERROR: redact(e.error ?? '').slice(0, 4000),
  };
}

/**
 * The host script of a hook: its variables exported, its text run by `sh -c` in the SSH user's home,
 * bounded by `timeout` where the host has it, output (both streams) kept in a temp file whose end is printed.
 */
export function hookScript(hook: string, vars: Record<string, string>, timeoutS: number): string {
  const exports = Object.entries(vars).map(([k, v]) => `export ${k}=${shellJoin([v])}`);
  const run = shellJoin(['sh', '-c', hook, 'hook']);
  return [
    ...exports,
    `o=$(mktemp) || exit 1`,
    `cd "$HOME" || exit 1`,
    `if command -v timeout >/dev/null 2>&1; then timeout -k 5 ${timeoutS} ${run} >"$o" 2>&1 </dev/null; else ` +
      `${run} >"$o" 2>&1 </dev/null; fi`,
    `rc=$?`,
    `tail -c ${OUTPUT_BYTES} "$o"; rm -f "$o"`,
    `exit $rc`,
  ].join('\n');
}

export interface HookResult {
  ok: boolean;
  code: number;
  output: string;
  /** Why it failed, for the job's error. */
  reason?: string;
}

/** Runs one hook on the host in a log group of its own; secrets masked in what it printed. */
export async function runHook(
  remote: Shell,
  name: HookName,
  text: string,
  env: HookEnv,
  timeoutS: number,
): Promise<HookResult> {
  return core.group(`Hook ${name} (${env.stack}, layer ${env.layer}/${env.layers})`, async () => {
    const vars = hookVariables(env);
    core.info(
      `DEPLOY_STACK=${vars.DEPLOY_STACK} DEPLOY_LAYER=${vars.DEPLOY_LAYER} DEPLOY_RELEASE=${vars.DEPLOY_RELEASE} ` +
        `DEPLOY_RESULT=${vars.DEPLOY_RESULT}`,
    );
    core.info(
      `DEPLOY_VERSIONS_BEFORE=${vars.DEPLOY_VERSIONS_BEFORE} DEPLOY_VERSIONS_AFTER=${vars.DEPLOY_VERSIONS_AFTER}`,
    );
    const t0 = Date.now();
    // Not retried: a hook may not be safe to run twice.
    const res = await remote
      .sh(hookScript(text, vars, timeoutS), { timeoutMs: (timeoutS + 20) * 1000 })
      .catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
    const output = redact(`${res.stdout}${res.stderr}`.replace(/\n$/, ''));
    if (output) core.info(output);
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    if (res.code === 0) {
      core.info(`Hook ${name} passed in ${seconds} s.`);
      return { ok: true, code: 0, output };
    }
    const reason =
      res.code === 124 || res.code === 137
        ? `did not finish within ${timeoutS} s (input hook-timeout)`
        : res.code === -1
          ? output
          : `exited ${res.code}`;
    const last = output.split('\n').filter(Boolean).slice(-5).join('\n  ');
    return {
      ok: false,
      code: res.code,
      output,
      reason: `${reason} after ${seconds} s${last && res.code !== -1 ? `; last lines:\n  ${last}` : ''}`,
    };
  });
}

const tagOf = (image: string) => {
  const last = (image.split('@')[0].split('/').pop() ?? '').split(':');
  return last.length > 1 ? last.slice(1).join(':') : image;
};

/** Full service name → version (image tag) the stack's services run now. */
export async function runningVersions(remote: Shell, stack: string): Promise<Record<string, string>> {
  const res = await remote
    .run(
      [
        'docker',
        'service',
        'ls',
        '--filter',
        `label=com.docker.stack.namespace=${stack}`,
        '--format',
        '{{.Name}} {{.Image}}',
      ],
      { retry: true, silent: true },
    )
    .catch(() => undefined);
  const out: Record<string, string> = {};
  for (const line of res?.code === 0 ? res.stdout.trim().split('\n') : []) {
    const [name, image] = line.split(' ');
    if (name && image) out[name] = tagOf(image);
  }
  return out;
}

function failed(plan: LayerPlan, error: string): LayerOutcome {
  return { stack: plan.stack, result: 'failed', rows: [], images: {}, error, polls: 0 };
}

/**
 * One layer with its hooks, all inside the run's locks: `pre-deploy` before anything of the layer
 * changes (failing, the layer is not deployed), then the layer, then `post-deploy` once it deployed,
 * or `on-failure` after its rollback. Without hooks, just the layer.
 */
export async function layerWithHooks(
  ctx: RunContext,
  hooks: Hooks,
  plan: LayerPlan,
  index: number,
  total: number,
  layer: () => Promise<LayerOutcome>,
): Promise<LayerOutcome> {
  const any = hooks['pre-deploy'] || hooks['post-deploy'] || hooks['on-failure'];
  if (!any || plan.kind !== 'deploy') return layer();
  const { remote } = ctx;
  const planned = Object.fromEntries(plan.watches.map((w) => [w.name, tagOf(w.expectedImage)]));
  const before = await runningVersions(remote, plan.stack);
  for (const name of Object.keys(planned)) before[name] ??= '—';
  const run = (hook: HookName, result: HookEnv['result'], after: Record<string, string>, error?: string) => {
    const { stack, release, versions } = plan;
    const env: HookEnv = {
      hook,
      stack,
      layer: index + 1,
      layers: total,
      release,
      before,
      after,
      versions,
      result,
      error,
    };
    return runHook(remote, hook, hooks[hook], env, hooks.timeoutS);
  };
  const onFailure = async (result: LayerOutcome['result'], error: string) => {
    if (!hooks['on-failure']) return;
    const h = await run('on-failure', result, await runningVersions(remote, plan.stack), error);
    if (!h.ok) core.warning(`Hook on-failure of ${plan.stack} failed: ${h.reason}`);
  };

  if (hooks['pre-deploy']) {
    const h = await run('pre-deploy', 'pending', planned);
    if (!h.ok) {
      const error = `Hook pre-deploy of ${plan.stack} ${h.reason}\nNothing of ${plan.stack} was changed.`;
      core.error(error.split('\n')[0], { title: `pre-deploy failed: ${plan.stack}` });
      await onFailure('failed', error);
      return failed(plan, error);
    }
  }
  let outcome: LayerOutcome;
  try {
    outcome = await layer();
  } catch (e) {
    await onFailure('failed', (e as Error).message);
    throw e;
  }
  if (outcome.result !== 'deployed') {
    await onFailure(outcome.result, outcome.error ?? '');
    return outcome;
  }
  if (hooks['post-deploy']) {
    const h = await run('post-deploy', 'deployed', await runningVersions(remote, plan.stack));
    if (!h.ok) {
      const error =
        `Hook post-deploy of ${plan.stack} ${h.reason}\n${plan.stack} stays deployed (its gate ` +
        `passed); later layers were not deployed.`;
      core.error(error.split('\n')[0], { title: `post-deploy failed: ${plan.stack}` });
      return { ...outcome, error };
    }
  }
  return outcome;
}
