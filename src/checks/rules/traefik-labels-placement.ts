import { toStringMap } from '../../compose';
import { CheckModel, Raw, Rule } from '../types';

function check(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const name of Object.keys(m.services)) {
    const misplaced = Object.keys(toStringMap(m.raw[name].labels)).filter((k) => k.startsWith('traefik.'));
    if (!misplaced.length) continue;
    out.push({
      severity: 'warning',
      at: ['services', name, 'labels'],
      message:
        `Service ${name} has Traefik labels under labels: (${misplaced.slice(0, 3).join(', ')}${misplaced.length > 3 ? ', …' : ''}), ` +
        `which are container labels: in Swarm mode Traefik reads only the service labels. Move them under deploy.labels.`,
      entity: ['services', name],
    });
  }
  return out;
}

export const traefikLabelsPlacement: Rule = {
  id: 'traefik-labels-placement',
  severities: ['warning'],
  table: 'warning',
  summary: 'traefik.* labels under service labels: instead of deploy.labels',
  example: 'services:\n  web:\n    image: app/web:1\n    labels:\n      traefik.enable: "true"\n',
  check,
};
