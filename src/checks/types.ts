/** What a pre-flight rule is, what it reads and what it reports. */
import { ComposeFile, NodePath } from '../compose';
import { StackModel } from '../model';

export type Severity = 'error' | 'warning' | 'notice';

export interface Finding {
  rule: string;
  severity: Severity;
  file: string;
  line: number;
  col: number;
  stack: string;
  service?: string;
  /** What is wrong, and the fix. */
  message: string;
}

export interface CheckOptions {
  /** Rule ids switched off for the whole run. */
  skip?: string[];
  /** Name of an existing Swarm config/secret on the host → sha256 hex of its content, when known. */
  existingObjects?: Record<string, string>;
  /**
   * Swarm networks Traefik uses by default (its providers.docker/swarm.network), read from every
   * stack of the run (traefikProviderNetworks): the proxy is usually in another stack than the app.
   * When absent, read from this stack only.
   */
  traefikNetworks?: string[];
  /** Input `timeout` in seconds, when explicit (timeout-too-short). */
  timeout?: number;
  /** Input `stability` in seconds, when fixed. */
  stability?: number;
}

/** Where a finding points: a key path (placed in the file that sets it) or a position. */
export type At = NodePath | { file: ComposeFile; line: number; col: number };

/** A rule's finding before the runner drops the switched-off ones and places the others. */
export interface Raw {
  severity: Severity;
  at: At;
  message: string;
  /** The service, network, config or secret it is about: its skip label and comments apply. */
  entity?: NodePath;
  /** The service, when no entity is given. */
  service?: string;
}

/** The model of one stack, the run's options, and the facts several rules share. */
export interface CheckModel extends StackModel {
  opts: CheckOptions;
  /** Swarm's name of a network key of the stack. */
  netName(key: string): string;
  /** Whether the stack declares the network (`default` always is). */
  declared(key: string): boolean;
  /** Swarm network name → the proxy service (or `Traefik (via <service>)`) that is on it. */
  proxyNets: Map<string, string>;
  /** Traefik's default networks (the run's, else this stack's). */
  traefikDefaults(): string[];
}

export interface Rule {
  id: string;
  /** Every severity it reports with, the usual one first. */
  severities: Severity[];
  /** The severity column of the rules table in docs/checks.md. */
  table: string;
  summary: string;
  /** A stack that trips it, as docs/checks.md shows it (undefined: the rule needs the host's facts). */
  example?: string;
  /** Options the example needs (an explicit timeout, the host's configs). */
  exampleOptions?: CheckOptions;
  /** Reads the model; rules that need the swarm's facts (placement.ts) or a load error have none. */
  check?: (m: CheckModel) => Raw[];
}
