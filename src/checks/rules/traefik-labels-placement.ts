import { Yaml, toStringMap } from '../../compose';
import { perService } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function finding(name: string, _: unknown, svc: Record<string, Yaml>): Raw | undefined {
  const misplaced = Object.keys(toStringMap(svc.labels)).filter((k) => k.startsWith('traefik.'));
  if (!misplaced.length) return undefined;
  return {
    severity: 'warning',
    at: ['services', name, 'labels'],
    message:
      `Service ${name} has Traefik labels under labels: ` +
      `(${misplaced.slice(0, 3).join(', ')}${misplaced.length > 3 ? ', …' : ''}), ` +
      `which are container labels: in Swarm mode Traefik reads only the service labels. Move them under deploy.labels.`,
    entity: ['services', name],
  };
}

export const traefikLabelsPlacement: Rule = {
  id: 'traefik-labels-placement',
  severities: ['warning'],
  table: 'warning',
  summary: 'traefik.* labels under service labels: instead of deploy.labels',
  example: 'services:\n  web:\n    image: app/web:1\n    labels:\n      traefik.enable: "true"\n',
  check: (m: CheckModel) => perService(m, finding),
};
