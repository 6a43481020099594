import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { RunResult } from '../../src/exec';
import { CommandTimeout, Remote, writeFileScript } from '../../src/remote';
import { fakeClock } from '../helpers/clock';
import { captureStdout } from '../helpers/stdout';

const sh = (script: string, stdin: string) => spawnSync('sh', ['-c', script], { input: stdin, encoding: 'utf8' });

function target(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'write-'));
  const file = path.join(dir, 'ledger.json');
  fs.writeFileSync(file, 'the good copy');
  return file;
}

test('writeFile: a here-document cut short leaves the file as it was, and no temp file', () => {
  const file = target();
  const w = writeFileScript(file, JSON.stringify({ releases: Array.from({ length: 200 }, (_, i) => ({ i })) }));
  // The channel was cut after the first 100 base64 characters (a whole number of 4-character groups).
  const r = sh(w.script, w.heredoc.slice(0, 100));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /incomplete transfer/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'the good copy');
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['ledger.json']);
});

test('writeFile: the bytes that arrived whole are installed, binary content byte for byte', () => {
  const file = target();
  const bytes = Buffer.from([0, 255, 254, 10, 13, 0x80, 0xc3, 0x28, 65]);
  const w = writeFileScript(file, bytes);
  const r = sh(w.script, w.heredoc);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.readFileSync(file).equals(bytes));
});

test('writeFile: two writes of one file never share a temp name', () => {
  const a = writeFileScript('/x/ledger.json', 'a').script.match(/ledger\.json\.tmp\.[0-9a-f]+/)?.[0];
  const b = writeFileScript('/x/ledger.json', 'a').script.match(/ledger\.json\.tmp\.[0-9a-f]+/)?.[0];
  assert.ok(a && b && a !== b);
});

test('writeFile: a path with spaces, quotes and shell syntax is one literal path', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'write-'));
  const file = path.join(dir, "inj a;b$(touch pwned)`x`'q.yml");
  const w = writeFileScript(file, 'services: {}\n');
  const r = sh(w.script, w.heredoc);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(file, 'utf8'), 'services: {}\n');
  assert.deepEqual(fs.readdirSync(dir), [path.basename(file)]);
});

/**
 * A Remote without a network: its SSH client and persistent shell are fakes; `answers` are the
 * persistent shell's replies in turn (an Error is a rejection). Reconnects are counted.
 */
