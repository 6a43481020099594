import { InputError } from './errors';
import { Shell, shellJoin } from './host/shell';

/** One deploy or rollback of one stack, as the host remembers it. */
export interface ReleaseRecord {
  id: string;
  release: string;
  kind: 'deploy' | 'rollback';
  /** `started` is written before `docker stack deploy`; a record still `started` is a run that was interrupted. */
  result: 'started' | 'deployed' | 'rolled-back' | 'failed';
  time: string;
  /** Folder on the host with the interpolated stack files of this release. */
  dir: string;
  composePaths: string[];
  versions: Record<string, string>;
  /** Full service name → image reference with digest, as Swarm ran it. */
  images: Record<string, string>;
  /** What the gate watches when this release is deployed again. */
  watch: { name: string; expectedImage: string; stabilityMs: number }[];
  /** The gate's timeout for this release, so that deploying it again waits as long. */
  timeoutS?: number;
  /** Swarm secret names this release used (never values). */
  secrets?: string[];
  /** Content hashes of the bind-mounted files it used (folders under `files/`). */
  files?: string[];
  sha: string;
  ref: string;
  actor: string;
  runUrl: string;
}

export interface Ledger {
  version: 1;
  stack: string;
  releases: ReleaseRecord[];
}

export function stackDir(remoteDir: string, stack: string): string {
  return `${remoteDir}/stacks/${stack}`;
}

/** Where the host keeps a stack's bind-mounted files: `<files>/<content hash>/<name>`. */
export function filesDir(remoteDir: string, stack: string): string {
  return `${stackDir(remoteDir, stack)}/files`;
}

export function parseLedger(text: string, where: string, stack: string): Ledger {
  let data: Ledger;
  try {
    data = JSON.parse(text) as Ledger;
  } catch (e) {
    throw new InputError(
      `The deploy history ${where} of stack "${stack}" is corrupt (${(e as Error).message}). Nothing was ` +
        `changed. Fix or move the file by hand; each release folder next to it holds its stack files.`,
    );
  }
  if (data?.version !== 1 || !Array.isArray(data.releases)) {
    throw new InputError(
      `The deploy history ${where} of stack "${stack}" is corrupt: not a deploy-action ledger (version 1). ` +
        `Nothing was changed. Fix or move the file by hand; each release folder next to it holds its stack ` +
        `files.`,
    );
  }
  return data;
}

export async function readLedger(remote: Shell, remoteDir: string, stack: string): Promise<Ledger | null> {
  const file = `${stackDir(remoteDir, stack)}/ledger.json`;
  const res = await remote.sh(
    `if [ -f ${shellJoin([file])} ]; then cat ${shellJoin([file])}; else echo '@@none@@'; fi`,
    { retry: true },
  );
  if (res.code !== 0) throw new Error(`${remote.where}: cannot read ${file}: ${res.stderr.trim()}`);
  if (res.stdout.trim() === '@@none@@') return null;
  return parseLedger(res.stdout, `${remote.where}:${file}`, stack);
}

/**
 * Adds a record (or replaces the one with its id) and keeps the newest `keep` release folders:
 * written to a temp file and renamed, so a reader never sees half a ledger.
 */
export async function saveRecord(
  remote: Shell,
  remoteDir: string,
  stack: string,
  ledger: Ledger | null,
  rec: ReleaseRecord,
  keep: number,
  prune = true,
): Promise<Ledger> {
  const others = (ledger?.releases ?? []).filter((r) => r.id !== rec.id);
  const next: Ledger = { version: 1, stack, releases: [...others, rec] };
  if (!prune) {
    await remote.writeFile(`${stackDir(remoteDir, stack)}/ledger.json`, JSON.stringify(next, null, 2) + '\n');
    return next;
  }
  const { ledger: pruned, dropped, droppedFiles } = pruneLedger(next, keep);
  await remote.writeFile(`${stackDir(remoteDir, stack)}/ledger.json`, JSON.stringify(pruned, null, 2) + '\n');
  if (dropped.length) await remote.run(['rm', '-rf', '--', ...dropped]);
  // A shipped folder may have lost u+w (a read-only config folder): give it back before removing.
  const files = droppedFiles
    .filter((h) => /^[0-9a-f]{16}$/.test(h))
    .map((h) => shellJoin([`${filesDir(remoteDir, stack)}/${h}`]));
  if (files.length) await remote.sh(`chmod -R u+w ${files.join(' ')} 2>/dev/null; rm -rf ${files.join(' ')}`);
  return pruned;
}

/**
 * Keeps the folders of the newest `keep` releases that deployed (what a rollback can go back to)
 * and the shipped files they use,
 * and the records of failed attempts since the oldest of them; older records and folders go.
 * Failed attempts do not count: two failed deploys must not push the last good release out.
 */
