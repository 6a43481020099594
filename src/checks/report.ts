/** Findings as GitHub annotations and as the job summary's table. */
import * as core from '@actions/core';
import { Finding } from './types';

/** A markdown table cell: pipes escaped, on one line. */
export function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/**
 * Emits each finding as a GitHub annotation and returns the counts and a markdown table for the
 * job summary (the caller writes it).
 */
export function reportFindings(findings: Finding[]): {
  errors: number;
  warnings: number;
  notices: number;
  markdown: string;
} {
  let errors = 0;
  let warnings = 0;
  let notices = 0;
  for (const f of findings) {
    const props = { title: f.rule, file: f.file, startLine: f.line, startColumn: f.col };
    const msg = `[${f.stack}${f.service ? `/${f.service}` : ''}] ${f.message}`;
    if (f.severity === 'error') {
      errors++;
      core.error(msg, props);
    } else if (f.severity === 'warning') {
      warnings++;
      core.warning(msg, props);
    } else {
      notices++;
      core.notice(msg, props);
    }
  }
  const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
  const lines = [
    `Pre-flight checks: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}, ${plural(notices, 'notice')}.`,
    '',
  ];
  if (findings.length) {
    lines.push('| File | Rule | Severity | Stack / service | Message |', '| --- | --- | --- | --- | --- |');
    for (const f of findings) {
      lines.push(
        `| ${cell(`${f.file}:${f.line}:${f.col}`)} | \`${f.rule}\` | ${f.severity} | ` +
          `${cell(f.stack + (f.service ? ` / ${f.service}` : ''))} | ${cell(f.message)} |`,
      );
    }
    lines.push('');
  }
  return { errors, warnings, notices, markdown: lines.join('\n') };
}
