import { Rule } from '../types';

// Need the swarm's nodes: placementFindings and bindMountFindings (placement.ts) run them once connected.
export const placement: Rule = {
  id: 'placement',
  severities: ['error'],
  table: 'error (connected)',
  summary: 'placement constraints no node meets, or replicas that cannot fit (connected)',
};

export const bindMountNode: Rule = {
  id: 'bind-mount-node',
  severities: ['warning'],
  table: 'warning (connected)',
  summary: 'relative bind mount of a service that can run on a node other than the manager (connected)',
};
