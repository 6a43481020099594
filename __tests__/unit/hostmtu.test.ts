import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { overlayNetworks } from '../../src/checks';
import { loadComposeFile } from '../../src/compose';
import { buildModel } from '../../src/model';
import { HOST_MTU_SCRIPT, describeHostMtu, hostMtuVerdict, parseHostMtu, readHostMtu } from '../../src/hostmtu';

const FIX = path.join(__dirname, '..', 'fixtures', 'checks');

/** What HOST_MTU_SCRIPT prints: `ip -o addr`, then `ip -o link`. */
function output(addrs: string[], mtus: Record<string, number>): string {
  const links = Object.entries(mtus).map(
    ([i, m], n) =>
      `${n + 1}: ${i}${i === 'eth0' ? '@if12' : ''}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu ${m} qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 02:42:ac:11:00:02 brd ff:ff:ff:ff:ff:ff`,
  );
  return ['--- addr', ...addrs, '--- mtu', ...links, ''].join('\n');
}

/** parseHostMtu of that output, for the engine's "<node address> <name>". */
function parsed(info: string, addrs: string[], mtus: Record<string, number>) {
  const [addr = '', node = ''] = info.trim().split(/\s+/);
  return parseHostMtu(output(addrs, mtus), addr, node);
}

const LAB_ADDRS = [
  '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
  '1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever',
  '4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever',
  '5: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever preferred_lft forever',
];
const LAB_MTUS = { docker0: 1500, eth0: 1400, lo: 65536 };

function fakeRemote(code: number, stdout: string, stderr = '') {
  const scripts: string[] = [];
  return {
    scripts,
    async sh(script: string) {
      scripts.push(script);
      return { code, stdout, stderr };
    },
  };
}

const stack = (f: string) => ({ name: 'app', files: [loadComposeFile(path.join(FIX, f), f)] });

test('parseHostMtu: the interface that carries the Swarm node address, and its MTU', () => {
  const h = parsed('192.0.2.2 node-1', LAB_ADDRS, LAB_MTUS);
  assert.deepEqual(h, { addr: '192.0.2.2', node: 'node-1', iface: 'eth0', mtu: 1400, loopback: false });
  // The lab: the swarm advertises 127.0.0.1.
  const lab = parsed('127.0.0.1 vm', LAB_ADDRS, LAB_MTUS);
  assert.deepEqual(lab, { addr: '127.0.0.1', node: 'vm', iface: 'lo', mtu: 65536, loopback: true });
  // A veth end in a namespace (eth0@if12), and IPv6.
  const veth = parsed('10.9.0.2 mgr', ['2: eth0@if12    inet 10.9.0.2/24 scope global eth0'], { eth0: 1450 });
  assert.equal(veth.iface, 'eth0');
  assert.equal(veth.mtu, 1450);
  const v6 = parsed('2001:DB8::5 mgr', ['3: ens3    inet6 2001:db8::5/64 scope global'], { ens3: 1500 });
  assert.deepEqual([v6.iface, v6.mtu, v6.loopback], ['ens3', 1500, false]);
});

test('parseHostMtu: says why nothing was read', () => {
  const nat = parsed('203.0.113.9 mgr', LAB_ADDRS, LAB_MTUS);
  assert.equal(nat.mtu, undefined);
  assert.match(nat.unknown!, /no interface of the host carries 203\.0\.113\.9/);
  const noIp = parsed('10.0.0.5 mgr', ['sh: 1: ip: not found'], LAB_MTUS);
  assert.match(noIp.unknown!, /`ip -o addr` gave nothing \(sh: 1: ip: not found\)/);
  const noAddr = parsed(' ', [], {});
  assert.match(noAddr.unknown!, /no Swarm node address/);
  const noSys = parsed('192.0.2.2 mgr', LAB_ADDRS, {});
  assert.match(noSys.unknown!, /`ip -o link` gave no MTU for eth0/);
  // Loopback decides nothing even without `ip`.
  assert.equal(parsed('127.0.0.1 vm', ['sh: ip: not found'], {}).loopback, true);
});

test('readHostMtu: one remote command, no docker CLI (the node address comes from GET /info); a failing one reads nothing', async () => {
  const ok = fakeRemote(0, output(LAB_ADDRS, LAB_MTUS));
  assert.deepEqual(await readHostMtu(ok, { nodeAddr: '127.0.0.1', name: 'vm' }), {
    addr: '127.0.0.1',
    node: 'vm',
    iface: 'lo',
    mtu: 65536,
    loopback: true,
  });
  assert.deepEqual(ok.scripts, [HOST_MTU_SCRIPT]);
  assert.doesNotMatch(HOST_MTU_SCRIPT, /docker/);
  const bad = await readHostMtu(fakeRemote(1, '', 'sh: cannot fork'), { nodeAddr: '192.0.2.2', name: 'mgr' });
  assert.equal(bad.mtu, undefined);
  assert.equal(bad.addr, '192.0.2.2');
  assert.match(bad.unknown!, /`ip` failed: sh: cannot fork/);
});

