/** Runs the rules of the catalog over one stack's model: pure but for reading referenced files. */
import { locateIn } from '../compose';
import { StackModel, StackSource, buildModel } from '../model';
import { RULES } from './catalog';
import { proxyNetworks, swarmNetworkName } from './facts';
import { skipper } from './skips';
import { traefikProviderNetworks } from './traefik';
import { CheckModel, CheckOptions, Finding, Raw } from './types';

/** The facts several rules share, computed once per stack. */
export function checkModel(m: StackModel, opts: CheckOptions = {}): CheckModel {
  const netName = (key: string): string => swarmNetworkName(m.name, key, m.networks);
  let defaults = opts.traefikNetworks;
  return {
    ...m,
    opts,
    netName,
    declared: (key) => key === 'default' || Object.prototype.hasOwnProperty.call(m.networks, key),
    proxyNets: proxyNetworks(m, netName),
    traefikDefaults: () => (defaults ??= traefikProviderNetworks([m])),
  };
}

function place(m: StackModel, rule: string, r: Raw): Finding {
  const loc = Array.isArray(r.at) ? locateIn(m.files, r.at) : r.at;
  const service = r.entity && r.entity[0] === 'services' ? String(r.entity[1]) : r.service;
  return {
    rule,
    severity: r.severity,
    file: loc.file.path,
    line: loc.line,
    col: loc.col,
    stack: m.name,
    service,
    message: r.message,
  };
}

/** The rules of the catalog (or only those named) over one stack, switched-off ones left out, in file order. */
export function runRules(m: StackModel, opts: CheckOptions = {}, only?: string[]): Finding[] {
  if (!m.files.length) return [];
  const cm = checkModel(m, opts);
  const skipped = skipper(m, opts.skip);
  const findings: Finding[] = [];
  for (const rule of RULES) {
    if (!rule.check || (only && !only.includes(rule.id))) continue;
    for (const r of rule.check(cm)) if (!skipped(rule.id, r.entity)) findings.push(place(m, rule.id, r));
  }
  const order = new Map(m.files.map((f, i) => [f.path, i]));
  return findings.sort(
    (a, b) =>
      (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) ||
      a.line - b.line ||
      a.col - b.col ||
      a.rule.localeCompare(b.rule),
  );
}

/** Every rule over one stack (its files merged in order, as docker stack deploy does). */
export function checkStack(
  stack: StackSource,
  env: Record<string, string | undefined>,
  opts: CheckOptions = {},
): Finding[] {
  return runRules(buildModel(stack, env), opts);
}
