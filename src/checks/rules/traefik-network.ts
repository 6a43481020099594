import { ServiceInfo, isExternal } from '../../compose';
import { isTrue, labelAt, perService, traefikNetworkLabel } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

/** A routed service on several networks, none of them picked by a label or Traefik's default. */
function unpicked(m: CheckModel, info: ServiceInfo, names: string[]): Raw {
  const name = info.name;
  const traefikDefaults = m.traefikDefaults();
  const shared = names.filter((n) => m.proxyNets.has(n) && !/^Traefik \(via /.test(m.proxyNets.get(n) as string));
  const describe = info.networks.map((k) => (m.netName(k) === k ? k : `${k} (Swarm: ${m.netName(k)})`)).join(', ');
  // Suggest only networks the stack declares (an undeclared one is its own error).
  const ok = names.filter((n, i) => m.declared(info.networks[i]));
  const hint =
    shared.find((n) => ok.includes(n)) ??
    ok.find((n) => isExternal(m.networks[info.networks[names.indexOf(n)]])) ??
    ok[0];
  const fixText = hint
    ? `Add deploy.labels traefik.docker.network=${hint} (the Swarm name of the network Traefik shares with it; ` +
      `traefik.swarm.network with Traefik v3's swarm provider)`
    : `Declare its networks, then add deploy.labels traefik.docker.network=<the network Traefik shares with it>`;
  return {
    severity: 'error',
    at: labelAt(m, name, 'traefik.enable'),
    message:
      `Service ${name} is routed by Traefik (traefik.enable=true) and is on ${info.networks.length} networks ` +
      `(${describe}) without a traefik.docker.network label: Traefik may pick a network it is not on, and ` +
      `requests time out or get 502/504. ${fixText}, or give Traefik a default network ` +
      `(--providers.swarm.network / --providers.docker.network, read from every stack of the run)` +
      `${traefikDefaults.length ? `; Traefik's default network (${traefikDefaults.join(', ')}) is not one of ` : ''}` +
      `${traefikDefaults.length ? 'its networks' : ''}.`,
    entity: ['services', name],
  };
}

function finding(m: CheckModel, info: ServiceInfo): Raw | undefined {
  if (!isTrue(info.labels['traefik.enable'])) return undefined;
  const label = traefikNetworkLabel(info.labels);
  const names = info.networks.map(m.netName);
  const byDefault = names.filter((n) => m.traefikDefaults().includes(n));
  if (!label && info.networks.length > 1 && !byDefault.length) return unpicked(m, info, names);
  if (!label || names.includes(label.value)) return undefined;
  const byKey = info.networks.indexOf(label.value) >= 0 ? m.netName(label.value) : undefined;
  return {
    severity: 'error',
    at: labelAt(m, info.name, label.key),
    message:
      `Service ${info.name}: ${label.key}=${label.value} names a network the service is not on; its networks are ` +
      `named ${names.join(', ')} in Swarm (a network declared in the stack is prefixed with the stack name ` +
      `unless it has name:; external networks keep their name). ` +
      (byKey ? `Use ${label.key}=${byKey}.` : `Attach the service to that network, or name one of its networks.`),
    entity: ['services', info.name],
  };
}

export const traefikNetwork: Rule = {
  id: 'traefik-network',
  severities: ['error'],
  table: 'error',
  summary:
    'Traefik-routed service on several networks without a valid traefik.docker.network or Traefik default network',
  example:
    'services:\n  web:\n    image: app/web:1\n    networks: [edge, backend]\n    deploy:\n      labels:\n' +
    '        traefik.enable: "true"\nnetworks:\n  edge: {}\n  backend: {}\n',
  check: (m) => perService(m, (_, info) => finding(m, info)),
};
