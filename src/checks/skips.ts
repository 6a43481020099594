/** Switching rules off: for the run (skip-checks), or for one service, network or config entry. */
import { NodePath, hasPath, isPlainObject, positionOf, toStringMap } from '../compose';
import { StackModel } from '../model';

const SKIP_LABEL = 'deploy-action.skip';
const SKIP_COMMENT = /#\s*deploy-action:\s*skip\b([^#\n]*)/i;

function parseRuleList(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

/**
 * Rules switched off for one service / network / config entry: a skip comment on or above its key,
 * a service's skip label.
 */
export function entitySkips(m: StackModel, entity: NodePath): Set<string> {
  const out = new Set<string>();
  for (const f of m.files) {
    if (!hasPath(f, entity)) continue;
    const { line } = positionOf(f, entity);
    const lines = f.text.split(/\r?\n/);
    for (const l of [line, line - 1]) {
      const found = SKIP_COMMENT.exec(lines[l - 1] ?? '');
      if (found) parseRuleList(found[1]).forEach((r) => out.add(r));
    }
  }
  if (entity[0] === 'services') {
    const svc = m.raw[entity[1] as string];
    const labels = toStringMap(isPlainObject(svc?.deploy) ? svc.deploy.labels : undefined);
    if (labels[SKIP_LABEL] !== undefined) parseRuleList(labels[SKIP_LABEL]).forEach((r) => out.add(r));
  }
  return out;
}

/** Whether a rule is off for the run, or for the entity a finding is about. */
export function skipper(m: StackModel, skip: string[] = []): (rule: string, entity?: NodePath) => boolean {
  const skipAll = new Set(skip);
  const cache = new Map<string, Set<string>>();
  return (rule, entity) => {
    if (skipAll.has(rule) || skipAll.has('all')) return true;
    if (!entity) return false;
    const key = JSON.stringify(entity);
    let s = cache.get(key);
    if (!s) {
      s = entitySkips(m, entity);
      cache.set(key, s);
    }
    return s.has(rule) || s.has('all');
  };
}
