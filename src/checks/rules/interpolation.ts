import { CheckModel, Raw, Rule } from '../types';
import { entityOf } from './unset-variable';

function check(m: CheckModel): Raw[] {
  return m.resolved.flatMap((r) =>
    r.errors.map((e): Raw => ({
      severity: 'error',
      at: { file: r.file, line: e.line, col: e.col },
      message: `${e.message}.`,
      entity: entityOf(e.path),
    })),
  );
}

export const interpolation: Rule = {
  id: 'interpolation',
  severities: ['error'],
  table: 'error',
  summary: 'invalid ${...} syntax, or a ${VAR:?message} whose variable is missing',
  example: 'services:\n  web:\n    image: app/web:${WEB_VERSION:?set WEB_VERSION}\n',
  check,
};
