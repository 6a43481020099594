// Pre-flight checks on the real path (issue 4): a stack with an error is refused before anything
// reaches the host; `command: check` runs the checks alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { runAction } from '../helpers/action';
import { LabEnv, copyExample, docker, removeStack, requireLab, run, uniqueName, waitFor } from '../helpers/lab';
import { baseInputs, exampleStacks, onHost } from './common';

const ex = exampleStacks('pf');
let lab: LabEnv;
let inputs: Record<string, string>;
const remoteDir = `.deploy-action-test-${uniqueName('pf')}`;

before(async () => {
  lab = await requireLab();
  inputs = baseInputs(lab, remoteDir, uniqueName('e2e-pf'), 'pf');
});

after(async () => {
  await onHost(lab, `rm -rf ${remoteDir}`);
});

/** Sets the MTU of the example's `edge` overlay network to 1500 (no room for VXLAN's 50 bytes); returns the line of the MTU. */
function raiseEdgeMtu(dir: string): number {
  const infra = path.join(dir, 'stacks', 'infra.yml');
  const text = fs.readFileSync(infra, 'utf8');
  const broken = text.replace(
    /( {2}edge:\n(?: {4}.*\n)*? {4}driver_opts:\n {6}com\.docker\.network\.driver\.mtu: )"1450"\n/,
    '$1"1500"\n',
  );
  assert.notEqual(broken, text, 'fixture edit did not apply');
  fs.writeFileSync(infra, broken);
  return broken.split('\n').findIndex((l) => l.includes('mtu: "1500"')) + 1;
}

