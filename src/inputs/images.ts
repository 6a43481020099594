import { InputError } from '../errors';
import { parseVersions } from './versions';
import { Get, bool, oneOf, parseKeyValues } from './values';

/** What is built and pushed, under which names and versions. */
export interface ImageInputs {
  services: string;
  registry: string;
  registryUsername: string;
  registryPassword: string;
  imagePrefix: string;
  /** Versions set from outside (input `versions`): they win over VERSION files. */
  versions: Record<string, string>;
  buildArgs: Record<string, string>;
  target: string;
  rebuild: boolean;
  releaseTagCheck: 'warn' | 'strict' | 'off';
  release: string;
}

const REGISTRY = /^[A-Za-z0-9.-]+(:\d+)?$/;
const IMAGE_PREFIX = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const RELEASE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/;

export function readImages(get: Get, env: NodeJS.ProcessEnv): ImageInputs {
  const registry = get('registry').trim();
  if (registry && !REGISTRY.test(registry))
    throw new InputError(`Input \`registry\` "${registry}" is not a registry host[:port].`);
  const imagePrefix = get('image-prefix')
    .trim()
    .replace(/^\/+|\/+$/g, '');
  if (imagePrefix && !IMAGE_PREFIX.test(imagePrefix)) {
    throw new InputError(
      `Input \`image-prefix\` "${imagePrefix}" is not a valid image repository path ` +
        '(lower-case letters, digits, . _ - and /).',
    );
  }
  const release = get('release').trim() || defaultRelease(env.GITHUB_REF, env.GITHUB_SHA);
  if (!RELEASE.test(release))
    throw new InputError(`Input \`release\` "${release}" must be letters, digits, . _ + - (at most 128).`);
  return {
    services: (get('services') || 'service/*').trim(),
    registry,
    registryUsername: get('registry-username').trim(),
    registryPassword: get('registry-password'),
    imagePrefix,
    versions: parseVersions(get('versions')),
    buildArgs: parseKeyValues(get('build-args'), 'build-args', { secret: true }),
    target: get('target').trim(),
    rebuild: bool(get, 'rebuild'),
    releaseTagCheck: oneOf(get, 'release-tag-check', ['warn', 'strict', 'off'] as const),
    release,
  };
}

/** Release tag: `refs/tags/v1.2.3` → `1.2.3`; otherwise `sha-<7>`. */
export function defaultRelease(ref: string | undefined, sha: string | undefined): string {
  const m = /^refs\/tags\/v?(.+)$/.exec(ref ?? '');
  if (m && RELEASE.test(m[1])) return m[1];
  return `sha-${(sha ?? 'unknown').slice(0, 7)}`;
}
