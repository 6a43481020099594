import * as core from '@actions/core';
import { run } from './main';
import { post } from './post';
import { state } from './state';

// One bundle serves both steps, like docker/build-push-action: the state flag tells them apart.
if (!state.isPost()) {
  state.markMain();
  // Nothing may keep the step alive once it has reported (a socket left open by a failed connect).
  void run().finally(() => setTimeout(() => process.exit(), 200).unref());
} else {
  post()
    .catch((e) => core.warning(`post step: ${(e as Error).message}`))
    .finally(() => setTimeout(() => process.exit(), 200).unref());
}
