import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { post } from '../../src/post';
import { state } from '../../src/state';
import type { RunOptions, RunResult, Runner } from '../../src/exec';

function recorder(): Runner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    where: 'runner',
    calls,
    run: async (argv: string[], _o?: RunOptions): Promise<RunResult> => (
      calls.push(argv),
      { code: 0, stdout: '', stderr: '' }
    ),
  };
}

/** The post step sees what the main step saved: STATE_<key> variables, as the runner passes them. */
async function asPost(saved: () => void, fn: () => Promise<void>) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'post-')), 'state');
  fs.writeFileSync(file, '');
  process.env.GITHUB_STATE = file;
  saved();
  for (const m of fs.readFileSync(file, 'utf8').matchAll(/^(\S+)<<(\S+)\n([\s\S]*?)\n\2$/gm))
    process.env[`STATE_${m[1]}`] = m[3];
  try {
    await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (k.startsWith('STATE_')) delete process.env[k];
  }
}

test('post: a runner logged in to Docker Hub (no registry input) is logged out too', () =>
  asPost(
    () => state.saveLogin(''),
    async () => {
      const r = recorder();
      await post(r);
      assert.deepEqual(r.calls, [['docker', 'logout']]);
    },
  ));

test('post: a runner logged in to a registry is logged out of it; nothing saved, nothing run', async () => {
  await asPost(
    () => state.saveLogin('ghcr.io'),
    async () => {
      const r = recorder();
      await post(r);
      assert.deepEqual(r.calls, [['docker', 'logout', 'ghcr.io']]);
    },
  );
  await asPost(
    () => undefined,
    async () => {
      const r = recorder();
      await post(r);
      assert.deepEqual(r.calls, []);
    },
  );
});
