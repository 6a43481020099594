import { Yaml } from '../../compose';
import { perService } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

/** Keys Swarm does not apply (docker/cli's unsupported and deprecated service properties, plus depends_on). */
const SWARM_IGNORED: Record<string, string> = {
  build: 'the image is built before the deploy (`command: build` builds it from this section) and Swarm runs `image:`',
  depends_on: 'Swarm starts services in any order; make the service retry its dependencies and use healthchecks',
  container_name: 'Swarm names tasks <stack>_<service>.<slot>.<id>; reach the service by its name on a shared network',
  restart: 'use deploy.restart_policy',
  links: 'services on a shared network reach each other by service name',
  external_links: 'attach both services to a shared (external) network',
  network_mode: 'use networks:',
  privileged: 'Swarm services cannot run privileged',
  security_opt: 'not applied to Swarm services',
  userns_mode: 'not applied to Swarm services',
  cgroup_parent: 'not applied to Swarm services',
};

function finding(name: string, _: unknown, svc: Record<string, Yaml>): Raw | undefined {
  const ignored = Object.keys(SWARM_IGNORED).filter((k) => svc[k] !== undefined);
  if (!ignored.length) return undefined;
  return {
    severity: 'notice',
    at: ['services', name, ignored[0]],
    message:
      `Service ${name}: docker stack deploy ignores ${ignored.map((k) => `\`${k}\``).join(', ')} — ` +
      ignored.map((k) => `${k}: ${SWARM_IGNORED[k]}`).join('; ') +
      '.',
    entity: ['services', name],
  };
}

export const swarmIgnored: Rule = {
  id: 'swarm-ignored',
  severities: ['notice'],
  table: 'notice',
  summary: 'service keys that docker stack deploy ignores',
  example: 'services:\n  web:\n    image: app/web:1\n    depends_on: [db]\n  db:\n    image: postgres:16\n',
  check: (m: CheckModel) => perService(m, finding),
};
