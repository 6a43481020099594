/**
 * Pre-flight checks of a stack's files: the mistakes that cost Swarm-behind-Traefik teams hours,
 * found before anything reaches the host. Each rule is a module of rules/ with a stable id
 * (docs/checks.md), its severities and a message that says what is wrong and how to fix it.
 */
export * from './types';
export { RULES, RULE_IDS, rulesTable } from './catalog';
export { checkModel, checkStack, runRules } from './run';
export { statefulKind, swarmNetworkName, namedVolumes } from './facts';
export { traefikProviderNetworks } from './traefik';
export { DOCKER_OVERLAY_MTU, OverlayNetwork, hostMtuFindings, overlayNetworks } from './mtu';
export { reportFindings } from './report';
