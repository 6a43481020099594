import * as core from '@actions/core';
import type { LayerOutcome } from './layer';

export interface SummaryInput {
  title: string;
  result: string;
  release: string;
  host: string;
  seconds: number;
  versions: Record<string, string>;
  layers: LayerOutcome[];
  /** Pre-flight findings table (markdown), if any. */
  checks?: string;
  error?: string;
  notes?: string[];
}

const ICON: Record<string, string> = {
  deployed: '✅',
  'rolled-back': '↩️',
  failed: '❌',
  checked: '🔎',
  built: '📦',
  removed: '🧹',
  commented: '💬',
};

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, '<br>');
}

/** The job summary: one row per service, the reason on failure. Never holds a secret: only what the log shows. */
export function renderSummary(s: SummaryInput): string {
  const out: string[] = [];
  out.push(`## ${ICON[s.result] ?? ''} ${s.title}: ${s.result}`);
  out.push('');
  out.push(`Release **${s.release}**${s.host ? ` on \`${s.host}\`` : ''} in ${s.seconds} s.`);
  out.push('');
  if (Object.keys(s.versions).length) {
    out.push('| service | version |', '| --- | --- |');
    for (const [k, v] of Object.entries(s.versions)) out.push(`| ${cell(k)} | ${cell(v)} |`);
    out.push('');
  }
  const rows = s.layers.flatMap((l) => l.rows);
  if (rows.length) {
    out.push(
      '| layer | service | image | version before → after | replicas | state | time |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of rows) {
      const where = `${cell(r.stack)} | ${cell(r.service)} | \`${cell(r.image)}\``;
      const change = `${cell(r.before)} → ${cell(r.after)}`;
      out.push(`| ${where} | ${change} | ${r.replicas} | ${cell(r.state)} | ${r.seconds} s |`);
    }
    out.push('');
  }
  if (s.error) out.push('### Why it failed', '', '```text', s.error, '```', '');
  if (s.checks) out.push('### Pre-flight checks', '', s.checks, '');
  for (const n of [...s.layers.flatMap((l) => l.notes ?? []), ...(s.notes ?? [])]) out.push(`> ${n}`, '');
  return out.join('\n');
}

export async function writeSummary(s: SummaryInput): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  await core.summary.addRaw(renderSummary(s), true).write();
}
