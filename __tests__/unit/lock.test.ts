import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HostLock, lockStacks, lockTracker } from '../../src/lock';
import { fakeClock } from '../helpers/clock';
import { LocalShell, RecordingShell } from '../helpers/host';
import { captureStdout } from '../helpers/stdout';

/** A host with lock folders in a Map: a recording fake that answers the take and release scripts as the real shell does. */
function fakeHost(heldByOthers: string[] = []) {
  const held = new Map<string, string>(
    heldByOthers.map((d) => [
      d,
      JSON.stringify({ token: 'someone-else', run: 'r', actor: 'alice', release: '9', since: 'now' }),
    ]),
  );
  const calls: { op: 'take' | 'release' | 'break'; dir: string; stateAtCall: string; script: string }[] = [];
  const saved = () => (process.env.GITHUB_STATE ? fs.readFileSync(process.env.GITHUB_STATE, 'utf8') : '');
  const TAKE = /if err=\$\(LC_ALL=C mkdir '?([^' ]+)'? 2>&1\)/;
  const BREAK = /^if ! mkdir '?([^' ]+)'?\/\.breaking/;
  const RELEASE = /^grep -qF '?(.*?)'? '?([^' ]+)'?\/holder\.json/;
  const remote = new RecordingShell([
    {
      sh: TAKE,
      reply: ({ text }) => {
        const dir = TAKE.exec(text)![1];
        calls.push({ op: 'take', dir, stateAtCall: saved(), script: text });
        if (held.has(dir)) return `HELD\n5\n123 45\n${held.get(dir)}\n`;
        held.set(dir, /printf '%s' '(\{.*?\})' >/.exec(text)?.[1] ?? '');
        return 'TAKEN\n';
      },
    },
    {
      sh: BREAK,
      reply: ({ text }) => {
        const dir = BREAK.exec(text)![1];
        calls.push({ op: 'break', dir, stateAtCall: saved(), script: text });
        held.delete(dir);
        return 'BROKEN\n';
      },
    },
    {
      sh: RELEASE,
      reply: ({ text }) => {
        const [, token, dir] = RELEASE.exec(text)!;
        calls.push({ op: 'release', dir, stateAtCall: saved(), script: text });
        if (!held.get(dir)?.includes(token)) return { code: 1, stdout: '', stderr: '' };
        held.delete(dir);
        return 'RELEASED\n';
      },
    },
  ]);
  return { remote, held, calls };
}

function withState<T>(fn: () => Promise<T>): Promise<T> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lock-test-')), 'state');
  fs.writeFileSync(file, '');
  const prev = process.env.GITHUB_STATE;
  process.env.GITHUB_STATE = file;
  return fn().finally(() => {
    if (prev === undefined) delete process.env.GITHUB_STATE;
    else process.env.GITHUB_STATE = prev;
  });
}

const holder = {
  run: 'https://github.com/o/r/actions/runs/1',
  actor: 'me',
  release: '1.2.0',
  since: '2026-01-01T00:00:00Z',
};

test('lockStacks: each lock is in the saved state before it is taken (a step killed right after mkdir is cleaned up by post)', () =>
  withState(async () => {
    const { remote, calls } = fakeHost();
    const tracker = lockTracker();
    const release = await lockStacks(remote, ['.d/stacks/infra/lock', '.d/stacks/app/lock'], holder, 0, tracker);
    const takes = calls.filter((c) => c.op === 'take');
    assert.equal(takes.length, 2);
    for (const t of takes) {
      assert.ok(t.stateAtCall.includes(t.dir), `${t.dir} was not saved before its take command ran`);
      assert.ok(t.stateAtCall.includes(tracker.token), 'the token was not saved before the take');
      assert.ok(t.script.includes(tracker.token), 'the holder file does not carry the token');
    }
    await release();
    assert.deepEqual(
      calls.filter((c) => c.op === 'release').map((c) => c.dir),
      ['.d/stacks/infra/lock', '.d/stacks/app/lock'],
    );
  }));

