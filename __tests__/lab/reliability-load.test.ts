// Reliability under faults, attacks and bad input, on the real lab, through dist/index.js as the
// runner runs it: concurrent deploys, scale, a late failure inside the layer gate. Every wait is
// bounded and waits on real state; the shared set-up, stack files and helpers are in reliability-
// suite.ts.
//
//   node --import tsx --test --test-reporter=spec __tests__/lab/reliability-load.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { docker, dockerOk, removeStack } from '../helpers/lab';

import { readText, startAction } from '../helpers/action';
import {
  own,
  LOCK,
  SCALE,
  REGRESS,
  dirs,
  figure,
  secs,
  BASE,
  SCALE_N,
  SCALE_HEALTHY,
  common,
  viaOwn,
  keep,
  act,
  tail,
  ledger,
  useSuite,
  secretsScenario,
} from './reliability-suite';

useSuite(['1.0.0']);

// ------------------------------------------------------------------ 10. concurrent deploys

test(
  '10. two deploys of one stack at the same instant, 5 times in a row: never interleaved',
  { timeout: 400_000 },
  async () => {
    const ROUNDS = 5;
    const lockInputs = (release: string, stamp: string, extra: Record<string, string> = {}) =>
      common({
        command: 'deploy',
        stacks: `${LOCK}=stacks/lock.yml`,
        release,
        env: `BASE_IMAGE=${BASE()}\nSTAMP=${stamp}`,
        stability: '0',
        'keep-releases': '30',
        ...extra,
      });
    const startedAt = Date.now();
    const waits: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      const ia = lockInputs(`lock-${i}a`, `${i}a`);
      const ib = lockInputs(`lock-${i}b`, `${i}b`);
      const A = startAction({ inputs: ia, cwd: dirs['1.0.0'] });
      const B = startAction({ inputs: ib, cwd: dirs['1.0.0'] });
      const [ra, rb] = await Promise.all([A.finish(120_000), B.finish(120_000)]);
      keep(`lock ${i}a`, ia, ra);
      keep(`lock ${i}b`, ib, rb);
      for (const r of [ra, rb]) assert.equal(r.code, 0, tail(r));
      const waited = [ra, rb].filter((r) => /Waiting for the deploy lock/.test(r.log));
      assert.equal(waited.length, 1, `round ${i}: ${waited.length} run(s) logged "Waiting for the deploy lock"`);
      const second = waited[0];
      const first = second === ra ? rb : ra;
      // The first run's gate ended (its last gate line) before the second one's docker stack deploy printed anything.
      const firstGateEnd = [...first.lines].reverse().find((l) => /^\s+\S+: stable:/.test(l.text))!;
      const secondDeploy = second.lines.find((l) => /^(Updating|Creating) service/.test(l.text))!;
      assert.ok(firstGateEnd && secondDeploy, `round ${i}: lines not found`);
      assert.ok(
        secondDeploy.t > firstGateEnd.t,
        `round ${i}: the second deploy started before the first one's gate ended`,
      );
      const wait = second.lines.find((l) => /Waiting for the deploy lock/.test(l.text))!;
      waits.push(secondDeploy.t - wait.t);
    }
    const rec = ledger(LOCK);
    assert.equal(rec.length, 2 * ROUNDS);
    for (let i = 1; i < rec.length; i++) assert.ok(rec[i].time > rec[i - 1].time, 'ledger records out of order');
    for (let i = 0; i < ROUNDS; i++) {
      const pair = rec
        .slice(2 * i, 2 * i + 2)
        .map((x) => x.release)
        .sort();
      assert.deepEqual(
        pair,
        [`lock-${i + 1}a`, `lock-${i + 1}b`],
        `round ${i + 1}: ledger ${rec.map((x) => x.release).join(', ')}`,
      );
    }
    figure({
      n: '10',
      scenario: `two deploys of one stack at the same instant, ${ROUNDS} rounds (lock-timeout 120)`,
      happened: `${2 * ROUNDS}/${2 * ROUNDS} deployed; in each round one logged "Waiting for the deploy lock" and started its docker stack deploy after the other's gate ended (waited ${secs(Math.min(...waits))}–${secs(Math.max(...waits))}); ledger: ${2 * ROUNDS} records, one after the other`,
      time: secs(Date.now() - startedAt),
    });

    // lock-timeout 0, both at the same instant: exactly one deploys, the other fails at once naming the holder.
    const i0 = lockInputs('lock-0a', '0a', { 'lock-timeout': '0' });
    const j0 = lockInputs('lock-0b', '0b', { 'lock-timeout': '0' });
    const A = startAction({ inputs: i0, cwd: dirs['1.0.0'] });
    const B = startAction({ inputs: j0, cwd: dirs['1.0.0'] });
    const [ra, rb] = await Promise.all([A.finish(120_000), B.finish(120_000)]);
    keep('lock 0a', i0, ra);
    keep('lock 0b', j0, rb);
    const winners = [ra, rb].filter((r) => r.code === 0);
    const losers = [ra, rb].filter((r) => r.code !== 0);
    assert.equal(winners.length, 1, `${winners.length} of 2 deployed:\n${tail(ra)}\n---\n${tail(rb)}`);
    assert.match(
      losers[0].errors.join('\n'),
      /Another deploy holds the lock .*\/lock on root@\[127\.0\.0\.1\]:\d+: glasck \(https:\/\/github\.com\/glasck\/example\/actions\/runs\/\d+, release lock-0[ab], since .*\)\. Waited 0 s \(input lock-timeout\)/,
    );
    assert.ok(losers[0].durationMs < winners[0].durationMs, 'the loser did not fail at once');
    assert.doesNotMatch(losers[0].postLog, /Released the deploy lock/);
    assert.equal(ledger(LOCK).length, 2 * ROUNDS + 1);
    figure({
      n: '10',
      scenario: 'the same with lock-timeout 0',
      happened: `one deployed; the other failed in ${secs(losers[0].durationMs)}: "${losers[0].errors[0].replace(/https:\/\/\S+/, '<run url>').slice(0, 150)}"; its post step left the winner's lock alone`,
      time: secs(winners[0].durationMs),
    });
  },
);