export function pruneLedger(
  ledger: Ledger,
  keep: number,
): { ledger: Ledger; dropped: string[]; droppedFiles: string[] } {
  const keptDirs = new Set(
    ledger.releases
      .filter((r) => r.result === 'deployed')
      .slice(-keep)
      .map((r) => r.dir),
  );
  const oldest = ledger.releases.findIndex((r) => keptDirs.has(r.dir));
  const releases = ledger.releases.filter(
    (r, i) => keptDirs.has(r.dir) || (oldest >= 0 && i > oldest && r.result !== 'deployed'),
  );
  const still = new Set(releases.map((r) => r.dir));
  const dropped = [...new Set(ledger.releases.map((r) => r.dir))].filter((d) => !still.has(d));
  // Shipped files are shared by the releases with the same content: they go with the last one using them.
  const stillFiles = new Set(releases.flatMap((r) => r.files ?? []));
  const droppedFiles = [...new Set(ledger.releases.flatMap((r) => r.files ?? []))].filter((h) => !stillFiles.has(h));
  return { ledger: { ...ledger, releases }, dropped, droppedFiles };
}

/**
 * The release that runs now: the newest record that deployed, or one whose run was interrupted
 * after `docker stack deploy` (Swarm may have finished rolling it out).
 */
export function currentRelease(ledger: Ledger): ReleaseRecord | undefined {
  return [...ledger.releases].reverse().find((r) => r.result === 'deployed' || r.result === 'started');
}

/**
 * `previous`: the release deployed before the current one in forward history, so that two
 * rollbacks in a row walk back 1.2 → 1.1 → 1.0 rather than bouncing. A label or service version otherwise.
 */
export function findTarget(ledger: Ledger, to: string): ReleaseRecord {
  const ok = ledger.releases.filter((r) => r.result === 'deployed');
  const current = currentRelease(ledger);
  if (to === 'previous') {
    if (!current)
      throw new InputError(`Stack "${ledger.stack}" has no successful release on record to roll back from.`);
    const forward = ledger.releases.filter((r) => r.kind === 'deploy' && (r.result === 'deployed' || r === current));
    const at = forward.map((r) => r.release).lastIndexOf(current.release);
    const before = forward
      .slice(0, at < 0 ? forward.length : at)
      .reverse()
      .find((r) => r.release !== current.release);
    if (!before)
      throw new InputError(
        `Stack "${ledger.stack}" has no release before ${current.release} on record. ${available(ledger)}`,
      );
    return before;
  }
  const byLabel = [...ok].reverse().find((r) => r.release === to || r.release === to.replace(/^v/, ''));
  const byVersion = [...ok]
    .reverse()
    .find((r) => Object.values(r.versions).some((v) => v === to || v === to.replace(/^v/, '')));
  const hit = byLabel ?? byVersion;
  if (!hit)
    throw new InputError(`Stack "${ledger.stack}" has no successful release "${to}" on record. ${available(ledger)}`);
  return hit;
}

/**
 * The releases a rollback can go to, newest first, each with what its services ran and when (UTC):
 * `sha-05e17b6: api 1.1.0, web 2.0.0 — 2026-12-01 14:02`. A label is listed once, by its newest record.
 */
export function available(ledger: Ledger): string {
  const current = currentRelease(ledger);
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const r of [...ledger.releases].reverse()) {
    if (r.result !== 'deployed' || seen.has(r.release)) continue;
    seen.add(r.release);
    const versions = serviceVersions(ledger.stack, r);
    const marks = [r.kind === 'rollback' && 'rolled back to', r === current && 'current'].filter(Boolean).join(', ');
    lines.push(
      `${r.release}: ${versions || 'no service'} — ` +
        `${r.time.slice(0, 16).replace('T', ' ')}${marks ? ` (${marks})` : ''}`,
    );
  }
  return lines.length ? `Known releases, newest first (UTC):\n  ${lines.join('\n  ')}` : 'No release on record.';
}

/** `api 1.1.0, web 2.0.0`: each service of the stack and the tag of the image it ran. */
function serviceVersions(stack: string, r: ReleaseRecord): string {
  const tagOf = (image: string) => {
    const last = image.split('@')[0].split('/').pop() ?? '';
    const i = last.indexOf(':');
    return i < 0 ? 'latest' : last.slice(i + 1);
  };
  const pairs = (r.watch ?? []).map((w) => [
    w.name.startsWith(`${stack}_`) ? w.name.slice(stack.length + 1) : w.name,
    tagOf(w.expectedImage),
  ]);
  // A record without its services (never written so, but hand-edited ledgers exist): the run's versions.
  const list = pairs.length ? pairs : Object.entries(r.versions ?? {});
  return list
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}
