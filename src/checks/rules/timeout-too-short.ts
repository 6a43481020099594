import { locateIn } from '../../compose';
import { layerTiming, tooShort } from '../../timing';
import { CheckModel, Raw, Rule } from '../types';

/** An explicit `timeout` a healthy rolling update cannot fit in: the gate would roll a good release back. */
function check(m: CheckModel): Raw[] {
  const { timeout, stability } = m.opts;
  // A value Docker refuses makes the stack unreadable: invalid-value reports it.
  if (timeout === undefined || m.invalid.length) return [];
  return tooShort(layerTiming(Object.values(m.services), { timeout, stability })).map((t) => ({
    severity: 'error',
    at: locateIn(m.files, ['services', t.service, 'deploy', 'update_config']),
    service: t.service,
    message:
      `Service ${t.service}: input \`timeout\` is ${timeout} s, but a healthy rolling update of it ` +
      `takes at least ${t.minimum} s ` +
      `(${t.batches} batch(es), each at least one healthcheck interval and the delay, then monitor ` +
      `and the stability window). ` +
      `The gate would roll back a good release. Use \`timeout: auto\` (${t.auto} s here) or at least ${t.minimum}.`,
  }));
}

export const timeoutTooShort: Rule = {
  id: 'timeout-too-short',
  severities: ['error'],
  table: 'error',
  summary: 'an explicit `timeout` shorter than a healthy rolling update of a service takes',
  example: 'services:\n  web:\n    image: app/web:1\n    deploy:\n      replicas: 3\n',
  exampleOptions: { timeout: 10 },
  check,
};
