import { CheckModel, Raw, Rule } from '../types';

function check(m: CheckModel): Raw[] {
  return m.invalid.map(({ service, error }) => ({
    severity: 'error',
    at: error.path,
    message: `${error.message}`,
    entity: ['services', service],
  }));
}

export const invalidValue: Rule = {
  id: 'invalid-value',
  severities: ['error'],
  table: 'error',
  summary: 'a duration or number Docker would refuse',
  example: 'services:\n  web:\n    image: app/web:1\n    healthcheck:\n      interval: 30\n',
  check,
};
