import { ServiceInfo, Yaml } from '../../compose';
import { isJob, perService } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function finding(name: string, info: ServiceInfo, svc: Record<string, Yaml>): Raw | undefined {
  if (info.update.failureAction !== 'pause' || isJob(svc)) return undefined;
  const missing = svc?.deploy?.update_config?.failure_action === undefined;
  return {
    severity: 'warning',
    at: ['services', name, 'deploy', 'update_config', 'failure_action'],
    message:
      `Service ${name}: update_config.failure_action is ` +
      `${missing ? "not set (Docker's default is pause)" : 'pause'}: ` +
      `a failed update stays paused half-done, some tasks on the new version and some on the old. The action's ` +
      `gate rolls back itself, but set deploy.update_config.failure_action: rollback so that Swarm does it too ` +
      `(deploys without the action, or a runner lost mid-deploy).`,
    entity: ['services', name],
  };
}

export const failureAction: Rule = {
  id: 'failure-action',
  severities: ['warning'],
  table: 'warning',
  summary: 'update_config.failure_action missing or pause',
  example:
    'services:\n  web:\n    image: app/web:1\n    deploy:\n      update_config:\n        failure_action: pause\n',
  check: (m: CheckModel) => perService(m, finding),
};
