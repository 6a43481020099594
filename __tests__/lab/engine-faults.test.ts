// Reliability under faults, attacks and bad input, on the real lab, through dist/index.js as the
// runner runs it: the Docker engine restarted and frozen during the gate. Every wait is bounded and
// waits on real state; the shared set-up, stack files and helpers are in reliability-suite.ts.
//
//   node --import tsx --test --test-reporter=spec __tests__/lab/engine-faults.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, run, waitFor } from '../helpers/lab';

import { startAction } from '../helpers/action';
import {
  SERVE,
  dirs,
  figure,
  secs,
  serve,
  keep,
  tail,
  lockPath,
  ledger,
  settled,
  versionOf,
  other,
  webVersion,
  act,
  useSuite,
  secretsScenario,
} from './reliability-suite';

// The serving stack the engine faults interrupt: 1.0.0 deployed and settled first.
useSuite(['1.0.0', '1.1.0'], async () => {
  const first = await act('serve 1.0.0', serve({ command: 'deploy', release: '1.0.0' }), dirs['1.0.0']);
  assert.equal(first.code, 0, tail(first));
  await webVersion();
});

// ------------------------------------------------------------------ 2c. engine restart

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The pid of the dockerd this checkout's lab started, or 0 with the test skipped. */
function ownEngine(t: { skip: (why: string) => void }): number {
  const pidFile = path.join(REPO_ROOT, 'lab', '.state', 'dockerd.pid');
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : 0;
  if (pid && alive(pid)) return pid;
  // Stopping an engine this checkout's lab did not start would pull it from under whoever did.
  t.skip("dockerd was not started by this checkout's lab (lab/.state/dockerd.pid)");
  return 0;
}

test(
  '2c. the Docker engine restarts during the gate: no success it did not see, lock released, the stack whole',
  { timeout: 400_000 },
  async (t) => {
    const pid = ownEngine(t);
    if (!pid) return;
    const from = await webVersion();
    const to = other(from);
    const inputs = serve({ command: 'deploy', release: `engine-restart-${to}`, stability: '5', timeout: '75' });
    const live = startAction({ inputs, cwd: dirs[to] });
    await live.waitLine(/Gate: watching/, 90_000);
    const down = Date.now();
    process.kill(pid, 'SIGTERM');
    await waitFor(async () => !alive(pid), { timeoutMs: 90_000, intervalMs: 200, what: 'dockerd to exit' });
    const stopped = Date.now() - down;
    const up = await run('bash', [path.join(REPO_ROOT, 'lab', 'lab.sh'), 'up'], { timeoutMs: 180_000 });
    assert.equal(up.code, 0, `lab.sh up after the restart: ${up.stderr.slice(-2000)}`);
    const outage = Date.now() - down;
    const r = keep('engine restart', inputs, await live.finish(300_000));
    // Whatever the verdict, Swarm must end whole, and the verdict must match what runs.
    const version = versionOf((await settled(`${SERVE}_web`, 180_000)).image);
    const last = ledger(SERVE).slice(-1)[0];
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held');
    assert.match(r.log, /Cannot read the Swarm state/, 'the gate did not notice the engine going away');
    if (r.outputs.result === 'deployed') {
      assert.equal(r.code, 0, tail(r));
      assert.equal(version, to, 'reported deployed, but the old version runs');
    } else {
      assert.notEqual(r.code, 0);
      assert.ok(r.errors.length > 0, 'failed without an error message');
      if (r.outputs.result === 'rolled-back')
        assert.equal(version, from, 'reported rolled back, but the new version runs');
    }
    assert.equal(last.release, `engine-restart-${to}`);
    assert.equal(last.result, r.outputs.result, 'the ledger disagrees with the outputs');
    const why = r.outputs.result === 'deployed' ? '' : `: "${r.errors[0].replace(/\s*\n\s*/g, ' / ').slice(0, 200)}"`;
    figure({
      n: '2c',
      scenario: `Docker engine stopped (SIGTERM) at "Gate: watching" and started again (down ${secs(stopped)} to exit, ${secs(outage)} until it answered)`,
      happened: `${r.outputs.result}${why}; web runs ${version} on every replica; lock released; ledger says ${last.result}`,
      time: secs(r.durationMs),
    });
  },
);

// ------------------------------------------------------------------ 4b. engine frozen

test(
  "4b. the Docker engine freezes (SIGSTOP) during the gate: the gate's timeout still fires, the lock is released, the stack whole",
  { timeout: 300_000 },
  async (t) => {
    const pid = ownEngine(t);
    if (!pid) return;
    const from = await webVersion();
    const to = other(from);
    const inputs = serve({ command: 'deploy', release: `engine-frozen-${to}`, stability: '5', timeout: '20' });
    const live = startAction({ inputs, cwd: dirs[to] });
    await live.waitLine(/Gate: watching/, 90_000);
    const frozen = Date.now();
    process.kill(pid, 'SIGSTOP');
    let verdictAfter = 0;
    try {
      // Without a bound on each read the poll waits for the engine forever and this never comes; the
      // reads that only explain the failure (the nodes, a log tail) must not hold the verdict up either.
      // The bound: the gate's 20 s, one poll's own bound (15 s), and a margin.
      await live.waitLine(/could not read the Swarm state before the timeout|not healthy within the timeout/, 45_000);
      verdictAfter = Date.now() - frozen;
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const r = keep('engine frozen', inputs, await live.finish(300_000));
    const version = versionOf((await settled(`${SERVE}_web`, 180_000)).image);
    const last = ledger(SERVE).slice(-1)[0];
    assert.notEqual(r.code, 0);
    assert.ok(['rolled-back', 'failed'].includes(r.outputs.result), r.outputs.result);
    assert.match(r.log, /did not answer within/);
    assert.ok(!fs.existsSync(lockPath(SERVE)), 'the lock is still held');
    if (r.outputs.result === 'rolled-back')
      assert.equal(version, from, 'reported rolled back, but the new version runs');
    assert.equal(last.result, r.outputs.result, 'the ledger disagrees with the outputs');
    figure({
      n: '4b',
      scenario:
        'Docker engine frozen (SIGSTOP) at "Gate: watching", gate timeout 20 s; resumed (SIGCONT) once the gate gave its verdict',
      happened: `gate verdict ${secs(verdictAfter)} after the freeze (polls bounded, "did not answer within"); ${r.outputs.result}; web runs ${version}; lock released; ledger says ${last.result}`,
      time: secs(r.durationMs),
    });
  },
);

secretsScenario(3);
