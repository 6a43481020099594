import { NodePath } from '../../compose';
import { CheckModel, Raw, Rule } from '../types';

/** The service, network, config or secret a key path is in: its skip label and comments apply. */
export function entityOf(p: NodePath | undefined): NodePath | undefined {
  return p && p.length >= 2 && ['services', 'networks', 'configs', 'secrets'].includes(String(p[0]))
    ? p.slice(0, 2)
    : undefined;
}

function check(m: CheckModel): Raw[] {
  const out: Raw[] = [];
  for (const r of m.resolved) {
    const seen = new Set<string>();
    for (const u of r.unset) {
      const k = `${u.name}@${u.line}:${u.col}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push({
        severity: 'error',
        at: { file: r.file, line: u.line, col: u.col },
        message:
          `Variable ${u.name} is not set and has no default: Docker would substitute an empty string and deploy ` +
          `anyway (an image tag \`app:\${${u.name}}\` becomes \`app:\`). Set it (input \`env\`; <SERVICE>_VERSION ` +
          `comes from the service's VERSION file), or give it a default: \${${u.name}:-value}.`,
        entity: entityOf(u.path),
      });
    }
  }
  return out;
}

export const unsetVariable: Rule = {
  id: 'unset-variable',
  severities: ['error'],
  table: 'error',
  summary: '${VAR} without default whose variable is unset',
  example: 'services:\n  web:\n    image: registry.example.com/app/web:${WEB_VERSION}\n',
  check,
};
