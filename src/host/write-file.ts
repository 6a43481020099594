import { createHash, randomBytes } from 'crypto';
import { posix } from 'path';
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
  const [dir, tmp, file] = [
    posix.dirname(remotePath),
    `${remotePath}.tmp.${randomBytes(6).toString('hex')}`,
    remotePath,
  ].map((p) => shellJoin([p]));
  // Few processes: on a small host each one costs milliseconds, and a deploy writes several files.
  const script = [
    `umask 077 && { [ -d ${dir} ] || mkdir -p ${dir}; } && base64 -d > ${tmp} || { rm -f ${tmp}; exit 1; }`,
    // A cut-short transfer differs in its sha256 (which covers the length too).
    `s=$(sha256sum < ${tmp}) || s=`,
    `if [ "\${s%% *}" != ${sum} ]; then`,
    `  rm -f ${tmp}; echo "incomplete transfer (sha256 differs); the file was left as it was" >&2; exit 1`,
    `fi`,
    ...(mode === undefined
      ? []
      : [`chmod ${(mode & 0o7777).toString(8).padStart(4, '0')} ${tmp} || { rm -f ${tmp}; exit 1; }`]),
    `mv -f ${tmp} ${file}`,
  ].join('\n');
  return { script, heredoc: bytes.toString('base64') };
}
