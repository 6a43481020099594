import { Finding, OverlayNetwork, hostMtuFindings } from './checks';
import type { EngineInfo } from './host/engine-facts';
import { Shell } from './host/shell';

/**
 * The MTU of the interface Swarm traffic uses on the host we are connected to (a manager): its
 * Swarm node address (from the engine's GET /info, read once by the connection), the interface that
 * carries it (`ip -o addr`) and that interface's MTU (`ip -o link`: netlink answers for the network
 * namespace the shell runs in, where /sys may be the host's). Other nodes' interfaces are not visible
 * from here.
 */
export const HOST_MTU_SCRIPT =
  "echo '--- addr' && { ip -o addr show 2>&1 || true; } && " +
  "echo '--- mtu' && { ip -o link show 2>/dev/null || true; }";

export interface HostMtu {
  /** Swarm node address (the manager's advertise address). */
  addr: string;
  /** The node's name as the engine gives it. */
  node: string;
  /** Interface carrying `addr`, when found. */
  iface?: string;
  mtu?: number;
  /** The address is a loopback one: no traffic between nodes crosses it. */
  loopback: boolean;
  /** Why no MTU was found, when none was. */
  unknown?: string;
}

/** Reads the output of HOST_MTU_SCRIPT, for the node address and name the engine gave. */
export function parseHostMtu(stdout: string, addr: string, node: string): HostMtu {
  const [, addrPart = '', mtuPart = ''] = stdout.split(/^--- (?:addr|mtu)$/m);
  const norm = (a: string) => a.toLowerCase().replace(/^\[|\]$/g, '');
  const want = norm(addr);
  let iface: string | undefined;
  for (const line of addrPart.split('\n')) {
    // "4: eth0    inet 10.0.0.5/24 brd ... scope global eth0\ ..."
    const m = /^\s*\d+:\s+(\S+)\s+inet6?\s+([^\s/]+)/.exec(line);
    if (m && want && norm(m[2]) === want) {
      iface = m[1].split('@')[0];
      break;
    }
  }
  const mtus = new Map<string, number>();
  for (const line of mtuPart.split('\n')) {
    // "4: eth0@if12: <BROADCAST,...> mtu 1400 qdisc ..."
    const m = /^\s*\d+:\s+([^:\s]+):.*?\smtu\s+(\d+)/.exec(line);
    if (m) mtus.set(m[1].split('@')[0], Number(m[2]));
  }
  const mtu = iface !== undefined ? mtus.get(iface) : undefined;
  const loopback = iface === 'lo' || /^127\./.test(want) || want === '::1';
  let unknown: string | undefined;
  if (!want) unknown = 'the engine (GET /info) gave no Swarm node address';
  else if (!/\binet6?\b/.test(addrPart))
    unknown = `\`ip -o addr\` gave nothing (${addrPart.trim().split('\n')[0]?.slice(0, 80) || 'no output'})`;
  else if (iface === undefined)
    unknown = `no interface of the host carries ${addr} (an address behind NAT, or a separate --data-path-addr)`;
  else if (mtu === undefined) unknown = `\`ip -o link\` gave no MTU for ${iface}`;
  return { addr, node, iface, mtu, loopback, ...(unknown ? { unknown } : {}) };
}

/** The log line: what was read, on how many nodes. */
export function describeHostMtu(h: HostMtu, nodes: number): string {
  const where = h.iface ? ` (${h.iface}${h.mtu !== undefined ? `, MTU ${h.mtu}` : ''})` : '';
  const others =
    nodes > 1 ? `: the other ${nodes - 1} not read (a node's interface MTU is not visible from the manager)` : '';
  return (
    `Host MTU: Swarm node address ${h.addr || '(none)'}${where} on ${h.node || 'this manager'}; ${nodes} ` +
    `node(s)${others}.`
  );
}

/** Runs HOST_MTU_SCRIPT through any remote shell (one command) for the node `info` describes. */
export async function readHostMtu(
  remote: Pick<Shell, 'sh'>,
  info: Pick<EngineInfo, 'nodeAddr' | 'name'>,
): Promise<HostMtu> {
  const res = await remote.sh(HOST_MTU_SCRIPT, { retry: true, silent: true });
  if (res.code !== 0)
    return {
      ...parseHostMtu('', info.nodeAddr, info.name),
      unknown: `\`ip\` failed: ${(res.stderr || res.stdout).trim().slice(0, 200)}`,
    };
  return parseHostMtu(res.stdout, info.nodeAddr, info.name);
}

/**
 * What the host's MTU decides: overlay-mtu errors for networks above its MTU − 50, or a notice when
 * it decides nothing (a loopback node address, or nothing read) and the files alone were checked.
 */
export function hostMtuVerdict(h: HostMtu, networks: OverlayNetwork[]): { findings: Finding[]; notice?: string } {
  const filesOnly = 'overlay-mtu was checked from the stack files only.';
  if (h.loopback) {
    const where = h.iface ? ` (${h.iface}${h.mtu !== undefined ? `, MTU ${h.mtu}` : ''})` : '';
    return {
      findings: [],
      notice:
        `Host MTU: the Swarm node address ${h.addr} is on the loopback interface${where}, which no traffic ` +
        `between nodes crosses: its MTU decides nothing; ${filesOnly}`,
    };
  }
  if (h.mtu === undefined) return { findings: [], notice: `Host MTU: not read (${h.unknown}); ${filesOnly}` };
  return { findings: hostMtuFindings({ [h.node || h.addr]: h.mtu }, networks) };
}
