import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Removal, removeStack } from '../../src/remove';
import { fakeClock } from '../helpers/clock';
import { RecordingShell } from '../helpers/host';
import { captureStdout } from '../helpers/stdout';

const removal = (p: Partial<Removal> = {}): Removal => ({
  stack: 'app-pr-4',
  services: ['app-pr-4_web'],
  networks: ['app-pr-4_default'],
  configs: [],
  secrets: [],
  shared: [],
  sharedKept: [],
  folder: false,
  ...p,
});

test('removeStack: polls every pollMs while something is left, and fails at the bound naming what is', async () => {
  const clock = fakeClock(0);
  const host = new RecordingShell([
    { run: ['docker', 'stack', 'rm', 'app-pr-4'], reply: 'Removing service app-pr-4_web\n' },
    { sh: /^s=\$\(docker service ls -q --filter/, times: 2, reply: 'services 1\n' },
    { sh: /^s=\$\(docker service ls -q --filter/, reply: 'network app-pr-4_default\n' },
  ]);
  await assert.rejects(
    removeStack(host, '.da', removal(), { timeoutMs: 10_000, pollMs: 4000, clock }),
    /^Error: me@vps: stack app-pr-4 was not fully removed within 10 s; still there: network app-pr-4_default\. /,
  );
  // Polls at 0, 4, 8 and 12 s: the one past the bound fails.
  assert.deepEqual(clock.sleeps, [4000, 4000, 4000]);
  assert.equal(host.calls.length, 5);
});

test('removeStack: done at the first poll that finds nothing left; the folder goes but for the lock', async () => {
  const clock = fakeClock(0);
  const host = new RecordingShell([
    { run: ['docker', 'stack', 'rm'] },
    { sh: /^s=\$\(docker service ls/, times: 1, reply: 'services 1\n' },
    { sh: /^s=\$\(docker service ls/, reply: '' },
    { sh: /^find / },
  ]);
  const stop = captureStdout();
  try {
    await removeStack(host, '/srv/d a', removal({ folder: true }), { timeoutMs: 10_000, pollMs: 1000, clock });
  } finally {
    stop();
  }
  assert.deepEqual(clock.sleeps, [1000]);
  assert.equal(
    host.commands[3],
    "find '/srv/d a/stacks/app-pr-4' -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +",
  );
});
