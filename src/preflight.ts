/**
 * The pre-flight checks of a run: every rule over each layer's model before anything connects, then
 * those that need the swarm's facts (its configs, nodes and interface MTU) once connected.
 */
import * as core from '@actions/core';
import { Finding, overlayNetworks, reportFindings, runRules, traefikProviderNetworks } from './checks';
import { ComposeFileError, InputError } from './errors';
import { EngineInfo, readApiNodes, readConfigHashes } from './host/engine-facts';
import type { Host } from './host/shell';
import { HostMtu, describeHostMtu, hostMtuVerdict, readHostMtu } from './hostmtu';
import { Inputs } from './inputs';
import { StackLoader, StackModel, StackSource, buildModel } from './model';
import { bindMountFindings, parseNodes, placementFindings } from './placement';
import { PreparedStack } from './stack';

export function runChecks(
  inputs: Inputs,
  env: Record<string, string>,
  loader: StackLoader,
): { models: StackModel[]; markdown: string } {
  const stacks: StackSource[] = [];
  const findings: Finding[] = [];
  for (const spec of inputs.stacks) {
    try {
      // The deploy (prepareStack) honours the same switched-off rules as the checks.
      stacks.push(loader.stack(spec, inputs.skipChecks));
    } catch (e) {
      // A file Docker would refuse to load is a finding like the others (annotation, summary), and the
      // other stacks are still checked. It cannot be switched off.
      if (!(e instanceof ComposeFileError)) throw e;
      findings.push({
        rule: e.rule,
        severity: 'error',
        file: e.file,
        line: e.line,
        col: e.col,
        stack: spec.name,
        message: e.reason,
      });
    }
  }
  const models = stacks.map((s) => buildModel(s, env));
  // Traefik's default network is set in the proxy's stack and applies to the services of every stack.
  const traefikNetworks = traefikProviderNetworks(models);
  const { skipChecks: skip, timeout, stability } = inputs;
  for (const m of models) findings.push(...runRules(m, { skip, traefikNetworks, timeout, stability }));
  const report = reportFindings(findings);
  core.info(
    `Pre-flight: ${report.errors} error(s), ${report.warnings} warning(s), ${report.notices} ` +
      `notice(s) in ${models.length} stack(s).`,
  );
  if (report.errors) {
    const list = findings
      .filter((f) => f.severity === 'error')
      .map((f) => `  ${f.file}:${f.line}:${f.col} [${f.rule}] ${f.message}`);
    const err = new InputError(
      `Pre-flight checks found ${report.errors} error(s); nothing was deployed:\n${list.join('\n')}`,
    );
    (err as InputError & { markdown?: string }).markdown = report.markdown;
    throw err;
  }
  return { models, markdown: report.markdown };
}

/**
 * The checks that need the swarm's own facts, before anything changes: configs changed under an
 * unchanged name (Swarm configs are immutable), placement against the nodes, overlay MTU against the
 * host's interface. `info` is the engine's GET /info the connection read. Returns the node count.
 */
export async function connectedChecks(
  remote: Host,
  prepared: PreparedStack[],
  inputs: Inputs,
  info: EngineInfo,
): Promise<number> {
  const skipped = (rule: string) => inputs.skipChecks.some((r) => r === 'all' || r === rule);
  const engine = remote.engine();
  // Requests over the Engine API connection while the host's shell reads the interface MTU.
  const [existing, apiNodes, mtu] = await Promise.all([
    readConfigHashes(engine),
    readApiNodes(engine),
    skipped('overlay-mtu') ? undefined : readHostMtu(remote, info),
  ]).catch((e: Error) => {
    throw new Error(`Cannot read the swarm's configs and nodes on ${remote.where}: ${e.message}`);
  });
  const nodes = parseNodes(apiNodes);
  const late = prepared.flatMap((p) =>
    runRules(p, { skip: inputs.skipChecks, existingObjects: existing }, ['immutable-object']),
  );
  if (!skipped('placement'))
    late.push(...prepared.flatMap((p) => placementFindings(p, Object.values(p.services), nodes)));
  if (mtu) late.push(...hostMtuCheck(mtu, prepared, nodes.length));
  if (!skipped('bind-mount-node')) {
    const warnings = prepared.flatMap((p) => bindMountFindings(p, Object.values(p.services), nodes, info.nodeId));
    if (warnings.length) reportFindings(warnings);
  }
  if (late.length) {
    reportFindings(late);
    throw new InputError(
      `Pre-flight checks against the swarm found ${late.length} error(s); nothing was ` +
        `deployed:\n${late.map((f) => `  ${f.file}:${f.line}: [${f.rule}] ${f.message}`).join('\n')}`,
    );
  }
  const ran = ['configs', !skipped('placement') && 'placement', !skipped('overlay-mtu') && 'host MTU'].filter(Boolean);
  core.info(`Pre-flight against the swarm: ${nodes.length} node(s), ${ran.join(', ')} fine.`);
  return nodes.length;
}

/**
 * overlay-mtu with the host's facts: the MTU of the interface carrying the manager's Swarm node
 * address. A loopback address (a one-machine swarm advertised on 127.0.0.1) decides nothing.
 */
function hostMtuCheck(h: HostMtu, models: StackModel[], nodes: number): Finding[] {
  core.info(describeHostMtu(h, nodes));
  const { findings, notice } = hostMtuVerdict(
    h,
    models.flatMap((m) => overlayNetworks(m)),
  );
  if (notice) core.notice(notice, { title: 'overlay-mtu' });
  return findings;
}
