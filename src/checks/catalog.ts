/** Every rule, from its module: the checks run them, skip-checks accepts their ids, docs/checks.md lists them. */
import { bindMountNode, placement } from './rules/connected';
import { failureAction } from './rules/failure-action';
import { immutableObject } from './rules/immutable-object';
import { interpolation } from './rules/interpolation';
import { invalidValue } from './rules/invalid-value';
import { invalidYaml, unknownKey } from './rules/load-errors';
import { missingFile } from './rules/missing-file';
import { monitorWindow } from './rules/monitor-window';
import { noHealthcheck } from './rules/no-healthcheck';
import { overlayMtu } from './rules/overlay-mtu';
import { singleReplicaStopFirst } from './rules/single-replica-stop-first';
import { statefulOnProxyNetwork } from './rules/stateful-on-proxy-network';
import { swarmIgnored } from './rules/swarm-ignored';
import { timeoutTooShort } from './rules/timeout-too-short';
import { traefikLabelsPlacement } from './rules/traefik-labels-placement';
import { traefikNetwork } from './rules/traefik-network';
import { undefinedNetwork } from './rules/undefined-network';
import { unsetVariable } from './rules/unset-variable';
import { Rule } from './types';

/** In the order of docs/checks.md. */
export const RULES: Rule[] = [
  overlayMtu,
  undefinedNetwork,
  traefikNetwork,
  traefikLabelsPlacement,
  monitorWindow,
  failureAction,
  unsetVariable,
  interpolation,
  singleReplicaStopFirst,
  noHealthcheck,
  statefulOnProxyNetwork,
  immutableObject,
  missingFile,
  swarmIgnored,
  invalidValue,
  invalidYaml,
  unknownKey,
  timeoutTooShort,
  placement,
  bindMountNode,
];

export const RULE_IDS: string[] = RULES.map((r) => r.id);

/** The rules table of docs/checks.md. */
export function rulesTable(): string {
  return ['| Rule | Severity |', '| --- | --- |', ...RULES.map((r) => `| [\`${r.id}\`](#${r.id}) | ${r.table} |`)].join(
    '\n',
  );
}
