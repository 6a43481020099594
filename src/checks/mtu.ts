/** The overlay networks a stack creates, and overlay-mtu against the MTU of the host's interface. */
import { NodePath, isExternal, isPlainObject, locateIn, networkKeys } from '../compose';
import { StackModel } from '../model';
import { swarmNetworkName } from './facts';
import { entitySkips } from './skips';
import { Finding } from './types';

/** Docker's overlay MTU when none is given: 1500 − 50 bytes of VXLAN, whatever the host's interface. */
export const DOCKER_OVERLAY_MTU = 1450;

/** An overlay network the stack creates, with where it is declared (or first used, for `default`). */
export interface OverlayNetwork {
  stack: string;
  /** Key in the stack file. */
  key: string;
  /** Swarm name. */
  name: string;
  /** Explicit com.docker.network.driver.mtu; undefined = Docker's 1450. */
  mtu?: number;
  file: string;
  line: number;
  col: number;
}

/** The overlay networks a stack creates (not external ones), the implicit `default` when a service uses it. */
export function overlayNetworks(m: StackModel): OverlayNetwork[] {
  if (!m.files.length) return [];
  const out: OverlayNetwork[] = [];
  const at = (p: NodePath) => {
    const l = locateIn(m.files, p);
    return { file: l.file.path, line: l.line, col: l.col };
  };
  // As in the checks: a skip comment on the network (or on the service that brings in `default`).
  const off = (entity: NodePath) => {
    const s = entitySkips(m, entity);
    return s.has('overlay-mtu') || s.has('all');
  };
  for (const [key, decl] of Object.entries(m.networks)) {
    const d = isPlainObject(decl) ? decl : {};
    if (isExternal(decl) || String(d.driver ?? 'overlay') !== 'overlay' || off(['networks', key])) continue;
    const raw = isPlainObject(d.driver_opts) ? d.driver_opts['com.docker.network.driver.mtu'] : undefined;
    const mtu = raw === undefined || raw === null || raw === '' ? undefined : Number(String(raw).trim());
    const where =
      mtu === undefined ? ['networks', key] : ['networks', key, 'driver_opts', 'com.docker.network.driver.mtu'];
    out.push({ stack: m.name, key, name: swarmNetworkName(m.name, key, m.networks), mtu, ...at(where) });
  }
  if (!('default' in m.networks)) {
    const user = Object.entries(m.raw).find(
      ([, svc]) => networkKeys(svc.networks).length === 0 || networkKeys(svc.networks).includes('default'),
    );
    if (user && !off(['services', user[0]]))
      out.push({ stack: m.name, key: 'default', name: `${m.name}_default`, ...at(['services', user[0]]) });
  }
  return out;
}

/**
 * overlay-mtu with facts from the host: VXLAN needs 50 bytes of every node's interface MTU, and
 * Docker gives an overlay network 1450 whatever the interface, so on a node below 1500 every
 * overlay network must set com.docker.network.driver.mtu to at most the smallest MTU − 50.
 * `nodeMtus`: node name → MTU of the interface Swarm traffic uses.
 */
export function hostMtuFindings(nodeMtus: Record<string, number>, networks: OverlayNetwork[]): Finding[] {
  const known = Object.entries(nodeMtus).filter(([, m]) => Number.isFinite(m) && m > 0);
  if (!known.length) return [];
  const min = Math.min(...known.map(([, m]) => m));
  const nodes = known.filter(([, m]) => m === min).map(([n]) => n);
  const want = min - 50;
  const out: Finding[] = [];
  for (const n of networks) {
    const effective = n.mtu ?? DOCKER_OVERLAY_MTU;
    if (Number.isInteger(effective) && effective <= want) continue;
    out.push({
      rule: 'overlay-mtu',
      severity: 'error',
      file: n.file,
      line: n.line,
      col: n.col,
      stack: n.stack,
      message:
        `Network ${n.key} (${n.name}, overlay) has MTU ` +
        `${n.mtu === undefined ? `${DOCKER_OVERLAY_MTU} (Docker's default)` : n.mtu}, ` +
        `but node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')} ` +
        `${nodes.length > 1 ? 'have' : 'has'} interface MTU ${min}: ` +
        `VXLAN adds 50 bytes, so large packets between nodes are dropped and big requests hang. ` +
        `${n.key === 'default' ? 'Declare it: networks: default:' : `Under networks.${n.key}, set`} driver_opts: ` +
        `com.docker.network.driver.mtu: ${want}.`,
    });
  }
  return out;
}
