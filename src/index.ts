import * as core from '@actions/core';
import { run } from './main';
import { post } from './post';

// One bundle serves both steps, like docker/build-push-action: the state flag tells them apart.
if (!core.getState('isPost')) {
  core.saveState('isPost', 'true');
  void run();
} else {
  post().catch((e) => core.warning(`post step: ${(e as Error).message}`));
}
