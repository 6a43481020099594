import { NodePath, Yaml, isExternal, isPlainObject } from '../../compose';
import { DOCKER_OVERLAY_MTU } from '../mtu';
import { CheckModel, Raw, Rule } from '../types';

const FIX = 'set driver_opts: com.docker.network.driver.mtu: 1450 (or lower)';
// Why no MTU is only a notice: Docker gives an overlay network 1450 (1500 − 50 of VXLAN); it is
// too high only on a host whose interface is below 1500, which `deploy` compares (hostMtuFindings).
const LOW_HOST =
  `Docker gives it MTU 1450, right for hosts whose interface MTU is 1500; on a host below 1500 (some clouds ` +
  `use 1450 or 1400, VPNs less) large requests between nodes hang: then set ` +
  `driver_opts: com.docker.network.driver.mtu to that host MTU − 50`;

function network(key: string, decl: Yaml): Raw | undefined {
  const d = isPlainObject(decl) ? decl : {};
  const driver = String(d.driver ?? 'overlay');
  const opts = isPlainObject(d.driver_opts) ? d.driver_opts : {};
  const mtuRaw = opts['com.docker.network.driver.mtu'];
  const unset = mtuRaw === undefined || mtuRaw === null || mtuRaw === '';
  const entity: NodePath = ['networks', key];
  if (driver === 'bridge' && unset) {
    const message =
      `Network ${key} (bridge) has no com.docker.network.driver.mtu: if the host's interface has an MTU below ` +
      `1500 (many clouds and VPNs), large requests can hang; ${FIX} to match it.`;
    return { severity: 'notice', at: entity, message, entity };
  }
  if (driver !== 'overlay') return undefined;
  if (unset) {
    const message =
      `Network ${key} (overlay${d.driver ? '' : ', the default driver in a stack'}) has no ` +
      `com.docker.network.driver.mtu: ${LOW_HOST}.`;
    return { severity: 'notice', at: entity, message, entity };
  }
  const mtu = Number(String(mtuRaw).trim());
  if (Number.isInteger(mtu) && mtu <= DOCKER_OVERLAY_MTU && mtu > 0) return undefined;
  const message =
    `Network ${key} (overlay) has com.docker.network.driver.mtu ${String(mtuRaw)}: VXLAN adds 50 bytes to ` +
    `every packet, so above 1450 (host 1500 − 50) large requests between nodes hang. ` +
    `${FIX[0].toUpperCase()}${FIX.slice(1)}: the host's interface MTU − 50.`;
  return { severity: 'error', at: [...entity, 'driver_opts', 'com.docker.network.driver.mtu'], message, entity };
}

/** The stack's implicit `default` network is an overlay network at Docker's MTU too. */
function implicitDefault(m: CheckModel): Raw | undefined {
  if ('default' in m.networks) return undefined;
  const users = Object.values(m.services)
    .filter((i) => i.networks.includes('default'))
    .map((i) => i.name);
  if (!users.length) return undefined;
  const entity: NodePath = ['services', users[0]];
  return {
    severity: 'notice',
    at: entity,
    message:
      `Service${users.length > 1 ? 's' : ''} ${users.join(', ')} ${users.length > 1 ? 'are' : 'is'} on the ` +
      `stack's implicit default network (${m.name}_default), an overlay network: Docker gives it MTU 1450, ` +
      `right for hosts whose interface MTU is 1500. On a host below 1500, declare it: networks: default: ` +
      `driver_opts: com.docker.network.driver.mtu: <host MTU − 50>.`,
    entity,
  };
}

function check(m: CheckModel): Raw[] {
  const out = Object.entries(m.networks)
    .filter(([, decl]) => !isExternal(decl))
    .map(([key, decl]) => network(key, decl));
  return [...out, implicitDefault(m)].filter((r): r is Raw => !!r);
}

export const overlayMtu: Rule = {
  id: 'overlay-mtu',
  severities: ['error', 'notice'],
  table: "error above 1450, or above the host's MTU − 50 (connected); notice without an MTU",
  summary: 'overlay network MTU above 1450, or above the host MTU − 50 when the host is known',
  example:
    'services:\n  web:\n    image: app/web:1\n    networks: [edge]\nnetworks:\n  edge:\n    driver_opts:\n' +
    '      com.docker.network.driver.mtu: 1500\n',
  check,
};
