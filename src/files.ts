/**
 * Files and folders that stacks bind-mount with a relative source (`./config/traefik.yml:/etc/…`).
 * Docker resolves such a source on the host, against the folder of the stack's first compose file:
 * the action ships each one to the host, under a folder named by its content, and points the
 * uploaded stack file at it. Same content, same path: an unchanged file rolls no task. A changed
 * one gets a new path, so Swarm updates the services that mount it (through the gate), and the
 * release before still points at its own copy: a rollback gets its own files back.
 */
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { InputError } from './errors';
import { filesDir } from './ledger';
import { Shell, shellJoin } from './host/shell';

export interface ShippedEntry {
  /** Path below the shipped file or folder ('' for the file or folder itself), with `/`. */
  sub: string;
  kind: 'file' | 'dir';
  /** Permission bits of the local file (git keeps 644 or 755). */
  mode: number;
  content?: Buffer;
}

export interface ShippedPath {
  /** 16 hex of a hash of the name, the tree, each entry's mode and bytes. */
  hash: string;
  /** Base name of the local path: the host keeps it as `<files>/<hash>/<name>`. */
  name: string;
  /** Relative to working-directory, for messages. */
  rel: string;
  kind: 'file' | 'dir';
  entries: ShippedEntry[];
}

/** Reads a file or a folder (recursively, symbolic links followed) and names it by its content. */
export function shipPath(abs: string, rel: string): ShippedPath {
  const entries: ShippedEntry[] = [];
  const seen = new Set<string>();
  const walk = (p: string, sub: string, depth: number): void => {
    const st = fs.statSync(p);
    if (st.isFile()) {
      entries.push({ sub, kind: 'file', mode: st.mode & 0o777, content: fs.readFileSync(p) });
      return;
    }
    if (!st.isDirectory())
      throw new InputError(
        `${rel}${sub ? `/${sub}` : ''} is neither a file nor a folder: it cannot be shipped for a bind mount.`,
      );
    const real = fs.realpathSync(p);
    if (seen.has(real) || depth > 32)
      throw new InputError(
        `${rel}${sub ? `/${sub}` : ''}: a symbolic link loops back into the folder: it cannot be shipped for a ` +
          `bind mount.`,
      );
    seen.add(real);
    entries.push({ sub, kind: 'dir', mode: st.mode & 0o777 });
    for (const name of fs.readdirSync(p).sort()) walk(path.join(p, name), sub ? `${sub}/${name}` : name, depth + 1);
    seen.delete(real);
  };
  walk(abs, '', 0);
  const name = path.basename(abs);
  const h = createHash('sha256').update(`${name}\0`);
  for (const e of entries) {
    h.update(`${e.kind}\0${e.mode.toString(8)}\0${e.sub}\0`);
    if (e.content) h.update(createHash('sha256').update(e.content).digest('hex'));
    h.update('\n');
  }
  return { hash: h.digest('hex').slice(0, 16), name, rel, kind: entries[0].kind, entries };
}

export { filesDir };

/**
 * The bind source to write in the uploaded stack file: the shipped copy, relative to the folder of
 * the first compose file inside the release folder (`<stack>/releases/<release>/`), which is where
 * Docker resolves it. Relative, so it holds whatever the remote-dir and the user's home are.
 */
export function mountSource(firstComposeRel: string, f: Pick<ShippedPath, 'hash' | 'name'>): string {
  const from = path.posix.join(
    '/stack/releases/release',
    path.posix.dirname(firstComposeRel.split(path.sep).join('/')),
  );
  const rel = path.posix.relative(from, `/stack/files/${f.hash}/${f.name}`);
  return rel.startsWith('.') ? rel : `./${rel}`;
}

/**
 * Puts the shipped files on the host, each under a folder named by its content, unless it is there
 * already: written byte for byte (length and sha256 checked) into a temp folder, modes set, then
 * renamed into place, so a cut connection never leaves half a folder under a hash name.
 */
export async function installFiles(
  host: Shell,
  dir: string,
  files: ShippedPath[],
): Promise<{ shipped: ShippedPath[]; present: ShippedPath[] }> {
  const unique = [...new Map(files.map((f) => [f.hash, f])).values()];
  if (!unique.length) return { shipped: [], present: [] };
  const probe = await host.sh(
    unique.map((f) => `[ -d ${shellJoin([`${dir}/${f.hash}`])} ] && echo ${f.hash}`).join('\n') + '\ntrue',
    { retry: true, silent: true },
  );
  if (probe.code !== 0) throw new Error(`${host.where}: cannot read ${dir}: ${probe.stderr.trim()}`);
  const there = new Set(probe.stdout.split('\n').map((l) => l.trim()));
  const shipped: ShippedPath[] = [];
  for (const f of unique.filter((x) => !there.has(x.hash))) {
    const tmp = `${dir}/.tmp-${f.hash}-${randomBytes(4).toString('hex')}`;
    const at = (e: ShippedEntry) => `${tmp}/${f.name}${e.sub ? `/${e.sub}` : ''}`;
    const dirs = f.entries.filter((e) => e.kind === 'dir');
    // Folders first (an empty one is shipped too), files into them, then the folders' own modes,
    // deepest first, and the rename: nothing is written into a folder after it may have lost u+w.
    if (dirs.length) {
      const mk = await host.sh(`umask 077 && mkdir -p ${dirs.map((d) => shellJoin([at(d)])).join(' ')}`, {
        retry: true,
      });
      if (mk.code !== 0) throw new Error(`${host.where}: cannot create ${tmp}: ${mk.stderr.trim()}`);
    }
    for (const e of f.entries) if (e.kind === 'file') await host.writeFile(at(e), e.content as Buffer, e.mode);
    const chmods = [...dirs].reverse().map((d) => `chmod ${d.mode.toString(8)} ${shellJoin([at(d)])}`);
    const install = [
      ...chmods,
      // Another run of this stack cannot race here (the stack's lock); a folder left by an earlier
      // cut run under this name was complete (renamed in one step): keep it.
      `if [ -d ${shellJoin([`${dir}/${f.hash}`])} ]; then chmod -R u+w ${shellJoin([tmp])}; rm -rf ` +
        `${shellJoin([tmp])}; else mv ${shellJoin([tmp, `${dir}/${f.hash}`])}; fi`,
    ].join(' && ');
    const res = await host.sh(install, { retry: true });
    if (res.code !== 0)
      throw new Error(`${host.where}: cannot install ${f.rel} in ${dir}/${f.hash}: ${res.stderr.trim()}`);
    shipped.push(f);
  }
  return { shipped, present: unique.filter((x) => there.has(x.hash)) };
}
