import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pushWithRetry } from '../../src/build';
import type { RunResult, Runner } from '../../src/exec';
import { fakeClock } from '../helpers/clock';
import { captureStdout } from '../helpers/stdout';

/** A local Docker whose `docker push` answers from a list, one answer a call. */
function docker(answers: (RunResult | Error)[]): Runner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    where: 'runner',
    calls,
    run: async (argv: string[]) => {
      calls.push(argv);
      const a = answers.shift() ?? new Error('no more answers');
      if (a instanceof Error) throw a;
      return a;
    },
  };
}

const fail = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr });

async function quiet<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: Error; out: string }> {
  const stop = captureStdout();
  try {
    return { value: await fn(), out: stop() };
  } catch (e) {
    return { error: e as Error, out: stop() };
  }
}

test('pushWithRetry: a registry hiccup is retried after 2 s, then 4 s; the third failure is the error', async () => {
  const clock = fakeClock();
  const d = docker([fail('a\nb\nc\nreset by peer'), fail('503'), fail('x\nunauthorized: denied')]);
  const r = await quiet(() => pushWithRetry(d, 'reg/web:1', clock));
  assert.equal(r.error?.message, 'Could not push reg/web:1 after 3 attempts: x unauthorized: denied');
  assert.deepEqual(clock.sleeps, [2000, 4000]);
  assert.equal(d.calls.length, 3);
  assert.match(r.out, /docker push reg\/web:1 failed \(attempt 1\/3\): b c reset by peer; retrying in 2 s/);
  assert.match(r.out, /\(attempt 2\/3\): 503; retrying in 4 s/);
});

test('pushWithRetry: the push that succeeds gives its output; a runner that cannot run docker is not retried', async () => {
  const clock = fakeClock();
  const ok = await quiet(() =>
    pushWithRetry(docker([fail('503'), { code: 0, stdout: 'digest: sha256:ab', stderr: '' }]), 'r/w:1', clock),
  );
  assert.equal(ok.value, 'digest: sha256:ab');
  const d = docker([new Error('spawn docker ENOENT')]);
  const r = await quiet(() => pushWithRetry(d, 'r/w:1', clock));
  assert.equal(r.error?.message, 'spawn docker ENOENT');
  assert.equal(d.calls.length, 1);
  assert.deepEqual(clock.sleeps, [2000]);
});
