import { Get, autoOrSeconds, positiveInt } from './values';

/** How long a deploy waits, how it locks, and what it keeps. */
export interface DeployInputs {
  /** Seconds per layer, or undefined for `auto` (from each service's update_config and healthcheck). */
  timeout?: number;
  /** Seconds, or undefined for `auto` (derived per service from its update_config and healthcheck). */
  stability?: number;
  rollbackTo: string;
  keepReleases: number;
  lockTimeout: number;
  /** Seconds after which a lock whose run never released it is broken. */
  lockStaleAfter: number;
  /** Live preview stacks (`<name>-pr-<N>`, counted by pull request) a deploy may add to; 0: no cap. */
  maxPreviews: number;
}

export function readDeploy(get: Get): DeployInputs {
  const stability = autoOrSeconds(get, 'stability', 0);
  const timeout = autoOrSeconds(get, 'timeout', 1);
  return {
    timeout,
    stability,
    rollbackTo: (get('rollback-to') || 'previous').trim(),
    keepReleases: positiveInt(get, 'keep-releases'),
    lockTimeout: positiveInt(get, 'lock-timeout', 0),
    lockStaleAfter: positiveInt(get, 'lock-stale-after', 60),
    maxPreviews: positiveInt(get, 'max-previews', 0),
  };
}