// ------------------------------------------------------------------ 11. scale

/** The commands the persistent shell received (own sshd's tee), split at the marker trailer, shell quoting removed. */
function shellCommands(): string[] {
  const text = fs.existsSync(own.shellLog) ? fs.readFileSync(own.shellLog, 'utf8') : '';
  return text
    .split(/; printf '\\n%s\\n' \S+ >&2\n/)
    .filter((c) => c.trim())
    .map((c) => c.replace(/\\/g, ''));
}

test(
  `11. scale: ${SCALE_N} services × 2 replicas deploy and gate; the polls are requests over one Engine API connection`,
  { timeout: 360_000 },
  async () => {
    fs.writeFileSync(own.shellLog, '');
    const startedAt = Date.now();
    const r = await act(
      'scale',
      common({
        ...viaOwn(),
        command: 'deploy',
        stacks: `${SCALE}=stacks/scale.yml`,
        release: 'scale',
        stability: '2',
        timeout: '240',
      }),
      dirs['1.0.0'],
      320_000,
    );
    assert.equal(r.code, 0, tail(r));
    assert.equal(r.outputs.result, 'deployed');
    // The gate's verdict, with the replicas of its last snapshot.
    const rows = r.summary.split('\n').filter((l) => l.startsWith(`| ${SCALE} |`));
    assert.equal(rows.length, SCALE_N, r.summary);
    assert.ok(
      rows.every((l) => /\| \d\/2 \| healthy \|/.test(l)),
      rows.join('\n'),
    );
    const short = rows.filter((l) => !/\| 2\/2 \|/.test(l)).length;
    // Tasks that ended since (a healthcheck timing out under this load, for one) are counted, not hidden.
    // (docker stack ps exits 1 when the filter matches nothing.)
    const endedIds = (
      await docker(['stack', 'ps', SCALE, '-q', '--no-trunc', '--filter', 'desired-state=shutdown'])
    ).stdout
      .trim()
      .split('\n')
      .filter(Boolean);
    const ended = endedIds.length
      ? (
          await dockerOk([
            'inspect',
            '--type',
            'task',
            '--format',
            '{{.Status.State}}|{{.Status.Timestamp}}|{{.Status.Err}}',
            ...endedIds,
          ])
        )
          .trim()
          .split('\n')
      : [];
    // The polls are Engine API requests over one connection, the engine's socket forwarded by sshd:
    // no remote command, no process on the host (not even a dial-stdio).
    const dials = readText(own.execLog)
      .split('\n')
      .filter((l) => /^@@exec (\d+)@@ .*dial-stdio/.exec(l) && Number(/^@@exec (\d+)@@/.exec(l)![1]) >= startedAt);
    assert.equal(dials.length, 0, `a dial-stdio ran for the Engine API:\n${dials.join('\n')}`);
    assert.ok(
      !shellCommands().some((c) => /dial-stdio|docker (service|inspect|stack ps)/.test(c)),
      'the persistent shell received a Swarm read: the gate polled through it',
    );
    const logged = /Gate: (\d+) polls in [\d.]+ s \(\d+ remote commands and (\d+) Engine API requests/.exec(r.log);
    assert.ok(logged, 'the gate did not log its polls and requests');
    const polls = Number(logged[1]);
    const requests = Number(logged[2]);
    // Two per poll, two for the snapshot taken before the deploy, the pre-flight's three (/info, read
    // once by the connect: the node's id and address; /configs, /nodes), and the registry look-up of the one
    // image (/distribution); a read that failed under load adds its own.
    const failedReads = /Cannot read the Swarm state/.test(r.log);
    const expected = 2 * polls + 2 + 3 + 1;
    assert.ok(failedReads ? requests > expected : requests === expected, `${requests} requests for ${polls} polls`);
    const gateLine = r.lines.find((l) => /Gate: watching/.test(l.text))!;
    const stableLine = [...r.lines].reverse().find((l) => /: stable:/.test(l.text))!;
    figure({
      n: '11',
      scenario: `scale: ${SCALE_N} services × 2 replicas (busybox, ${SCALE_HEALTHY} of them with a healthcheck every 10 s), first deploy`,
      happened: `deployed, ${SCALE_N - short}/${SCALE_N} services 2/2 in the gate's last snapshot${short ? ` (${short} at 1/2 yet "healthy": see 11b)` : ''}; gate ${secs(stableLine.t - gateLine.t)} (stability 2 s), ${polls} polls (${((stableLine.t - gateLine.t) / polls / 1000).toFixed(1)} s each on average), ${requests} Engine API requests over 1 connection (the engine's socket, forwarded by sshd), no remote command per poll${ended.length ? `; then ${ended.length} task(s) ended ${ended.map((e) => secs(Date.parse(e.split('|')[1]) - stableLine.t)).join(', ')} after the verdict (${[...new Set(ended.map((e) => `${e.split('|')[0]}: ${e.split('|')[2]}`))].join('; ').slice(0, 120)})` : ''}`,
      time: secs(r.durationMs),
    });
    const t0 = Date.now();
    await removeStack(SCALE, { timeoutMs: 120_000 });
    figure({
      n: '11',
      scenario: `scale: docker stack rm of the ${SCALE_N * 2} tasks (clean-up)`,
      happened: 'removed',
      time: secs(Date.now() - t0),
    });
  },
);

test(
  '11b. a service that fails after its own stability window while the layer gate is still open',
  { timeout: 120_000 },
  async () => {
    const r = await act(
      'regress',
      common({
        command: 'deploy',
        stacks: `${REGRESS}=stacks/regress.yml`,
        release: 'regress',
        stability: '2',
        timeout: '60',
      }),
      dirs['1.0.0'],
    );
    // The scenario did what it says: fast was stable, then failed while the gate was still open.
    const stableAt = r.lines.find((l) => new RegExp(`${REGRESS}_fast: stable:`).test(l.text));
    const failedAt = r.lines.find((l) => new RegExp(`${REGRESS}_fast: failed:`).test(l.text));
    assert.ok(stableAt, `fast never became stable:\n${tail(r)}`);
    assert.ok(failedAt && failedAt.t > stableAt.t, 'fast did not fail after it was stable');
    // The layer verdict covers services already declared stable: fast's crash fails the deploy, with
    // the task that failed; the new services of the failed layer are removed.
    assert.notEqual(r.code, 0);
    assert.equal(
      r.outputs.result,
      'rolled-back',
      `the layer was reported ${r.outputs.result} although fast failed while its gate was open`,
    );
    assert.match(r.log, new RegExp(`${REGRESS}_fast: [^\\n]*failed[^\\n]*%0A    task \\w+ \\(slot \\d+\\) failed`));
    assert.match(r.log, new RegExp(`Removed the service\\(s\\) this release created: .*${REGRESS}_fast`));
    const failedDuringGate = ((failedAt.t - stableAt.t) / 1000).toFixed(1);
    figure({
      n: '11b',
      scenario: 'one service stable, then crashing, while another one of the layer is still starting (new stack)',
      happened: `${r.outputs.result}; \`fast\` failed ${failedDuringGate} s after it was declared stable, before the layer's verdict; both new services removed`,
      time: secs(r.durationMs),
    });
    await removeStack(REGRESS, { timeoutMs: 60_000 });
  },
);

secretsScenario(3);
