import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../../src/errors';
import {
  Ledger,
  ReleaseRecord,
  available,
  currentRelease,
  findTarget,
  parseLedger,
  pruneLedger,
  readLedger,
  saveRecord,
  stackDir,
} from '../../src/ledger';
import { RecordingShell } from '../helpers/host';

let seq = 0;
function rec(release: string, p: Partial<ReleaseRecord> = {}): ReleaseRecord {
  seq++;
  const dir = `.deploy-action/stacks/app/releases/20240101T0000${String(seq).padStart(2, '0')}Z-${release}`;
  return {
    id: dir.split('/').pop() as string,
    release,
    kind: 'deploy',
    result: 'deployed',
    time: new Date(Date.UTC(2024, 0, 1, 0, seq)).toISOString(),
    dir,
    composePaths: ['stack/app.yml'],
    versions: { web: release, api: '2.0.0' },
    images: {},
    watch: [{ name: 'app_web', expectedImage: `web:${release}`, stabilityMs: 10_000 }],
    sha: 'abc',
    ref: 'refs/heads/main',
    actor: 'me',
    runUrl: 'https://example/run',
    ...p,
  };
}

const ledger = (...releases: ReleaseRecord[]): Ledger => ({ version: 1, stack: 'app', releases });

/** A rollback record as runLayer writes it: the target's label and folder, kind rollback. */
const rollbackTo = (target: ReleaseRecord, p: Partial<ReleaseRecord> = {}) =>
  rec(target.release, { kind: 'rollback', dir: target.dir, versions: target.versions, ...p });

function inputError(fn: () => unknown, ...res: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `an InputError, got ${String(e)}`);
    for (const re of res) assert.match(e.message, re);
    return true;
  });
}

// ---------- parseLedger ----------

test('parseLedger: a ledger round-trips', () => {
  const l = ledger(rec('1.0.0'), rec('1.1.0'));
  assert.deepEqual(parseLedger(JSON.stringify(l, null, 2) + '\n', 'vps:~/x/ledger.json', 'app'), l);
  assert.deepEqual(parseLedger('{"version":1,"stack":"app","releases":[]}', 'f', 'app').releases, []);
});

test('parseLedger: garbage and truncated JSON are an InputError that says corrupt and that nothing was changed', () => {
  const full = JSON.stringify(ledger(rec('1.0.0')), null, 2);
  for (const text of ['garbage', '', full.slice(0, full.length / 2), '{"version":1,', '\u0000\u0001']) {
    inputError(
      () => parseLedger(text, 'vps:.deploy-action/stacks/app/ledger.json', 'app'),
      /corrupt/,
      /Nothing was changed/,
      /vps:\.deploy-action\/stacks\/app\/ledger\.json/,
      /stack "app"/,
    );
  }
});

test('parseLedger: valid JSON that is not a version-1 ledger is refused and nothing is changed', () => {
  for (const text of [
    'null',
    '[]',
    '42',
    '"x"',
    '{}',
    '{"version":2,"stack":"app","releases":[]}',
    '{"version":"1","stack":"app","releases":[]}',
    '{"version":1,"stack":"app","releases":{}}',
  ]) {
    inputError(() => parseLedger(text, 'vps:f', 'app'), /Nothing was changed/, /vps:f/, /version 1/);
  }
});

test('parseLedger: the wrong-version message says corrupt like the others', () => {
  inputError(() => parseLedger('{"version":2,"stack":"app","releases":[]}', 'vps:f', 'app'), /corrupt/);
});

test('stackDir: per-stack folder under remote-dir', () => {
  assert.equal(stackDir('.deploy-action', 'app'), '.deploy-action/stacks/app');
  assert.equal(stackDir('/srv/d', 'infra'), '/srv/d/stacks/infra');
});

// ---------- currentRelease ----------

test('currentRelease: the newest record that deployed, rollbacks included', () => {
  const a = rec('1.0');
  const b = rec('1.1');
  const c = rec('1.2', { result: 'rolled-back' });
  assert.equal(currentRelease(ledger(a, b, c)), b);
  const r = rollbackTo(a);
  assert.equal(currentRelease(ledger(a, b, c, r)), r);
  assert.equal(currentRelease(ledger(rec('x', { result: 'failed' }))), undefined);
  assert.equal(currentRelease(ledger()), undefined);
});

// ---------- findTarget: previous ----------

test('findTarget previous: the release before the current one', () => {
  const v10 = rec('1.0');
  const v11 = rec('1.1');
  const v12 = rec('1.2');
  assert.equal(findTarget(ledger(v10, v11, v12), 'previous'), v11);
});