test('HOST_MTU_SCRIPT runs in sh and its output parses', { skip: process.platform !== 'linux' }, () => {
  const r = spawnSync('sh', ['-c', HOST_MTU_SCRIPT], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const h = parseHostMtu(r.stdout, '127.0.0.1', 'this-node');
  assert.equal(h.addr, '127.0.0.1');
  assert.equal(h.node, 'this-node');
  assert.equal(h.loopback, true);
  // Every Linux machine has lo; where `ip` exists it is found with its MTU.
  if (/\binet 127\.0\.0\.1\//.test(r.stdout)) assert.equal(h.iface, 'lo');
});

test('hostMtuVerdict: a low host MTU is an error naming MTU − 50; loopback or nothing read is a notice and no finding', () => {
  const nets = overlayNetworks(buildModel(stack('overlay-mtu-trips.yml'), {}));
  const low = hostMtuVerdict(parsed('192.0.2.2 node-1', LAB_ADDRS, LAB_MTUS), nets);
  assert.equal(low.notice, undefined);
  assert.deepEqual(
    low.findings.map((f) => `${f.rule} ${f.severity} ${f.line}`),
    ['overlay-mtu error 8', 'overlay-mtu error 12', 'overlay-mtu error 5'],
  );
  for (const f of low.findings)
    assert.match(f.message, /node-1 has interface MTU 1400.*com\.docker\.network\.driver\.mtu: 1350/);
  // A 1500 host: Docker's default 1450 is right, only the explicit 1500 trips.
  const ok = hostMtuVerdict(
    parsed('10.0.0.5 node-1', ['2: ens3    inet 10.0.0.5/24 scope global ens3'], { ens3: 1500 }),
    nets,
  );
  assert.deepEqual(
    ok.findings.map((f) => f.line),
    [12],
  );
  const lab = hostMtuVerdict(parsed('127.0.0.1 vm', LAB_ADDRS, LAB_MTUS), nets);
  assert.deepEqual(lab.findings, []);
  assert.match(
    lab.notice!,
    /Swarm node address 127\.0\.0\.1 is on the loopback interface \(lo, MTU 65536\).*decides nothing; overlay-mtu was checked from the stack files only/,
  );
  const nat = hostMtuVerdict(parsed('203.0.113.9 mgr', LAB_ADDRS, LAB_MTUS), nets);
  assert.deepEqual(nat.findings, []);
  assert.match(
    nat.notice!,
    /Host MTU: not read \(no interface .*\); overlay-mtu was checked from the stack files only/,
  );
});

test('overlayNetworks: a network or service with overlay-mtu switched off is left out of the host check', () => {
  const nets = overlayNetworks(buildModel(stack('skips.yml'), {}));
  assert.ok(!nets.some((n) => n.key === 'legacy-net'), 'comment above the network');
  // The implicit default network is brought in by the first service on it: `above` has no overlay-mtu skip.
  assert.deepEqual(
    nets.map((n) => n.key),
    ['default'],
  );
});

test('describeHostMtu: what was read, and how many nodes were not', () => {
  assert.equal(
    describeHostMtu(parsed('127.0.0.1 vm', LAB_ADDRS, LAB_MTUS), 1),
    'Host MTU: Swarm node address 127.0.0.1 (lo, MTU 65536) on vm; 1 node(s).',
  );
  assert.equal(
    describeHostMtu(parsed('192.0.2.2 mgr', LAB_ADDRS, LAB_MTUS), 3),
    "Host MTU: Swarm node address 192.0.2.2 (eth0, MTU 1400) on mgr; 3 node(s): the other 2 not read (a node's interface MTU is not visible from the manager).",
  );
  assert.equal(
    describeHostMtu(parsed('203.0.113.9 mgr', LAB_ADDRS, LAB_MTUS), 1),
    'Host MTU: Swarm node address 203.0.113.9 on mgr; 1 node(s).',
  );
});

// sshd or dockerd entered into a network namespace with `nsenter --net` still sees the host's /sys:
// the MTU must come from netlink (`ip`), which answers for the namespace the shell runs in.
test(
  "HOST_MTU_SCRIPT in a network namespace reads that namespace's interface MTU, not the host's /sys",
  { skip: process.getuid?.() !== 0 || (!fs.existsSync('/usr/sbin/ip') && !fs.existsSync('/sbin/ip')) },
  () => {
    const ns = `mtu${process.pid}`;
    const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
    try {
      const made = sh(
        `ip netns add ${ns} && ip link add hm${process.pid} type veth peer name eth0 netns ${ns} && ` +
          `ip -n ${ns} link set eth0 mtu 1321 up && ip -n ${ns} addr add 198.51.100.77/32 dev eth0`,
      );
      assert.equal(made.status, 0, made.stderr);
      const r = spawnSync('nsenter', [`--net=/var/run/netns/${ns}`, 'sh', '-c', HOST_MTU_SCRIPT], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const h = parseHostMtu(r.stdout, '198.51.100.77', 'ns-node');
      assert.deepEqual([h.iface, h.mtu, h.loopback], ['eth0', 1321, false], r.stdout);
    } finally {
      sh(`ip netns del ${ns}; ip link del hm${process.pid} 2>/dev/null`);
    }
  },
);
