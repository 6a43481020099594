// One node of a swarm as the action reads it (docker node inspect): a ready, active worker unless overridden.
import { NodeFacts } from '../../src/placement';

export const node = (p: Partial<NodeFacts>): NodeFacts => ({
  id: 'n1',
  hostname: 'vm1',
  role: 'worker',
  labels: {},
  engineLabels: {},
  os: 'linux',
  arch: 'x86_64',
  schedulable: true,
  state: 'ready',
  availability: 'active',
  ...p,
});
