import { NodePath } from '../../compose';
import { isProxyByName, isTrue, statefulKind } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function check(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const [name, info] of Object.entries(m.services)) {
    const svc = m.raw[name];
    const stateful = statefulKind(name, info.image);
    if (!stateful || isTrue(info.labels['traefik.enable']) || isProxyByName(name, info.image)) continue;
    const onProxy = info.networks.filter((k) => m.proxyNets.has(m.netName(k)));
    if (!onProxy.length) continue;
    const k = onProxy[0];
    const entity: NodePath = ['services', name];
    const netPath: NodePath = Array.isArray(svc.networks) ? [...entity, 'networks'] : [...entity, 'networks', k];
    out.push({
      severity: 'warning',
      at: svc.networks === undefined ? entity : netPath,
      message:
        `Service ${name} (${stateful}) is on network ` +
        `${k}${m.netName(k) !== k ? ` (${m.netName(k)})` : ''}, which the ` +
        `proxy is on (${m.proxyNets.get(m.netName(k))}): the proxy, and everything it exposes, can reach it. Keep ` +
        `databases and caches on an internal network (e.g. backend, with internal: true) shared only with the ` +
        `services that use them.`,
      entity,
    });
  }
  return out;
}

export const statefulOnProxyNetwork: Rule = {
  id: 'stateful-on-proxy-network',
  severities: ['warning'],
  table: 'warning',
  summary: 'database or cache on the network the proxy is on',
  example:
    'services:\n  traefik:\n    image: traefik:v3.1\n    networks: [edge]\n  db:\n    image: postgres:16\n' +
    '    networks: [edge]\nnetworks:\n  edge: {}\n',
  check,
};