test(
  'an overlay network with an MTU above 1450: the deploy is refused with file, line and rule; nothing reaches the host',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      const line = raiseEdgeMtu(dir);

      const r = await runAction({ inputs: { ...inputs, command: 'deploy', release: 'pf-1' }, cwd: dir });
      assert.notEqual(r.code, 0);
      assert.equal(r.outputs.result, 'failed');
      assert.match(r.errors.join('\n'), new RegExp(`stacks/infra\\.yml:${line}:\\d+ \\[overlay-mtu\\]`));
      const annotation = r.commands.find((c) => c.command === 'error' && /overlay-mtu/.test(JSON.stringify(c)));
      assert.ok(annotation, 'no error annotation for overlay-mtu');
      assert.equal(annotation.properties?.file, 'stacks/infra.yml');
      assert.equal(annotation.properties?.line, String(line));
      assert.match(r.summary, /overlay-mtu/);
      // Refused before connecting: no stack, no release folder on the host.
      assert.equal(
        (
          await docker(['service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${ex.infra}`])
        ).stdout.trim(),
        '',
      );
      assert.equal((await onHost(lab, `test -e ${remoteDir} && echo exists || echo absent`)).stdout.trim(), 'absent');
      assert.doesNotMatch(r.log, /Connect to/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'command: check passes the example and reports in the job summary, without a host',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      const r = await runAction({
        inputs: {
          command: 'check',
          stacks: inputs.stacks,
          env: inputs.env,
          registry: inputs.registry,
          'image-prefix': inputs['image-prefix'],
        },
        cwd: dir,
      });
      assert.equal(r.code, 0, r.maskedLog.slice(-2000));
      assert.equal(r.outputs.result, 'checked');
      assert.match(r.log, /Pre-flight: 0 error\(s\)/);
      assert.match(r.summary, /## 🔎 Pre-flight checks: checked/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'command: check fails on a Traefik service on two networks without traefik.docker.network',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      const app = path.join(dir, 'stacks', 'app.yml');
      const text = fs.readFileSync(app, 'utf8');
      const withTraefik = text.replace(
        /( {2}web:\n(?: {4}.*\n| {6}.*\n| {8}.*\n)*? {4}deploy:\n)/,
        '$1      labels:\n        - traefik.enable=true\n',
      );
      assert.notEqual(withTraefik, text, 'fixture edit did not apply');
      fs.writeFileSync(app, withTraefik);
      const r = await runAction({
        inputs: {
          command: 'check',
          stacks: inputs.stacks,
          env: inputs.env,
          registry: inputs.registry,
          'image-prefix': inputs['image-prefix'],
        },
        cwd: dir,
      });
      assert.notEqual(r.code, 0);
      assert.match(r.errors.join('\n'), /stacks\/app\.yml:\d+:\d+ \[traefik-network\]/);
      // Switched off for the run: the same stack passes.
      const skipped = await runAction({
        inputs: {
          command: 'check',
          stacks: inputs.stacks,
          env: inputs.env,
          registry: inputs.registry,
          'image-prefix': inputs['image-prefix'],
          'skip-checks': 'traefik-network',
        },
        cwd: dir,
      });
      assert.equal(skipped.code, 0, skipped.maskedLog.slice(-2000));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'invalid YAML in one layer and a rule error in another: both reported with file and line, as annotations and in the summary',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      raiseEdgeMtu(dir);
      fs.writeFileSync(path.join(dir, 'stacks', 'app.yml'), 'services:\n  web:\n    image: [unclosed\n');
      const r = await runAction({
        inputs: {
          command: 'check',
          stacks: inputs.stacks,
          env: inputs.env,
          registry: inputs.registry,
          'image-prefix': inputs['image-prefix'],
        },
        cwd: dir,
      });
      assert.notEqual(r.code, 0);
      assert.equal(r.outputs.result, 'failed');
      const yamlNote = r.commands.find((c) => c.command === 'error' && c.properties?.title === 'invalid-yaml');
      assert.ok(yamlNote, `no invalid-yaml annotation: ${r.errors.join('\n')}`);
      assert.equal(yamlNote.properties?.file, 'stacks/app.yml');
      assert.match(yamlNote.message, /invalid YAML/);
      assert.ok(Number(yamlNote.properties?.line) >= 3, `line ${yamlNote.properties?.line}`);
      assert.ok(
        r.commands.some(
          (c) =>
            c.command === 'error' && c.properties?.title === 'overlay-mtu' && c.properties?.file === 'stacks/infra.yml',
        ),
        'the other layer was not checked',
      );
      assert.match(r.summary, /`invalid-yaml`/);
      assert.match(r.summary, /`overlay-mtu`/);
      assert.match(r.errors.join('\n'), /Pre-flight checks found 2 error\(s\); nothing was deployed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

const LOOPBACK_LINE = /Host MTU: Swarm node address 127\.0\.0\.1 \(lo, MTU 65536\) on \S+; \d+ node\(s\)/;

/** The notice that a loopback node address decides nothing, as an annotation. */
function loopbackNotice(r: { commands: { command: string; properties?: Record<string, string>; message: string }[] }) {
  return r.commands.find(
    (c) => c.command === 'notice' && c.properties?.title === 'overlay-mtu' && /loopback interface/.test(c.message),
  );
}

test(
  'a dry-run deploy with a host runs the host MTU check too, before printing the plan',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      const r = await runAction({
        inputs: { ...inputs, command: 'deploy', release: 'pf-dry', 'dry-run': 'true' },
        cwd: dir,
      });
      assert.equal(r.code, 0, r.maskedLog.slice(-3000));
      assert.equal(r.outputs.result, 'checked');
      // The lab's swarm advertises 127.0.0.1: read, logged, and it decides nothing.
      assert.match(r.log, LOOPBACK_LINE);
      const notice = loopbackNotice(r);
      assert.ok(notice, 'no loopback notice');
      assert.match(
        notice.message,
        /127\.0\.0\.1 is on the loopback interface \(lo, MTU 65536\).*decides nothing; overlay-mtu was checked from the stack files only/,
      );
      assert.match(r.log, /Pre-flight against the swarm: \d+ node\(s\), configs, placement, host MTU fine\./);
      const mtuAt = r.log.search(/Host MTU: /);
      const planAt = r.log.indexOf(`${ex.app}: would deploy release pf-dry:`);
      assert.ok(mtuAt >= 0 && planAt > mtuAt, 'the host MTU is read before the plan is printed');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'command: check given a host runs the connected checks read-only: host MTU, placement against the nodes',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      const r = await runAction({ inputs: { ...inputs, command: 'check' }, cwd: dir });
      assert.equal(r.code, 0, r.maskedLog.slice(-3000));
      assert.equal(r.outputs.result, 'checked');
      assert.match(r.log, LOOPBACK_LINE);
      assert.ok(loopbackNotice(r), 'no loopback notice');
      assert.doesNotMatch(r.log, /Waiting for the deploy lock|Host logged in/);
      // Read-only: no lock, no folder on the host.
      assert.equal((await onHost(lab, `test -e ${remoteDir} && echo exists || echo absent`)).stdout.trim(), 'absent');
      // A constraint no node meets is found only with the swarm's facts.
      const app = path.join(dir, 'stacks', 'app.yml');
      const text = fs.readFileSync(app, 'utf8');
      const pinned = text.replace(
        /( {2}web:\n(?: {4}.*\n| {6}.*\n| {8}.*\n)*? {4}deploy:\n)/,
        '$1      placement:\n        constraints: [node.labels.pf-zone == nowhere]\n',
      );
      assert.notEqual(pinned, text, 'fixture edit did not apply');
      fs.writeFileSync(app, pinned);
      const bad = await runAction({ inputs: { ...inputs, command: 'check' }, cwd: dir });
      assert.notEqual(bad.code, 0);
      assert.match(
        bad.errors.join('\n'),
        /\[placement\] Service web: no node meets "node\.labels\.pf-zone == nowhere"/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A second sshd with the lab's config on its own port, plus `extra` lines (the lab's variables and,
 * with `binDir`, a PATH that puts it first, on one SetEnv line: sshd takes the first only). Resolves
 * with the action's inputs for it once a session answers; `stop` ends it.
 */
async function secondSshd(
  tmp: string,
  opts: { extra?: string; binDir?: string },
): Promise<{ inputs: Record<string, string>; known: string; port: number; stop: () => void }> {
  const pidFile = path.join(tmp, 'sshd.pid');
  const port = await freePort();
  const config = fs
    .readFileSync(path.join(path.dirname(lab.sshKeyFile), 'sshd_config'), 'utf8')
    .replace(/^Port .*$/m, `Port ${port}`)
    .replace(/^PidFile .*$/m, `PidFile ${pidFile}`);
  const labEnv = /^SetEnv (.*)$/m.exec(config)?.[1] ?? '';
  const pathVar = opts.binDir
    ? ` PATH=${opts.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`
    : '';
  fs.writeFileSync(
    path.join(tmp, 'sshd_config'),
    `${opts.extra ?? ''}${config.replace(/^SetEnv .*\n/gm, '')}SetEnv ${labEnv}${pathVar}\n`,
  );
  const started = await run('/usr/sbin/sshd', ['-f', path.join(tmp, 'sshd_config'), '-E', path.join(tmp, 'sshd.log')]);
  assert.equal(started.code, 0, started.stderr);
  const stop = () => {
    if (fs.existsSync(pidFile)) process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
  };
  const knownHosts = lab.knownHosts.replace(`[${lab.host}]:${lab.port}`, `[${lab.host}]:${port}`);
  const known = path.join(tmp, 'known_hosts');
  fs.writeFileSync(known, knownHosts);
  await waitFor(async () => (await sshTo(port, known, 'true')).code === 0 || undefined, {
    timeoutMs: 15_000,
    what: `the second sshd on port ${port}`,
  }).catch((e: Error) => {
    stop();
    throw e;
  });
  return { inputs: { ...inputs, port: String(port), 'known-hosts': knownHosts }, known, port, stop };
}

function sshTo(port: number, known: string, command: string) {
  return run('ssh', [
    '-i',
    lab.sshKeyFile,
    '-o',
    `UserKnownHostsFile=${known}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-p',
    String(port),
    `${lab.user}@${lab.host}`,
    command,
  ]);
}

/**
 * A host whose Swarm node address sits on an interface with MTU 1400: a veth end with a TEST-NET-1
 * address, and a second sshd (forwarding no socket) whose PATH puts first a `docker` whose Engine API
 * connection (`docker system dial-stdio`) answers GET /info with that node address in place of the lab's
 * 127.0.0.1 (as long: the HTTP lengths stay right); every other docker command is the real one. The
 * interface, its address and MTU are real, read by the action's own remote command.
 */
async function withLowMtuHost(
  fn: (inputs: Record<string, string>, addr: string, iface: string) => Promise<void>,
): Promise<void> {
  const tag = randomBytes(3).toString('hex');
  const iface = `pfm${tag}a`;
  // As long as 127.0.0.1, which it replaces in the engine's answer, and on no interface yet: a machine
  // may use TEST-NET-1 itself (this one's eth0 has 192.0.2.2/24, and the action then found eth0).
  const held = (await run('ip', ['-o', 'addr', 'show'])).stdout;
  const free = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `192.0.2.${n}`).filter((a) => !held.includes(`inet ${a}/`));
  assert.ok(free.length > 0, `every address 192.0.2.1-9 is on an interface already:\n${held}`);
  const addr = free[parseInt(tag.slice(0, 2), 16) % free.length];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pf-mtu-'));
  let stop = () => {};
  try {
    const add = await run('sh', [
      '-c',
      `ip link add ${iface} type veth peer name pfm${tag}b && ip link set ${iface} mtu 1400 && ip addr add ${addr}/32 dev ${iface}`,
    ]);
    assert.equal(add.code, 0, `cannot create a veth pair: ${add.stderr}`);
    const realDocker = (await run('sh', ['-c', 'command -v docker'])).stdout.trim();
    fs.mkdirSync(path.join(tmp, 'bin'));
    fs.writeFileSync(
      path.join(tmp, 'bin', 'docker'),
      `#!/bin/sh\nif [ "$1" = system ] && [ "$2" = dial-stdio ]; then\n` +
        `  ${realDocker} system dial-stdio | sed -u 's/"NodeAddr":"127\\.0\\.0\\.1"/"NodeAddr":"${addr}"/'; exit\n` +
        `fi\nexec ${realDocker} "$@"\n`,
      { mode: 0o755 },
    );
    // sshd forwards no socket here: the action's Engine API connection falls back to the CLI's dial-stdio.
    const second = await secondSshd(tmp, { binDir: path.join(tmp, 'bin'), extra: 'AllowStreamLocalForwarding no\n' });
    stop = second.stop;
    const info = await sshTo(
      second.port,
      second.known,
      `printf 'GET /info HTTP/1.0\\r\\nHost: docker\\r\\n\\r\\n' | docker system dial-stdio`,
    );
    assert.ok(info.stdout.includes(`"NodeAddr":"${addr}"`), `the faked node address is not answered: ${info.stderr}`);
    await fn(second.inputs, addr, iface);
  } finally {
    stop();
    await run('ip', ['link', 'del', iface]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

test(
  'a Swarm node address on an interface with MTU 1400: the deploy is refused before anything changes, naming 1350',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    try {
      await withLowMtuHost(async (lowInputs, addr, iface) => {
        const r = await runAction({ inputs: { ...lowInputs, command: 'deploy', release: 'pf-mtu' }, cwd: dir });
        assert.notEqual(r.code, 0);
        assert.equal(r.outputs.result, 'failed');
        assert.match(
          r.log,
          new RegExp(
            `Host MTU: Swarm node address ${addr.replace(/\./g, '\\.')} \\(${iface}, MTU 1400\\) on \\S+; \\d+ node\\(s\\)`,
          ),
        );
        const errors = r.errors.join('\n');
        // The example's networks set 1450, right for a 1500 host only.
        assert.match(errors, /Pre-flight checks against the swarm found 2 error\(s\); nothing was deployed/);
        assert.match(
          errors,
          /stacks\/infra\.yml:\d+: \[overlay-mtu\] Network edge .*has interface MTU 1400.*com\.docker\.network\.driver\.mtu: 1350/,
        );
        assert.ok(
          r.commands.some(
            (c) =>
              c.command === 'error' &&
              c.properties?.title === 'overlay-mtu' &&
              c.properties?.file === 'stacks/infra.yml',
          ),
          'no overlay-mtu annotation',
        );
        // Nothing changed: no layer started, no service, no release folder; the lock was released.
        assert.doesNotMatch(r.log, /Layer pf-/);
        assert.equal(
          (
            await docker(['service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${ex.infra}`])
          ).stdout.trim(),
          '',
        );
        assert.equal(
          (
            await onHost(
              lab,
              `ls ${remoteDir}/stacks/*/releases 2>/dev/null | wc -l; ls -d ${remoteDir}/stacks/*/lock 2>/dev/null | wc -l`,
            )
          ).stdout.trim(),
          '0\n0',
        );
        // With the right MTU for this host, the same check passes.
        const infra = path.join(dir, 'stacks', 'infra.yml');
        fs.writeFileSync(infra, fs.readFileSync(infra, 'utf8').replace(/mtu: "1450"/g, 'mtu: "1350"'));
        const ok = await runAction({ inputs: { ...lowInputs, command: 'check' }, cwd: dir });
        assert.equal(ok.code, 0, ok.maskedLog.slice(-3000));
        assert.match(ok.log, /host MTU fine/);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a host that allows 2 SSH sessions (MaxSessions 2: the shell and the Engine API): the registry look-ups fall back to the shell',
  { timeout: 120_000 },
  async () => {
    const dir = copyExample();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pf-sessions-'));
    let stop = () => {};
    try {
      // The Engine API as a session too (dial-stdio): sshd forwards no socket.
      const second = await secondSshd(tmp, { extra: 'MaxSessions 2\nAllowStreamLocalForwarding no\n' });
      stop = second.stop;
      const r = await runAction({
        inputs: { ...second.inputs, command: 'deploy', release: 'pf-sessions', 'dry-run': 'true' },
        cwd: dir,
        env: { RUNNER_DEBUG: '1' },
      });
      assert.equal(r.code, 0, r.maskedLog.slice(-3000));
      assert.equal(r.outputs.result, 'checked');
      // The engine said the base image is there (no channel). This file's web and api were never built:
      // asked again with the CLI, each refused its channel, then asked through the shell.
      assert.match(r.log, /Engine API GET \/distribution\/\S*lab\/base:1\/json → ok/);
      assert.match(
        r.log,
        /refused another SSH channel \(sshd MaxSessions\?\): .+; run in the shell instead: docker manifest inspect .*\/web\\?:1\.0\.0$/m,
      );
      const lookups = r.log.match(/docker manifest inspect .*→ \d/g) ?? [];
      assert.equal(lookups.length, 2, lookups.join('\n'));
      assert.ok(!lookups.some((l) => /lab\/base/.test(l)), lookups.join('\n'));
      const missing = r.warnings.find((w) => /Not in the registry/.test(w)) ?? '';
      assert.match(missing, /\/web:1\.0\.0 \(pf-app\/web\)/);
      assert.match(missing, /\/api:1\.0\.0 \(pf-app\/api\)/);
      assert.doesNotMatch(missing, /lab\/base/);
    } finally {
      stop();
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a host whose docker CLI predates Docker 26 (no --detach): `docker stack deploy` runs again without it, and the gate decides',
  { timeout: 120_000 },
  async () => {
    const old = (await run('/usr/bin/docker', ['--version'])).stdout;
    const major = Number(/version (\d+)\./.exec(old)?.[1]);
    assert.ok(major > 0 && major < 26, `the lab's docker.io CLI is not older than 26: ${old}`);
    const dir = copyExample();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pf-oldcli-'));
    const stack = `${uniqueName('pf-old')}`;
    let stop = () => {};
    try {
      fs.mkdirSync(path.join(tmp, 'bin'));
      fs.symlinkSync('/usr/bin/docker', path.join(tmp, 'bin', 'docker'));
      fs.writeFileSync(
        path.join(dir, 'stacks', 'old.yml'),
        `version: "3.8"
services:
  web:
    image: \${REGISTRY}/lab/base:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    healthcheck: { test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 2 }
    stop_grace_period: 1s
    deploy:
      endpoint_mode: dnsrr
      replicas: 1
      update_config: { parallelism: 1, order: start-first, failure_action: rollback, monitor: 3s }
`,
      );
      const second = await secondSshd(tmp, { binDir: path.join(tmp, 'bin') });
      stop = second.stop;
      const r = await runAction({
        inputs: { ...second.inputs, command: 'deploy', stacks: `${stack}=stacks/old.yml`, env: '', stability: '0' },
        cwd: dir,
      });
      assert.equal(r.code, 0, r.maskedLog.slice(-3000));
      assert.equal(r.outputs.result, 'deployed');
      assert.match(r.log, /docker CLI is older than Docker 26/);
      assert.match(r.summary, new RegExp(`${stack}_web \\| .* \\| 1/1 \\| healthy`));
      const running = await docker(['service', 'ls', '--filter', `name=${stack}_web`, '--format', '{{.Replicas}}']);
      assert.equal(running.stdout.trim(), '1/1');
    } finally {
      stop();
      await removeStack(stack);
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
