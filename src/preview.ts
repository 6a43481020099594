/**
 * Pull request previews: a stack named `<name>-pr-<N>` is (part of) the preview of pull request N.
 * Input `max-previews` caps how many pull requests have one live on the host; the count comes from
 * the host's stacks, so previews deployed by other runs and workflows count too.
 */
import { InputError } from './errors';
import { Shell } from './host/shell';

const PREVIEW = /^(.+)-pr-([1-9][0-9]*)$/;

/** The pull request number of a preview stack name, or undefined. */
export function previewNumber(stack: string): number | undefined {
  const m = PREVIEW.exec(stack);
  return m ? Number(m[2]) : undefined;
}

/** Live previews by pull request number, from a list of stack names. */
export function livePreviews(stacks: string[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const s of stacks) {
    const n = previewNumber(s);
    if (n !== undefined) out.set(n, [...(out.get(n) ?? []), s]);
  }
  return out;
}

/**
 * Throws the InputError of a deploy that would start the preview of one more pull request when
 * `max` are live. A pull request whose preview is live already is updated whatever the count.
 */
export function capVerdict(deploying: string[], live: Map<number, string[]>, max: number, where: string): void {
  if (!max) return;
  const fresh = [...new Set(deploying.map(previewNumber).filter((n): n is number => n !== undefined && !live.has(n)))];
  if (!fresh.length || live.size + fresh.length <= max) return;
  const list = [...live].sort(([a], [b]) => a - b).map(([n, s]) => `  pull request #${n}: ${s.sort().join(', ')}`);
  throw new InputError(
    `Input \`max-previews\` is ${max} and ${live.size} pull request preview(s) are live on ${where}; ` +
      `the preview of #${fresh.join(', #')} would be one more. Nothing was deployed. ` +
      `Live previews:\n${list.join('\n')}\n` +
      'Close a pull request (its preview is removed), remove one (command: remove), or raise max-previews.',
  );
}

/** Reads the host's stacks and applies the cap; reads only. */
export async function checkPreviewCap(host: Shell, deploying: string[], max: number): Promise<void> {
  if (!max || !deploying.some((s) => previewNumber(s) !== undefined)) return;
  const res = await host.run(['docker', 'stack', 'ls', '--format', '{{.Name}}'], { retry: true, silent: true });
  if (res.code !== 0)
    throw new Error(`${host.where}: cannot list the stacks (to count the live previews): ${res.stderr.trim()}`);
  capVerdict(
    deploying,
    livePreviews(
      res.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    ),
    max,
    host.where,
  );
}
