import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileScript } from '../../src/remote';

const sh = (script: string, stdin: string) => spawnSync('sh', ['-c', script], { input: stdin, encoding: 'utf8' });

function target(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'write-'));
  const file = path.join(dir, 'ledger.json');
  fs.writeFileSync(file, 'the good copy');
  return file;
}

test('writeFile: a here-document cut short leaves the file as it was, and no temp file', () => {
  const file = target();
  const w = writeFileScript(file, JSON.stringify({ releases: Array.from({ length: 200 }, (_, i) => ({ i })) }));
  // The channel was cut after the first 100 base64 characters (a whole number of 4-character groups).
  const r = sh(w.script, w.heredoc.slice(0, 100));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /incomplete transfer/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'the good copy');
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['ledger.json']);
});

test('writeFile: the bytes that arrived whole are installed, binary content byte for byte', () => {
  const file = target();
  const bytes = Buffer.from([0, 255, 254, 10, 13, 0x80, 0xc3, 0x28, 65]);
  const w = writeFileScript(file, bytes);
  const r = sh(w.script, w.heredoc);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.readFileSync(file).equals(bytes));
});

test('writeFile: two writes of one file never share a temp name', () => {
  const a = writeFileScript('/x/ledger.json', 'a').script.match(/ledger\.json\.tmp\.[0-9a-f]+/)?.[0];
  const b = writeFileScript('/x/ledger.json', 'a').script.match(/ledger\.json\.tmp\.[0-9a-f]+/)?.[0];
  assert.ok(a && b && a !== b);
});

test('writeFile: a path with spaces, quotes and shell syntax is one literal path', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'write-'));
  const file = path.join(dir, "inj a;b$(touch pwned)`x`'q.yml");
  const w = writeFileScript(file, 'services: {}\n');
  const r = sh(w.script, w.heredoc);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fs.readFileSync(file, 'utf8'), 'services: {}\n');
  assert.deepEqual(fs.readdirSync(dir), [path.basename(file)]);
});
