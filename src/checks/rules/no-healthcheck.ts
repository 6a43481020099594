import { isJob } from '../facts';
import { CheckModel, Raw, Rule } from '../types';

function check(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const [name, info] of Object.entries(m.services)) {
    const hc = info.healthcheck;
    const entity = ['services', name];
    if (isJob(m.raw[name])) continue;
    if (!hc) {
      out.push({
        severity: 'notice',
        at: entity,
        message:
          `Service ${name} has no healthcheck in the stack: the gate can only see its tasks "running", not whether ` +
          `the app answers. If the image defines a HEALTHCHECK, Swarm still uses it (this check cannot see images); ` +
          `otherwise add healthcheck: (test, interval, retries, start_period).`,
        entity,
      });
    } else if (hc.disabled) {
      out.push({
        severity: 'notice',
        at: [...entity, 'healthcheck'],
        message:
          `Service ${name} disables its healthcheck (also the image's HEALTHCHECK): the gate can only see its tasks ` +
          `"running", not whether the app answers. Remove disable: true / test: ["NONE"] and give a real test.`,
        entity,
      });
    }
  }
  return out;
}

export const noHealthcheck: Rule = {
  id: 'no-healthcheck',
  severities: ['notice'],
  table: 'notice',
  summary: 'service without a healthcheck in the stack',
  example: 'services:\n  web:\n    image: app/web:1\n',
  check,
};