function offline(answers: (RunResult | Error | 'hang')[]) {
  const r = Object.create(Remote.prototype) as Remote;
  const state = { reconnects: 0, closed: 0, scripts: [] as string[], clock: fakeClock() };
  const shell = {
    run: (script: string) => {
      state.scripts.push(script);
      const a = answers.shift() ?? new Error('no more answers');
      if (a === 'hang') return new Promise<RunResult>(() => undefined);
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
    close: () => void state.closed++,
  };
  Object.assign(r, {
    where: 'me@vps',
    clock: state.clock,
    commands: 0,
    prefix: '',
    shell,
    ssh: { isConnected: () => true, dispose: () => undefined },
    open: async () => {
      state.reconnects++;
      (r as unknown as { shell: typeof shell }).shell = shell;
    },
  });
  return { r, state };
}

const dropped = () => Object.assign(new Error('the remote shell closed (connection dropped?)'), { dropped: true });

test('Remote.sh: a command marked safe to repeat is run again on a new connection after a drop', async () => {
  const { r, state } = offline([dropped(), { code: 0, stdout: 'ok\n', stderr: '' }]);
  const stop = captureStdout();
  let out = '';
  let res: RunResult;
  try {
    res = await r.sh('docker info', { retry: true });
  } finally {
    out = stop();
  }
  assert.equal(res.stdout, 'ok\n');
  assert.equal(state.reconnects, 1);
  assert.equal(r.commands, 2);
  assert.deepEqual(state.clock.sleeps, [500]);
  assert.match(
    out,
    /::warning::SSH connection to me@vps dropped \(the remote shell closed .*\); reconnecting \(attempt 1\)\./,
  );
});

test('Remote.sh: a drop of a command not safe to repeat, or of the last attempt, is "Lost the SSH connection"', async () => {
  const once = offline([dropped()]);
  await assert.rejects(
    once.r.sh('docker service rollback x', { retry: false }),
    /^Error: Lost the SSH connection to me@vps: the remote shell closed/,
  );
  assert.equal(once.state.reconnects, 0);
  const stop = captureStdout();
  const always = offline([dropped(), dropped(), dropped(), dropped()]);
  try {
    await assert.rejects(always.r.sh('true', { retry: true }), /^Error: Lost the SSH connection to me@vps/);
  } finally {
    stop();
  }
  assert.equal(always.state.reconnects, 3);
  assert.equal(always.r.commands, 4);
  assert.deepEqual(always.state.clock.sleeps, [500, 1000, 1500]);
});

test('Remote.sh: a channel of its own refused while connected (MaxSessions): run in the shell, unless it has standard input', async () => {
  const { r, state } = offline([{ code: 0, stdout: 'in the shell\n', stderr: '' }]);
  const channels: string[] = [];
  Object.assign((r as unknown as { ssh: object }).ssh, {
    execCommand: async (script: string) => {
      channels.push(script);
      throw new Error('(SSH) Channel open failure: open failed');
    },
  });
  const before = process.env.RUNNER_DEBUG;
  process.env.RUNNER_DEBUG = '1';
  const stop = captureStdout();
  let out = '';
  try {
    const res = await r.run(['docker', 'manifest', 'inspect', 'reg/a'], { concurrent: true });
    assert.equal(res.stdout, 'in the shell\n');
    await assert.rejects(
      r.sh('docker secret create x -', { input: 'the secret' }),
      /^Error: me@vps refused another SSH channel \(sshd MaxSessions\?\): \(SSH\) Channel open failure/,
    );
  } finally {
    out = stop();
    if (before === undefined) delete process.env.RUNNER_DEBUG;
    else process.env.RUNNER_DEBUG = before;
  }
  assert.deepEqual(channels, ['docker manifest inspect reg/a', 'docker secret create x -']);
  assert.deepEqual(state.scripts, ['docker manifest inspect reg/a']);
  assert.match(
    out,
    /::debug::me@vps refused another SSH channel .*; run in the shell instead: docker manifest inspect reg\/a$/m,
  );
  assert.equal(state.reconnects, 0);
});

test('Remote.sh: a command past its bound is a CommandTimeout, never repeated; its shell is replaced', async () => {
  const { r, state } = offline(['hang']);
  await assert.rejects(
    r.sh('docker stack deploy', { retry: true, timeoutMs: 20 }),
    (e: Error) => e instanceof CommandTimeout,
  );
  assert.equal(state.reconnects, 0);
  assert.equal(state.closed, 1);
  assert.equal((r as unknown as { shell?: unknown }).shell, undefined);
});

test('Remote.sh: a command that fails is its result, not an error; run() quotes every word', async () => {
  const { r, state } = offline([{ code: 1, stdout: '', stderr: 'no such service' }]);
  const res = await r.run(['docker', 'service', 'ps', "a b'c"], { retry: true });
  assert.equal(res.code, 1);
  assert.deepEqual(state.scripts, [`docker service ps "a b'c"`]);
});

test('Remote.sh: with debug logging on, every command (silent ones too) is logged with its exit code and duration', async () => {
  const { r } = offline([
    { code: 0, stdout: '', stderr: '' },
    { code: 3, stdout: '', stderr: '' },
  ]);
  const before = process.env.RUNNER_DEBUG;
  process.env.RUNNER_DEBUG = '1';
  const stop = captureStdout();
  let out = '';
  try {
    await r.sh('docker info', { silent: true });
    await r.sh('false');
  } finally {
    out = stop();
    if (before === undefined) delete process.env.RUNNER_DEBUG;
    else process.env.RUNNER_DEBUG = before;
  }
  const lines = out.match(/::debug::.*/g) ?? [];
  assert.equal(lines.length, 2, out);
  assert.match(lines[0], /^::debug::me@vps\$ docker info → 0 \(\d+ ms\)$/);
  assert.match(lines[1], /^::debug::me@vps\$ false → 3 \(\d+ ms\)$/);
});
