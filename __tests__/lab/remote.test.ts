// The SSH layer against the lab's real sshd: every command is bounded.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { requireLab, type LabEnv } from '../helpers/lab';
import { CommandTimeout, Remote } from '../../src/remote';

let lab: LabEnv;
before(async () => {
  lab = await requireLab();
});

const connect = () =>
  Remote.connect({
    host: lab.host,
    port: lab.port,
    user: lab.user,
    privateKey: lab.sshKey,
    knownHosts: lab.knownHosts,
  });

test(
  'a remote command past its bound fails as a timeout, and the next command works on a new shell',
  { timeout: 60_000 },
  async () => {
    const remote = await connect();
    try {
      const t0 = Date.now();
      await assert.rejects(
        remote.sh('sleep 30', { timeoutMs: 1500 }),
        (e: Error) => e instanceof CommandTimeout && /did not answer within 2 s/.test(e.message),
      );
      assert.ok(Date.now() - t0 < 10_000, `the bound did not hold: ${Date.now() - t0} ms`);
      const next = await remote.sh('echo alive');
      assert.equal(next.stdout.trim(), 'alive');
      // A command given standard input (its own channel) is bounded too.
      await assert.rejects(remote.sh('sleep 30', { input: 'x', timeoutMs: 1500 }), CommandTimeout);
      assert.equal((await remote.sh('echo still')).stdout.trim(), 'still');
    } finally {
      remote.dispose();
    }
  },
);

test('setEnv: every later command sees the variable, quoted', { timeout: 30_000 }, async () => {
  const remote = await connect();
  try {
    remote.setEnv({ DOCKER_CONFIG: "/tmp/it's here" });
    assert.equal((await remote.sh('printf %s "$DOCKER_CONFIG"')).stdout, "/tmp/it's here");
    assert.equal((await remote.sh('printf %s "$DOCKER_CONFIG"', { input: '' })).stdout, "/tmp/it's here");
  } finally {
    remote.dispose();
  }
});
