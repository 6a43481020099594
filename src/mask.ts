import * as core from '@actions/core';

// Every secret the action knows, longest first when redacting: the runner masks the log, but the job
// summary is a file it never reads, and a crashing task can print anything.
const known = new Set<string>();

/** Masks a secret in the log (and each of its lines, for multi-line keys) and remembers it for redact(). */
export function addMask(value: string): void {
  if (!value) return;
  core.setSecret(value);
  known.add(value);
  for (const line of value.split(/\r?\n/)) {
    const l = line.trim();
    if (l.length > 8) {
      core.setSecret(l);
      known.add(l);
    }
  }
}

/** The text with every known secret replaced by `***`, as the runner does in the log. */
export function redact(text: string): string {
  let out = text;
  for (const s of [...known].sort((a, b) => b.length - a.length)) if (s.length >= 4) out = out.split(s).join('***');
  return out;
}