test('findTarget previous: two rollbacks in a row walk back 1.2 → 1.1 → 1.0', () => {
  const v10 = rec('1.0');
  const v11 = rec('1.1');
  const v12 = rec('1.2');
  const back1 = rollbackTo(v11);
  assert.equal(findTarget(ledger(v10, v11, v12, back1), 'previous'), v10);
  const back2 = rollbackTo(v10);
  inputError(
    () => findTarget(ledger(v10, v11, v12, back1, back2), 'previous'),
    /no release before 1\.0/,
    /Known releases, newest first \(UTC\):\n {2}1\.0: web 1\.0 — 2024-01-01 \d\d:\d\d \(rolled back to, current\)\n {2}1\.1: web 1\.1 — 2024-01-01 \d\d:\d\d \(rolled back to\)\n {2}1\.2: web 1\.2 — 2024-01-01 \d\d:\d\d$/,
  );
});

test('findTarget previous: failed and rolled-back records are skipped', () => {
  const v10 = rec('1.0');
  const v11 = rec('1.1');
  const bad = rec('1.2', { result: 'rolled-back' });
  const worse = rec('1.3', { result: 'failed' });
  // 1.1 still runs: its previous is 1.0, not the failed releases after it.
  assert.equal(findTarget(ledger(v10, v11, bad, worse), 'previous'), v10);
  // A failed release in the middle of history is stepped over.
  const v14 = rec('1.4');
  assert.equal(findTarget(ledger(v10, v11, bad, worse, v14), 'previous'), v11);
  // A failed rollback record does not move "current".
  assert.equal(findTarget(ledger(v10, v11, v14, rollbackTo(v11, { result: 'failed' })), 'previous'), v11);
});

test('findTarget previous: a release deployed twice in a row is one step', () => {
  const v10 = rec('1.0');
  const v11 = rec('1.1');
  const again = rec('1.1');
  assert.equal(findTarget(ledger(v10, v11, again), 'previous'), v10);
});

test('findTarget previous: with a single release, or none, a clear error', () => {
  inputError(
    () => findTarget(ledger(rec('1.0')), 'previous'),
    /Stack "app" has no release before 1\.0 on record/,
    /\n {2}1\.0: web 1\.0 — 2024-01-01 \d\d:\d\d \(current\)$/,
  );
  inputError(
    () => findTarget(ledger(), 'previous'),
    /Stack "app" has no successful release on record to roll back from/,
  );
  inputError(
    () => findTarget(ledger(rec('1.0', { result: 'failed' }), rec('1.1', { result: 'rolled-back' })), 'previous'),
    /no successful release/,
  );
});

// ---------- findTarget: by label or version ----------

test('findTarget: an explicit release label, with or without v', () => {
  const v10 = rec('1.0.0');
  const v11 = rec('1.1.0');
  const l = ledger(v10, v11);
  assert.equal(findTarget(l, '1.0.0'), v10);
  assert.equal(findTarget(l, 'v1.0.0'), v10);
  assert.equal(findTarget(l, '1.1.0'), v11);
});

test('findTarget: a label is found even when it is not a version (sha-…), newest record first', () => {
  const a = rec('sha-abc1234', { versions: { web: '3.0.0' } });
  const b = rec('sha-def5678', { versions: { web: '3.0.1' } });
  const a2 = rec('sha-abc1234', { versions: { web: '3.0.0' } });
  assert.equal(findTarget(ledger(a, b, a2), 'sha-abc1234'), a2);
});

test('findTarget: a service version finds the newest release that ran it', () => {
  const a = rec('sha-1111111', { versions: { web: '1.4.1', api: '2.0.0' } });
  const b = rec('sha-2222222', { versions: { web: '1.4.2', api: '2.0.0' } });
  const c = rec('sha-3333333', { versions: { web: '1.5.0', api: '2.1.0' } });
  const l = ledger(a, b, c);
  assert.equal(findTarget(l, '1.4.1'), a);
  assert.equal(findTarget(l, 'v1.4.2'), b);
  assert.equal(findTarget(l, '2.0.0'), b, 'the newest of the releases with api 2.0.0');
});

test('findTarget: a label wins over a service version', () => {
  const byVersion = rec('sha-1111111', { versions: { web: '2.0' } });
  const byLabel = rec('2.0', { versions: { web: '9' } });
  const newer = rec('sha-3333333', { versions: { web: '2.0' } });
  assert.equal(findTarget(ledger(byVersion, byLabel, newer), '2.0'), byLabel);
});