test('lockStacks: one fixed order (sorted, each once), so two runs with the same stacks cannot deadlock', () =>
  withState(async () => {
    const { remote, calls } = fakeHost();
    await lockStacks(remote, ['.d/stacks/b/lock', '.d/stacks/a/lock', '.d/stacks/b/lock'], holder, 0, lockTracker());
    assert.deepEqual(
      calls.map((c) => `${c.op} ${c.dir}`),
      ['take .d/stacks/a/lock', 'take .d/stacks/b/lock'],
    );
  }));

test('lockStacks: a lock held by another run fails naming the holder, and the locks already taken are released', () =>
  withState(async () => {
    const { remote, held, calls } = fakeHost(['.d/stacks/b/lock']);
    await assert.rejects(
      lockStacks(remote, ['.d/stacks/a/lock', '.d/stacks/b/lock'], holder, 0, lockTracker()),
      /Another deploy holds the lock \.d\/stacks\/b\/lock on me@vps: alice/,
    );
    assert.deepEqual(
      calls.map((c) => `${c.op} ${c.dir}`),
      ['take .d/stacks/a/lock', 'take .d/stacks/b/lock', 'release .d/stacks/b/lock', 'release .d/stacks/a/lock'],
    );
    assert.deepEqual([...held.keys()], ['.d/stacks/b/lock'], "the other run's lock must stay, ours must go");
  }));

test('lockStacks: the release only removes a lock that carries this step’s token', () =>
  withState(async () => {
    const { remote, held } = fakeHost();
    const release = await lockStacks(remote, ['.d/stacks/a/lock'], holder, 0, lockTracker());
    // Another step of the same workflow run (same run URL) took it over meanwhile: not ours any more.
    held.set('.d/stacks/a/lock', JSON.stringify({ token: 'other-step', ...holder }));
    await release();
    assert.ok(held.has('.d/stacks/a/lock'), 'released a lock another step holds');
  }));

test('lockStacks: a lock older than lock-stale-after is broken (its run died without a post step); a younger one is waited for', () =>
  withState(async () => {
    // The fake host reports every foreign lock as 5 s old.
    const young = fakeHost(['.d/stacks/a/lock']);
    await assert.rejects(
      lockStacks(young.remote, ['.d/stacks/a/lock'], holder, 0, lockTracker(), 10),
      /Another deploy holds the lock/,
    );
    assert.ok(!young.calls.some((c) => c.op === 'break'));
    const old = fakeHost(['.d/stacks/a/lock']);
    await lockStacks(old.remote, ['.d/stacks/a/lock'], holder, 0, lockTracker(), 3);
    assert.deepEqual(
      old.calls.map((c) => c.op),
      ['take', 'break', 'take'],
    );
  }));

/** A host that is this machine's own `sh`, with shims earlier on PATH that play the other deploy. */
function localShell(shims: Record<string, string>) {
  const host = new LocalShell('me@local', { keepHome: true, cwd: process.cwd() });
  for (const [name, body] of Object.entries(shims)) host.shim(name, body);
  return host;
}

function heldLock(): { dir: string; marker: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lock-race-'));
  const dir = path.join(root, 'stacks', 'web', 'lock');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'holder.json'),
    JSON.stringify({ token: 'other', run: 'r', actor: 'bob', release: '1', since: 'now' }),
  );
  return { dir, marker: path.join(root, 'released') };
}

