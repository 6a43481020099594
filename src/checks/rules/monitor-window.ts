import { ServiceInfo, Yaml } from '../../compose';
import { fmt, isJob, perService } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function finding(name: string, info: ServiceInfo, svc: Record<string, Yaml>): Raw | undefined {
  const hc = info.healthcheck;
  const u = info.update;
  if (u.failureAction !== 'rollback' || !hc || hc.disabled || isJob(svc)) return undefined;
  const cycle = hc.interval * hc.retries;
  const threshold = Math.max(hc.startPeriod, cycle);
  if (u.monitor > threshold) return undefined;
  const suggested = Math.ceil(threshold + Math.max(hc.interval, 5));
  const what =
    hc.startPeriod > cycle
      ? `the healthcheck's start_period (${fmt(hc.startPeriod)})`
      : `one healthcheck cycle (interval × retries = ${fmt(hc.interval)} × ${hc.retries} = ${fmt(cycle)})`;
  const monitorSet = svc?.deploy?.update_config?.monitor !== undefined;
  return {
    severity: 'warning',
    at: ['services', name, 'deploy', 'update_config', 'monitor'],
    message:
      `Service ${name}: update_config.monitor (${fmt(u.monitor)}${monitorSet ? '' : ", Docker's default"}) is not ` +
      `longer than ${what}, so Swarm's automatic rollback misses failures that come after the first healthy ` +
      `check. Measured on Docker 20.10: Swarm keeps a task with a healthcheck in "starting" until its first ` +
      `healthy check, and monitor only counts from "running"; so a release that never becomes healthy IS ` +
      `rolled back whatever monitor is, but a release that is healthy for a while and then crashes after ` +
      `monitor has elapsed leaves the update "completed" and the service crash-looping on the new version. A ` +
      `monitor window shorter than one healthcheck cycle (interval × retries = ${fmt(cycle)}) sees nothing of ` +
      `the first unhealthy period. Set monitor to at least interval × retries plus a margin (here ` +
      `monitor: ${suggested}s). The action's gate also watches its own stability window after "completed" ` +
      `(input \`stability\`).`,
    entity: ['services', name],
  };
}

export const monitorWindow: Rule = {
  id: 'monitor-window',
  severities: ['warning'],
  table: 'warning',
  summary: 'update_config.monitor not longer than one healthcheck cycle / start_period with failure_action rollback',
  example:
    'services:\n  web:\n    image: app/web:1\n    healthcheck:\n      test: ["CMD", "true"]\n      interval: 10s\n' +
    '      retries: 3\n    deploy:\n      update_config:\n        failure_action: rollback\n        monitor: 10s\n',
  check: (m: CheckModel) => perService(m, finding),
};