test('findTarget: failed and rolled-back releases cannot be targets', () => {
  const v10 = rec('1.0.0');
  const bad = rec('1.1.0', { result: 'rolled-back' });
  const worse = rec('1.2.0', { result: 'failed' });
  inputError(
    () => findTarget(ledger(v10, bad, worse), '1.1.0'),
    /no successful release "1\.1\.0"/,
    /:\n {2}1\.0\.0: web 1\.0\.0 — 2024-01-01 \d\d:\d\d \(current\)$/,
  );
  inputError(
    () => findTarget(ledger(v10, bad, worse), '1.2.0'),
    /:\n {2}1\.0\.0: web 1\.0\.0 — 2024-01-01 \d\d:\d\d \(current\)$/,
  );
});

test('findTarget: an unknown version is an InputError listing the known releases once each, newest first', () => {
  const l = ledger(rec('1.0.0'), rec('1.1.0'), rec('1.0.0'), rec('1.2.0', { result: 'failed' }));
  inputError(
    () => findTarget(l, '9.9.9'),
    /Stack "app" has no successful release "9\.9\.9" on record/,
    /:\n {2}1\.0\.0: web 1\.0\.0 — 2024-01-01 \d\d:\d\d \(current\)\n {2}1\.1\.0: web 1\.1\.0 — 2024-01-01 \d\d:\d\d$/,
  );
  inputError(() => findTarget(ledger(), '1.0.0'), /No release on record\./);
});

test('findTarget: a service version written with a v in its VERSION file is found by that exact text', () => {
  const a = rec('sha-1111111', { versions: { web: 'v2.0.0' } });
  const b = rec('sha-2222222', { versions: { web: 'v2.1.0' } });
  assert.equal(findTarget(ledger(a, b), 'v2.0.0'), a);
});

test('findTarget previous: a run interrupted after docker stack deploy (still `started`) counts as what may be running', () => {
  const l: Ledger = {
    version: 1,
    stack: 'app',
    releases: [rec('1.0.0'), rec('1.1.0'), rec('1.2.0', { result: 'started' })],
  };
  // Swarm may have finished rolling 1.2.0 out: undoing it means going to 1.1.0, not 1.0.0.
  assert.equal(findTarget(l, 'previous').release, '1.1.0');
  // A started record is never a target itself.
  assert.throws(() => findTarget(l, '1.2.0'), /no successful release "1\.2\.0"/);
});

// ---------- pruneLedger ----------

test('pruneLedger: keeps the newest `keep` releases that deployed, and the failed attempts since the oldest of them', () => {
  const a = rec('1.0.0');
  const b = rec('1.1.0');
  const c = rec('1.2.0', { result: 'rolled-back' });
  const d = rec('1.3.0', { result: 'failed' });
  const e = rec('1.4.0');
  const { ledger: l, dropped } = pruneLedger(ledger(a, b, c, d, e), 2);
  assert.deepEqual(
    l.releases.map((r) => r.release),
    ['1.1.0', '1.2.0', '1.3.0', '1.4.0'],
  );
  assert.deepEqual(dropped, [a.dir]);
  // Failed attempts never push the last good release out: a rollback still has somewhere to go.
  assert.equal(findTarget(l, 'previous').release, '1.1.0');
});

test('pruneLedger: a rollback record shares its target folder; nothing kept twice or dropped while used', () => {
  const a = rec('1.0.0');
  const b = rec('1.1.0');
  const back = rollbackTo(a);
  const { ledger: l, dropped } = pruneLedger(ledger(a, b, back), 1);
  // The newest deployed record is the rollback to a: a's folder stays, b's goes.
  assert.deepEqual(
    l.releases.map((r) => `${r.release}:${r.kind}`),
    ['1.0.0:deploy', '1.0.0:rollback'],
  );
  assert.deepEqual(dropped, [b.dir]);
});

test('pruneLedger: a shipped file folder stays while any kept record uses it, and goes with the last one', () => {
  const [h1, h2, h3] = ['1111111111111111', '2222222222222222', '3333333333333333'];
  const a = rec('1.0.0', { files: [h1] });
  const b = rec('1.1.0', { files: [h1, h2] });
  const c = rec('1.2.0', { files: [h3], result: 'failed' });
  const d = rec('1.3.0', { files: [h2] });
  // Keep 2: b and d (and the failed c between them). h1 is still used by b; nothing uses only a's.
  assert.deepEqual(pruneLedger(ledger(a, b, c, d), 2).droppedFiles, []);
  // Keep 1: d only. h1 (a, b) and h3 (the failed attempt) go; h2 stays with d.
  assert.deepEqual(pruneLedger(ledger(a, b, c, d), 1).droppedFiles.sort(), [h1, h3]);
  // A rollback record to a uses a's files: they stay.
  assert.deepEqual(pruneLedger(ledger(a, b, d, rollbackTo(a, { files: [h1] })), 1).droppedFiles, [h2]);
});

