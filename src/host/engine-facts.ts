// The swarm's facts the pre-flight reads once, over the Engine API connection the gate polls over: a
// docker CLI on the host costs a process and 0.1–0.5 s each (`docker info` the most), a request a few ms.
import * as crypto from 'crypto';
import type { Engine } from './engine-api';

/** The bound on each read (ms). */
const BOUND_MS = 15_000;

/** What `GET /info` says of the engine and its swarm. */
export interface EngineInfo {
  version: string;
  swarmState: string;
  manager: boolean;
  /** The id of the node answering. */
  nodeId: string;
  /** The node's Swarm address (what it advertises to the others) and its name, for the host MTU check. */
  nodeAddr: string;
  name: string;
}

interface ApiInfo {
  ServerVersion?: string;
  Name?: string;
  Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean; NodeID?: string; NodeAddr?: string };
}

export async function readInfo(engine: Engine, timeoutMs = BOUND_MS): Promise<EngineInfo> {
  const i = (await engine.get('/info', timeoutMs)) as ApiInfo;
  return {
    version: i.ServerVersion ?? '',
    swarmState: i.Swarm?.LocalNodeState ?? '',
    manager: i.Swarm?.ControlAvailable === true,
    nodeId: i.Swarm?.NodeID ?? '',
    nodeAddr: i.Swarm?.NodeAddr ?? '',
    name: i.Name ?? '',
  };
}

/** What the pre-flight and the failure report read of a node in `GET /nodes`. */
export interface ApiNode {
  ID?: string;
  Description?: {
    Hostname?: string;
    Platform?: { OS?: string; Architecture?: string };
    Engine?: { Labels?: Record<string, string> };
  };
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Status?: { State?: string };
}

/** Every node of the swarm as `docker node inspect` prints it (only a manager can answer). */
export async function readApiNodes(engine: Engine, timeoutMs = BOUND_MS): Promise<ApiNode[]> {
  return (await engine.get('/nodes', timeoutMs)) as ApiNode[];
}

/** Name → sha256 of the content of the Swarm configs on the host. */
export async function readConfigHashes(engine: Engine, timeoutMs = BOUND_MS): Promise<Record<string, string>> {
  const configs = (await engine.get('/configs', timeoutMs)) as { Spec?: { Name?: string; Data?: string } }[];
  const out: Record<string, string> = {};
  for (const c of configs) {
    if (!c.Spec?.Name) continue;
    const data = Buffer.from(c.Spec.Data ?? '', 'base64');
    out[c.Spec.Name] = crypto.createHash('sha256').update(data).digest('hex');
  }
  return out;
}