// The holder releases between the waiter's failed mkdir and its look at the lock: a lock to retry, never an error.
for (const [what, shims] of [
  [
    'before the age is read (stat)',
    (m: string) => ({ stat: `[ -e ${m} ] || { touch ${m}; rm -rf "$3"; }\nexec /usr/bin/stat "$@"` }),
  ],
  [
    'right after mkdir failed',
    (m: string) => ({
      mkdir: `[ "$1" = -p ] || [ -e ${m} ] || { /bin/mkdir "$@"; s=$?; touch ${m}; rm -rf "$1"; exit $s; }\nexec /bin/mkdir "$@"`,
    }),
  ],
] as const) {
  test(`a lock released ${what} is taken, not an error`, async () => {
    const { dir, marker } = heldLock();
    const remote = localShell(shims(marker));
    await withState(async () => {
      const unlock = await lockStacks(
        remote,
        [dir],
        { run: 'r2', actor: 'alice', release: '2', since: 'now' },
        5,
        lockTracker(),
      );
      assert.ok(fs.existsSync(marker), 'the shim played the release');
      assert.match(fs.readFileSync(path.join(dir, 'holder.json'), 'utf8'), /"actor":"alice"/);
      await unlock();
      assert.ok(!fs.existsSync(dir));
    });
  });
}

// Another deploy is between its `mkdir` and writing its holder file (or half-way through `rm -rf`):
// a lock held by someone not yet named, to wait for; never an error that fails the run.
test('a lock whose holder file is not written yet is waited for, not an error', async () => {
  const { dir } = heldLock();
  fs.rmSync(path.join(dir, 'holder.json'));
  await withState(async () => {
    await assert.rejects(
      lockStacks(
        localShell({}),
        [dir],
        { run: 'r2', actor: 'alice', release: '2', since: 'now' },
        0,
        lockTracker(),
        3600,
      ),
      /Another deploy holds the lock .*unknown holder/,
    );
    assert.ok(fs.existsSync(dir), "the other deploy's lock is intact");
  });
});

// Two waiters find one stale lock: the first breaks it and takes it; the second must not remove that new lock.
test('a stale lock is broken only while it still carries the holder that was seen stale', async () => {
  const { dir, marker } = heldLock();
  const old = new Date(Date.now() - 7200_000);
  fs.utimesSync(dir, old, old);
  const fresh = JSON.stringify({ token: 'first-waiter', run: 'r3', actor: 'carol', release: '3', since: 'now' });
  // Right after this waiter read the stale lock's holder, the other waiter broke it and took it.
  const remote = localShell({
    cat: `/bin/cat "$@"; s=$?\nd=$(dirname "$1")\n[ -e ${marker} ] || { touch ${marker}; rm -rf "$d"; /bin/mkdir "$d"; printf '%s' '${fresh}' > "$d/holder.json"; }\nexit $s`,
  });
  await withState(async () => {
    await assert.rejects(
      lockStacks(remote, [dir], { run: 'r2', actor: 'alice', release: '2', since: 'now' }, 0, lockTracker(), 3600),
      /Another deploy holds the lock .*carol/,
    );
    assert.equal(
      fs.readFileSync(path.join(dir, 'holder.json'), 'utf8'),
      fresh,
      "the other waiter's new lock is intact",
    );
  });
});

// A lock left by a run that wrote no token (an older version of the action, or a person) must still be breakable.
test('a stale lock whose holder file has no token is broken and taken', async () => {
  const { dir } = heldLock();
  fs.writeFileSync(
    path.join(dir, 'holder.json'),
    JSON.stringify({ run: 'gone', actor: 'ghost', release: 'x', since: 'then' }),
  );
  const old = new Date(Date.now() - 7200_000);
  fs.utimesSync(dir, old, old);
  await withState(async () => {
    const unlock = await lockStacks(
      localShell({}),
      [dir],
      { run: 'r2', actor: 'alice', release: '2', since: 'now' },
      0,
      lockTracker(),
      3600,
    );
    assert.match(fs.readFileSync(path.join(dir, 'holder.json'), 'utf8'), /"actor":"alice"/);
    await unlock();
    assert.ok(!fs.existsSync(dir));
  });
});

