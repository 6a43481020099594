import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LayerOutcome, ServiceRow } from '../../src/layer';
import { SummaryInput, renderSummary } from '../../src/summary';

function row(p: Partial<ServiceRow> = {}): ServiceRow {
  return {
    stack: 'app',
    service: 'app_web',
    before: '1.0.0',
    after: '1.1.0',
    image: 'reg/app/web:1.1.0@sha256:0123456789ab',
    replicas: '2/2',
    state: 'healthy',
    seconds: 12.5,
    detail: '',
    ...p,
  };
}

function layer(stack: string, rows: ServiceRow[], p: Partial<LayerOutcome> = {}): LayerOutcome {
  return { stack, result: 'deployed', rows, images: {}, polls: 3, ...p };
}

function input(p: Partial<SummaryInput> = {}): SummaryInput {
  return {
    title: 'Deploy',
    result: 'deployed',
    release: '1.1.0',
    host: 'vps.example.com',
    seconds: 42,
    versions: { web: '1.1.0', api: '2.0.0' },
    layers: [
      layer('infra', [
        row({
          stack: 'infra',
          service: 'infra_proxy',
          before: '2.4',
          after: '2.4',
          image: 'traefik:2.4',
          replicas: '1/global',
        }),
      ]),
      layer('app', [
        row(),
        row({
          service: 'app_api',
          before: '—',
          after: '2.0.0',
          image: 'reg/app/api:2.0.0',
          replicas: '1/1',
          seconds: 3,
        }),
      ]),
    ],
    ...p,
  };
}

const tableRows = (md: string, header: RegExp) => {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => header.test(l));
  if (start < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    out.push(l);
  }
  return out;
};

/** Splits a markdown table row on unescaped pipes. */
const cells = (line: string) =>
  line
    .replace(/^\|\s?|\s?\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());

test('renderSummary: heading with icon and result, release, host and duration', () => {
  const md = renderSummary(input());
  assert.match(md.split('\n')[0], /^## ✅ Deploy: deployed$/);
  assert.match(md, /Release \*\*1\.1\.0\*\* on `vps\.example\.com` in 42 s\./);
  assert.match(renderSummary(input({ result: 'failed' })).split('\n')[0], /^## ❌ /);
  assert.match(renderSummary(input({ result: 'rolled-back' })).split('\n')[0], /^## ↩️ /);
  assert.doesNotMatch(renderSummary(input({ host: '' })), / on `/);
});

test('renderSummary: one row per service across layers, with its image and before → after', () => {
  const md = renderSummary(input());
  const rows = tableRows(md, /^\| layer \| service \| image \| version before → after/);
  assert.equal(rows.length, 3);
  assert.deepEqual(cells(rows[0]), [
    'infra',
    'infra_proxy',
    '`traefik:2.4`',
    '2.4 → 2.4',
    '1/global',
    'healthy',
    '12.5 s',
  ]);
  assert.deepEqual(cells(rows[1]), [
    'app',
    'app_web',
    '`reg/app/web:1.1.0@sha256:0123456789ab`',
    '1.0.0 → 1.1.0',
    '2/2',
    'healthy',
    '12.5 s',
  ]);
  assert.deepEqual(cells(rows[2]), ['app', 'app_api', '`reg/app/api:2.0.0`', '— → 2.0.0', '1/1', 'healthy', '3 s']);
  for (const r of rows) assert.equal(cells(r).length, 7);
});

test('renderSummary: the versions table lists every service', () => {
  const rows = tableRows(renderSummary(input()), /^\| service \| version \|$/);
  assert.deepEqual(rows, ['| web | 1.1.0 |', '| api | 2.0.0 |']);
});

test('renderSummary: no tables when there are no versions or rows', () => {
  const md = renderSummary(input({ versions: {}, layers: [] }));
  assert.doesNotMatch(md, /\| service \| version \|/);
  assert.doesNotMatch(md, /\| layer \|/);
});

test('renderSummary: on failure, the error in a text block under "Why it failed"', () => {
  const error =
    'Stack app failed its health gate.\n  app_web: a task of the new version failed\n    task abc (slot 1) failed, exit 1: boom';
  const md = renderSummary(input({ result: 'failed', error }));
  assert.ok(md.includes(['### Why it failed', '', '```text', error, '```'].join('\n')));
  assert.doesNotMatch(renderSummary(input()), /Why it failed|```/);
});

test('renderSummary: | in cells is escaped and newlines become <br>, so the table keeps its columns', () => {
  const md = renderSummary(
    input({
      versions: { 'we|b': '1|2' },
      layers: [layer('app', [row({ service: 'app|web', before: 'a|b', after: 'c', state: 'failed | rolled\nback' })])],
    }),
  );
  assert.ok(md.includes('| we\\|b | 1\\|2 |'));
  const rows = tableRows(md, /^\| layer \|/);
  assert.equal(rows.length, 1);
  assert.deepEqual(cells(rows[0]), [
    'app',
    'app\\|web',
    '`reg/app/web:1.1.0@sha256:0123456789ab`',
    'a\\|b → c',
    '2/2',
    'failed \\| rolled<br>back',
    '12.5 s',
  ]);
  assert.doesNotMatch(rows[0], /\n/);
});

test('renderSummary: pre-flight checks and notes', () => {
  const md = renderSummary(
    input({
      result: 'checked',
      checks: '| rule | where |\n| --- | --- |\n| no-healthcheck | app.yml:3 |',
      notes: ['service/web/VERSION says 1.0 but the release tag is v1.1.', 'second'],
    }),
  );
  assert.match(md, /### Pre-flight checks\n\n\| rule \| where \|/);
  assert.match(md, /^> service\/web\/VERSION says 1\.0 but the release tag is v1\.1\.$/m);
  assert.match(md, /^> second$/m);
  assert.match(md.split('\n')[0], /🔎/);
});

test('renderSummary: what a layer did besides the gate (a generated secret, never its value) is a note', () => {
  const md = renderSummary(
    input({
      layers: [layer('app', [row()], { notes: ['Secrets of app: generated redis_password (value never shown).'] })],
    }),
  );
  assert.match(md, /^> Secrets of app: generated redis_password \(value never shown\)\.$/m);
});