test("available: each release with its services' versions and time, newest first, not labels alone", () => {
  const watch = (web: string, api: string) => [
    { name: 'shop_web', expectedImage: `registry.example.com/shop/web:${web}`, stabilityMs: 0 },
    {
      name: 'shop_api',
      expectedImage: `registry.example.com/shop/api:${api}@sha256:${'a'.repeat(64)}`,
      stabilityMs: 0,
    },
  ];
  const l: Ledger = {
    version: 1,
    stack: 'shop',
    releases: [
      rec('sha-1a2b3c4', { time: '2026-11-30T09:15:00.000Z', watch: watch('1.9.0', '1.0.0') }),
      rec('sha-05e17b6', { time: '2026-12-01T14:02:31.000Z', watch: watch('2.0.0', '1.1.0') }),
      rec('sha-9999999', { time: '2026-12-02T08:00:00.000Z', watch: watch('2.1.0', '1.1.0'), result: 'rolled-back' }),
    ],
  };
  assert.equal(
    available(l),
    'Known releases, newest first (UTC):\n  sha-05e17b6: api 1.1.0, web 2.0.0 — 2026-12-01 14:02 (current)\n  sha-1a2b3c4: api 1.0.0, web 1.9.0 — 2026-11-30 09:15',
  );
  inputError(
    () => findTarget(l, 'sha-0000000'),
    /no successful release "sha-0000000" on record\. Known releases, newest first \(UTC\):\n {2}sha-05e17b6: api 1\.1\.0, web 2\.0\.0 — 2026-12-01 14:02 \(current\)\n {2}sha-1a2b3c4: api 1\.0\.0, web 1\.9\.0 — 2026-11-30 09:15$/,
  );
  // A record without services (hand-edited) falls back to the run's versions.
  assert.match(
    available({ version: 1, stack: 'shop', releases: [rec('x', { watch: [], versions: { b: '2', a: '1' } })] }),
    /\n {2}x: a 1, b 2 — /,
  );
  assert.equal(available({ version: 1, stack: 'shop', releases: [] }), 'No release on record.');
});

test('readLedger: a stack never deployed has no ledger; a read that fails names the host and the file', async () => {
  const host = new RecordingShell([{ sh: /ledger\.json/, times: 1, reply: '@@none@@\n' }]);
  assert.equal(await readLedger(host, '.deploy-action', 'app'), null);
  assert.deepEqual(host.calls[0].opts, { retry: true });
  host.answer({ sh: /ledger\.json/, reply: { code: 1, stdout: '', stderr: 'Permission denied' } });
  await assert.rejects(
    readLedger(host, '.deploy-action', 'app'),
    /^Error: me@vps: cannot read \.deploy-action\/stacks\/app\/ledger\.json: Permission denied$/,
  );
});

test('saveRecord: the ledger is written whole, then the folders and shipped files of pruned releases go, quoted', async () => {
  const old = rec('1.0.0', { dir: '/srv/a b/releases/r1;$(x)', files: ['0123456789abcdef'] });
  const kept = rec('1.1.0');
  const host = new RecordingShell([{ run: ['rm', '-rf', '--'] }, { sh: /^chmod -R u\+w / }]);
  const saved = await saveRecord(host, '/srv', 'app', { version: 1, stack: 'app', releases: [old] }, kept, 1);
  assert.deepEqual(
    saved.releases.map((r) => r.release),
    ['1.1.0'],
  );
  assert.deepEqual(
    host.calls.map((c) => c.kind),
    ['write', 'run', 'sh'],
  );
  assert.equal(host.calls[0].text, '/srv/stacks/app/ledger.json');
  assert.deepEqual(JSON.parse(String(host.calls[0].content)).releases, [kept]);
  assert.deepEqual(host.calls[1].argv, ['rm', '-rf', '--', '/srv/a b/releases/r1;$(x)']);
  assert.equal(
    host.calls[2].text,
    'chmod -R u+w /srv/stacks/app/files/0123456789abcdef 2>/dev/null; rm -rf /srv/stacks/app/files/0123456789abcdef',
  );
});
