import { networkAt } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

// docker stack deploy refuses the whole stack ("undefined network").
function check(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  const declared = Object.keys(m.networks);
  for (const [name, info] of Object.entries(m.services)) {
    for (const k of info.networks.filter((n) => !m.declared(n))) {
      out.push({
        severity: 'error',
        at: networkAt(m, name, k),
        message:
          `Service ${name} is on network ${k}, which the stack does not declare: docker stack deploy refuses it ` +
          `("undefined network"). Declare it under the top-level networks: (external: true for one created ` +
          `outside the stack, e.g. by the proxy's stack), or use a declared one` +
          `${declared.length ? ` (${declared.join(', ')})` : ''}.`,
        entity: ['services', name],
      });
    }
  }
  return out;
}

export const undefinedNetwork: Rule = {
  id: 'undefined-network',
  severities: ['error'],
  table: 'error',
  summary: 'service on a network the stack does not declare',
  example: 'services:\n  web:\n    image: app/web:1.0.0\n    networks: [traefik-public]\n',
  check,
};
