/** Traefik's default networks, read from the stacks of a run: the proxy is usually in another stack. */
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { Yaml, isPlainObject, toStringMap } from '../compose';
import { StackModel } from '../model';
import { imageRepo } from './facts';

/** `providers.docker.network` / `providers.swarm.network` of a Traefik static configuration file. */
function staticFileNetworks(file: string, text: string): string[] {
  if (/\.toml$/i.test(file)) {
    // TOML: the network key of a [providers.docker] or [providers.swarm] table.
    const out: string[] = [];
    let inProvider = false;
    for (const line of text.split(/\r?\n/)) {
      const table = /^\s*\[([^\]]+)\]/.exec(line);
      if (table) inProvider = /^\s*providers\.(docker|swarm)\s*$/i.test(table[1]);
      const m = inProvider && /^\s*network\s*=\s*["']([^"']+)["']/.exec(line);
      if (m) out.push(m[1]);
    }
    return out;
  }
  try {
    const doc = YAML.parse(text);
    const providers = isPlainObject(doc) && isPlainObject(doc.providers) ? doc.providers : {};
    return ['docker', 'swarm']
      .map((k) => providers[k]?.network)
      .filter((n): n is string => typeof n === 'string' && n !== '');
  } catch {
    return [];
  }
}

/** `--providers.docker.network=NAME` (v2) / `--providers.swarm.network NAME` (v3) of a command. */
function commandNetworks(command: unknown): string[] {
  const args: string[] = Array.isArray(command)
    ? command.map(String)
    : typeof command === 'string'
      ? command.split(/\s+/)
      : [];
  const out: string[] = [];
  args.forEach((a, i) => {
    const m = /^--providers\.(docker|swarm)\.network(?:=(.*))?$/i.exec(a);
    const v = m ? (m[2] ?? args[i + 1]) : undefined;
    if (v) out.push(v.replace(/^["']|["']$/g, ''));
  });
  return out;
}

/** A Traefik service's static configuration files: given as configs, or bind-mounted. */
function staticFiles(m: StackModel, svc: Record<string, Yaml>): string[] {
  const files: string[] = [];
  const configs = isPlainObject(m.merged.configs) ? m.merged.configs : {};
  for (const c of Array.isArray(svc.configs) ? svc.configs : []) {
    const entry = configs[isPlainObject(c) ? String(c.source) : String(c)];
    if (isPlainObject(entry) && typeof entry.file === 'string') files.push(entry.file);
  }
  for (const v of Array.isArray(svc.volumes) ? svc.volumes : []) {
    const source =
      typeof v === 'string' ? v.split(':')[0] : isPlainObject(v) && v.type === 'bind' ? String(v.source ?? '') : '';
    if (/^[./~]/.test(source)) files.push(source);
  }
  return files.filter((x) => /\.(ya?ml|toml)$/i.test(x));
}

/**
 * Networks Traefik picks by default for every service it routes, from its command
 * (`--providers.docker.network=NAME` v2, `--providers.swarm.network=NAME` v3), its environment
 * (TRAEFIK_PROVIDERS_DOCKER_NETWORK, TRAEFIK_PROVIDERS_SWARM_NETWORK) or its static configuration
 * file (a config or bind-mounted traefik.yml/toml), in any of the given stacks.
 */
export function traefikProviderNetworks(models: StackModel[]): string[] {
  const out = new Set<string>();
  for (const m of models) {
    if (!m.files.length) continue;
    for (const svc of Object.values(m.raw)) {
      commandNetworks(svc.command).forEach((n) => out.add(n));
      const environment = toStringMap(svc.environment);
      for (const k of ['TRAEFIK_PROVIDERS_DOCKER_NETWORK', 'TRAEFIK_PROVIDERS_SWARM_NETWORK'])
        if (environment[k]) out.add(environment[k]);
      if (!/traefik/.test(imageRepo(svc.image))) continue;
      for (const f of staticFiles(m, svc)) {
        let text: string;
        try {
          text = fs.readFileSync(path.resolve(m.baseDir, f), 'utf8');
        } catch {
          continue;
        }
        staticFileNetworks(f, text).forEach((n) => out.add(n));
      }
    }
  }
  return [...out];
}
