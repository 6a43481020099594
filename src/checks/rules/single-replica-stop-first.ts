import { NodePath, ServiceInfo, Yaml, isPlainObject } from '../../compose';
import { isJob, namedVolumes, perService, statefulKind } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function finding(name: string, info: ServiceInfo, svc: Record<string, Yaml>): Raw | undefined {
  const hostPorts = Array.isArray(svc.ports) && svc.ports.some((p: unknown) => isPlainObject(p) && p.mode === 'host');
  if (info.mode !== 'replicated' || isJob(svc) || info.replicas !== 1 || hostPorts) return undefined;
  const u = info.update;
  const hc = info.healthcheck;
  const stateful = statefulKind(name, info.image);
  const volumes = namedVolumes(svc);
  const entity: NodePath = ['services', name];
  const at: NodePath =
    svc?.deploy?.update_config?.order !== undefined
      ? [...entity, 'deploy', 'update_config', 'order']
      : [...entity, 'deploy', 'replicas'];
  const vols = `volume${volumes.length > 1 ? 's' : ''} ${volumes.join(', ')}`;
  if (volumes.length && u.order === 'stop-first') {
    // Two copies on one data folder can corrupt it (databases, Prometheus' TSDB) or fail on its lock.
    const message =
      `Service ${name} runs one replica with order stop-first and named ${vols}: ` +
      `keep stop-first. start-first would run the new task next to the old one on the same data folder, which ` +
      `can corrupt it or fail on its lock; the price is a short downtime on each deploy of this service.`;
    return { severity: 'notice', at, message, entity };
  }
  if (volumes.length && u.order === 'start-first') {
    const message =
      `Service ${name} has order start-first and named ${vols}: each deploy ` +
      `runs two copies of it on the same data folder for a while, which can corrupt it (databases, ` +
      `Prometheus, Portainer) or leave the new one failing on the old one's lock. Use order: stop-first.`;
    return { severity: 'warning', at, message, entity };
  }
  if (u.order !== 'stop-first' || stateful) return undefined;
  const message =
    `Service ${name} runs one replica with update order stop-first (Docker's default): every deploy stops the ` +
    `old task before the new one starts, so the service is down for the whole start-up. Fix: ` +
    `${
      hc && !hc.disabled
        ? ''
        : 'add a healthcheck (so that Swarm waits until the new task answers ' + 'before stopping the old one) and '
    }` +
    `set deploy.update_config.order: start-first (or run 2 or more replicas).`;
  return { severity: 'warning', at, message, entity };
}

export const singleReplicaStopFirst: Rule = {
  id: 'single-replica-stop-first',
  severities: ['warning', 'notice'],
  table: 'warning (notice for a service with a named volume)',
  summary: 'one replica with order stop-first: downtime on every deploy',
  example: 'services:\n  web:\n    image: app/web:1\n    deploy:\n      replicas: 1\n',
  check: (m: CheckModel) => perService(m, finding),
};