// A breaker that died half-way must not make the lock unbreakable forever.
test('a stale lock with a leftover break marker from a dead breaker is still broken', async () => {
  const { dir } = heldLock();
  fs.mkdirSync(path.join(dir, '.breaking'));
  const old = new Date(Date.now() - 7200_000);
  fs.utimesSync(path.join(dir, '.breaking'), old, old);
  fs.utimesSync(dir, old, old);
  await withState(async () => {
    const unlock = await lockStacks(
      localShell({}),
      [dir],
      { run: 'r2', actor: 'alice', release: '2', since: 'now' },
      0,
      lockTracker(),
      3600,
    );
    assert.match(fs.readFileSync(path.join(dir, 'holder.json'), 'utf8'), /"actor":"alice"/);
    await unlock();
  });
});

function stateLocks(): { token: string; dirs: string[] } {
  const text = fs.readFileSync(process.env.GITHUB_STATE as string, 'utf8');
  const all = [...text.matchAll(/locks<<(\S+)\n([\s\S]*?)\n\1/g)].map((m) => m[2]);
  return JSON.parse(all[all.length - 1]);
}

test('a lock whose release failed stays in the saved state, for the post step', () =>
  withState(async () => {
    const { remote } = fakeHost();
    const unlock = await lockStacks(remote, ['.d/stacks/a/lock'], holder, 0, lockTracker());
    remote.answer({ sh: /./, reply: new Error('Lost the SSH connection to me@vps') });
    await unlock();
    assert.deepEqual(stateLocks().dirs, ['.d/stacks/a/lock']);
  }));

test('a take whose answer was lost stays in the saved state (the lock may exist on the host with our token)', () =>
  withState(async () => {
    const { remote, held } = fakeHost();
    // The take runs on the host, and its answer is lost; so is every later command.
    remote.answer(
      {
        sh: /LC_ALL=C mkdir/,
        reply: ({ text }) => {
          held.set('.d/stacks/a/lock', /printf '%s' '(\{.*?\})' >/.exec(text)?.[1] ?? '');
          throw new Error('Lost the SSH connection to me@vps: the remote shell closed');
        },
      },
      { sh: /./, reply: new Error('Lost the SSH connection to me@vps') },
    );
    await assert.rejects(lockStacks(remote, ['.d/stacks/a/lock'], holder, 0, lockTracker()), /Lost the SSH connection/);
    assert.deepEqual(stateLocks().dirs, ['.d/stacks/a/lock']);
  }));

test('HostLock.acquire: waits for a held lock every 2 s, says so once, and fails at its bound naming the holder', async () => {
  const clock = fakeClock(0);
  const { remote, calls, held } = fakeHost(['.d/stacks/a/lock']);
  const stop = captureStdout();
  let out = '';
  try {
    const lock = new HostLock(remote, '.d/stacks/a/lock', { token: 't', ...holder });
    await assert.rejects(lock.acquire(5, 3600, 2000, clock), /alice \(r, release 9, since now\)\. Waited 5 s/);
    // Tries at 0, 2, 4 and 6 s: the one past the bound fails.
    assert.deepEqual(clock.sleeps, [2000, 2000, 2000]);
    assert.equal(calls.length, 4);
    // The holder lets go: taken at the next try.
    const later = new HostLock(remote, '.d/stacks/a/lock', { token: 't', ...holder });
    const holderJson = held.get('.d/stacks/a/lock');
    let tries = 0;
    remote.answer({
      sh: /LC_ALL=C mkdir/,
      times: 1,
      reply: () => (tries++, `HELD\n5\n123 45\n${holderJson}\n`),
    });
    held.delete('.d/stacks/a/lock');
    await later.acquire(5, 3600, 2000, clock);
    assert.equal(tries, 1);
    assert.deepEqual(clock.sleeps, [2000, 2000, 2000, 2000]);
  } finally {
    out = stop();
  }
  assert.equal(out.match(/Waiting for the deploy lock/g)?.length, 2);
});
