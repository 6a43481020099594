// Whether the images the stacks name are in the registry, asked before anything is deployed.
import type { Runner } from './exec';
import type { Engine } from './host/engine-api';
import { plainHttp } from './build';

export interface ImageCheck {
  missing: string[];
  unreadable: { image: string; why: string }[];
}

/** Registry look-ups at the same time: each is a docker CLI (~50 ms of the host's CPU) waiting on the registry. */
const IMAGE_LOOKUPS = 4;

/** `f` over every item, at most `limit` at a time; the results in the items' order. */
async function mapLimit<T, R>(items: T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Asks the registry for each image (on the runner, or on the host with its login). Only an answer
 * that the tag is not there counts as missing: an unreachable registry or a refused login is left
 * for the deploy to report, as before.
 */
export async function missingImages(runner: Runner, images: string[]): Promise<ImageCheck> {
  const out: ImageCheck = { missing: [], unreadable: [] };
  const unique = [...new Set(images)];
  const insecure = await plainHttp(runner, unique);
  // One CLI each, at most IMAGE_LOOKUPS at a time (each its own channel on a host): not one after another.
  const results = await mapLimit(unique, IMAGE_LOOKUPS, (image) => {
    const argv = ['docker', 'manifest', 'inspect'];
    if (insecure(image)) argv.push('--insecure');
    return runner
      .run([...argv, image], { silent: true, concurrent: true })
      .catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
  });
  unique.forEach((image, i) => {
    const res = results[i];
    if (res.code === 0) return;
    const why = (res.stderr || res.stdout).trim().split('\n').slice(-1)[0] ?? '';
    if (/no such manifest|manifest unknown|not found/i.test(why)) out.missing.push(image);
    else out.unreadable.push({ image, why: why.slice(0, 200) });
  });
  return out;
}

/** Bound on one look-up through the engine: past it the CLI asks (a stalled registry). */
const ENGINE_LOOKUP_MS = 10_000;

/**
 * Asks the host's engine first (GET /distribution/…/json): the registry as the engine that pulls sees
 * it, and no process on the host. Only its "there" is taken: it asks without the host's login, so any
 * other answer (not found, refused, unreachable) is asked again with the CLI, which decides as before.
 */
export async function missingImagesOnHost(engine: Engine, runner: Runner, images: string[]): Promise<ImageCheck> {
  const unique = [...new Set(images)];
  // A reference goes into the request's path as it is: anything but its usual characters goes to the CLI.
  const there = await mapLimit(
    unique,
    IMAGE_LOOKUPS,
    async (image) =>
      /^[\w./:@-]+$/.test(image) &&
      engine.get(`/distribution/${image}/json`, ENGINE_LOOKUP_MS).then(
        () => true,
        () => false,
      ),
  );
  const ask = unique.filter((_, i) => !there[i]);
  return ask.length ? missingImages(runner, ask) : { missing: [], unreadable: [] };
}
