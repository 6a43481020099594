import { createHash, randomBytes } from 'crypto';
import { shellJoin } from './shell';

/**
 * The script and here-document that install `content` at `remotePath` only when every byte arrived.
 * Mode 600 unless `mode` is given (a bind-mounted file keeps its own, for a container user that is not the owner).
 */
export function writeFileScript(
  remotePath: string,
  content: string | Buffer,
  mode?: number,
): { script: string; heredoc: string } {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const sum = createHash('sha256').update(bytes).digest('hex');
  const [dir, tmp, file] = [dirname(remotePath), `${remotePath}.tmp.${randomBytes(6).toString('hex')}`, remotePath].map(
    (p) => shellJoin([p]),
  );
  const script = [
    `umask 077 && mkdir -p ${dir} && base64 -d > ${tmp} || { rm -f ${tmp}; exit 1; }`,
    `if [ "$(wc -c < ${tmp} | tr -d ' ')" != ${bytes.length} ] || [ "$(sha256sum < ${tmp} | cut -c1-64)" != ` +
      `${sum} ]; then`,
    `  rm -f ${tmp}; echo "incomplete transfer (length or sha256 differs); the file was left as it was" >&2; exit 1`,
    `fi`,
    ...(mode === undefined
      ? []
      : [`chmod ${(mode & 0o7777).toString(8).padStart(4, '0')} ${tmp} || { rm -f ${tmp}; exit 1; }`]),
    `mv -f ${tmp} ${file}`,
  ].join('\n');
  return { script, heredoc: bytes.toString('base64') };
}

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : p.slice(0, i);
}
