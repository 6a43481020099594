import * as core from '@actions/core';

/**
 * Everything the post step needs from the main step, in one place. Each value is saved before the
 * thing it undoes exists: a step killed in between still gets cleaned up.
 */
const KEYS = {
  /** Set by the main step: one bundle serves both steps. */
  isPost: 'isPost',
  /** `{ token, dirs }`: the deploy locks this step may hold. */
  locks: 'locks',
  /** The registry the runner logged in to (`-` for Docker Hub). */
  login: 'registry-login',
  /** The run's own Docker config folder on the host (absolute), holding the host's registry login. */
  hostConfig: 'host-docker-config',
} as const;

export interface SavedLocks {
  token: string;
  dirs: string[];
}

export const state = {
  isPost: () => !!core.getState(KEYS.isPost),
  markMain: () => core.saveState(KEYS.isPost, 'true'),
  saveLocks: (l: SavedLocks) => core.saveState(KEYS.locks, JSON.stringify(l)),
  locks: (): SavedLocks => {
    const raw = core.getState(KEYS.locks);
    return raw ? (JSON.parse(raw) as SavedLocks) : { token: '', dirs: [] };
  },
  /** Docker Hub has no registry name: `-` still tells the post step to log out. */
  saveLogin: (registry: string) => core.saveState(KEYS.login, registry || '-'),
  login: (): string | undefined => core.getState(KEYS.login) || undefined,
  saveHostConfig: (dir: string) => core.saveState(KEYS.hostConfig, dir),
  hostConfig: (): string => core.getState(KEYS.hostConfig),
};
