// Unit tests of the runner stand-in in __tests__/helpers/action.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  inputEnvName,
  maskLog,
  parseFileCommands,
  parsePathFile,
  parseWorkflowCommands,
  readInputDefaults,
  runAction,
} from '../helpers/action';
import { copyExample, EXAMPLE_DIR, parseExports, serviceVersion, setServiceVersion, waitFor } from '../helpers/lab';

test('parseFileCommands: name=value lines', () => {
  assert.deepEqual(parseFileCommands('a=1\nb=two words\n'), { a: '1', b: 'two words' });
});

test('parseFileCommands: value may hold = and <<', () => {
  assert.deepEqual(parseFileCommands('x=a=b\ny=c<<d\n'), { x: 'a=b', y: 'c<<d' });
});

test('parseFileCommands: heredoc blocks as @actions/core writes them', () => {
  const d = 'ghadelimiter_0f6c9c4e-1b0a-4d7b-9a1e-3c2c5b7d8e9f';
  const text =
    `versions<<${d}\n{"web":"1.0.0"}\n${d}\n` +
    `multi<<${d}\nline 1\n\nline 3\n${d}\n` +
    `empty<<${d}\n\n${d}\n` +
    `plain=after\n`;
  assert.deepEqual(parseFileCommands(text), {
    versions: '{"web":"1.0.0"}',
    multi: 'line 1\n\nline 3',
    empty: '',
    plain: 'after',
  });
});

test('parseFileCommands: a heredoc with no line is the empty string', () => {
  assert.deepEqual(parseFileCommands('k<<EOF\nEOF\n'), { k: '' });
});

test('parseFileCommands: CRLF line ends', () => {
  assert.deepEqual(parseFileCommands('a=1\r\nb<<E\r\nx\r\ny\r\nE\r\n'), { a: '1', b: 'x\ny' });
});

test('parseFileCommands: a later entry wins; blank lines are skipped', () => {
  assert.deepEqual(parseFileCommands('r=1\n\nr<<E\n2\nE\n'), { r: '2' });
});

test('parseFileCommands: the delimiter must be a whole line', () => {
  assert.deepEqual(parseFileCommands('k<<EOF\nnot EOF\nEOF \nEOF\n'), { k: 'not EOF\nEOF ' });
});

test('parseFileCommands: a missing delimiter throws', () => {
  assert.throws(() => parseFileCommands('k<<EOF\nvalue\n'), /matching delimiter 'EOF' not found/);
});

test('parseFileCommands: a line that is no command throws', () => {
  assert.throws(() => parseFileCommands('just text\n'), /invalid line/);
});

test('parseFileCommands: empty file', () => {
  assert.deepEqual(parseFileCommands(''), {});
});

test('parsePathFile', () => {
  assert.deepEqual(parsePathFile('/a/bin\n\n/b/bin\r\n'), ['/a/bin', '/b/bin']);
});

test('parseWorkflowCommands: properties and escapes', () => {
  const log = [
    'plain line',
    '::add-mask::s3cr%25t',
    '::error file=stacks/app.yml,line=12,title=Bad%3A key%2C really::line one%0Aline two',
    '::warning::careful',
    '::group::Deploy',
    '  ::error::indented is not a command',
  ].join('\n');
  const cmds = parseWorkflowCommands(log);
  assert.deepEqual(cmds, [
    { command: 'add-mask', properties: {}, message: 's3cr%t' },
    {
      command: 'error',
      properties: { file: 'stacks/app.yml', line: '12', title: 'Bad: key, really' },
      message: 'line one\nline two',
    },
    { command: 'warning', properties: {}, message: 'careful' },
    { command: 'group', properties: {}, message: 'Deploy' },
  ]);
});

test('maskLog replaces the longest secrets first', () => {
  assert.equal(maskLog('key abc abcdef', ['abc', 'abcdef', '']), 'key *** ***');
});

test('inputEnvName keeps dashes, upper-cases, spaces to _', () => {
  assert.equal(inputEnvName('ssh-key'), 'INPUT_SSH-KEY');
  assert.equal(inputEnvName('known-hosts'), 'INPUT_KNOWN-HOSTS');
  assert.equal(inputEnvName('my input'), 'INPUT_MY_INPUT');
});

test("readInputDefaults: the repository's action.yml", () => {
  const d = readInputDefaults();
  assert.equal(d.command, 'deploy');
  assert.equal(d.port, '22');
  assert.equal(d['ssh-key'], '');
});

test('readInputDefaults: quoting, block scalars, inputs without default', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'actionyml-'));
  try {
    const file = path.join(dir, 'action.yml');
    fs.writeFileSync(
      file,
      [
        "name: 'x'",
        'inputs:',
        '  single:',
        "    description: 'it''s'",
        "    default: 'it''s'",
        '  double:',
        '    default: "a\\tb"',
        '  plain:',
        '    default: 300 # seconds',
        '  block:',
        '    description: block',
        '    default: |',
        '      one',
        '      two',
        '  none:',
        '    required: true',
        'runs:',
        "  using: 'node24'",
        '  main: x.js',
      ].join('\n'),
    );
    assert.deepEqual(readInputDefaults(file), {
      single: "it's",
      double: 'a\tb',
      plain: '300',
      block: 'one\ntwo\n',
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// A stand-in action that uses the file commands the way @actions/core does.
const FAKE_ACTION = `
const fs = require('fs');
const d = 'ghadelimiter_1234';
const put = (file, k, v) => fs.appendFileSync(process.env[file], k + '<<' + d + '\\n' + v + '\\n' + d + '\\n');
if (process.env.STATE_isPost === 'true') {
  console.log('post: main said ' + process.env.STATE_note);
  console.log('post: exported ' + process.env.FROM_MAIN);
  process.exit(Number(process.env['INPUT_POST-CODE'] || 0));
}
if (process.env['INPUT_SLEEP']) {
  require('child_process').spawn('sleep', ['30'], { stdio: 'inherit' });
  setTimeout(() => {}, 60000);
  return;
}
console.log('main: ssh-key=' + process.env['INPUT_SSH-KEY'] + ' command=' + process.env.INPUT_COMMAND);
console.error('main: to stderr');
console.log('::add-mask::' + process.env['INPUT_SSH-KEY']);
console.log('main: cwd=' + process.cwd() + ' ws=' + process.env.GITHUB_WORKSPACE + ' sha=' + process.env.GITHUB_SHA);
put('GITHUB_OUTPUT', 'result', 'deployed');
put('GITHUB_OUTPUT', 'versions', '{"web":"1.0.0",\\n"api":"2.0.0"}');
fs.appendFileSync(process.env.GITHUB_OUTPUT, 'plain=yes\\n');
put('GITHUB_STATE', 'isPost', 'true');
put('GITHUB_STATE', 'note', 'hello from main');
put('GITHUB_ENV', 'FROM_MAIN', 'exported');
fs.appendFileSync(process.env.GITHUB_STEP_SUMMARY, '## Deployed\\n');
console.log('::error title=T::boom');
process.exit(Number(process.env['INPUT_MAIN-CODE'] || 0));
`;

function writeFakeAction(): { dir: string; entry: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-action-'));
  const entry = path.join(dir, 'index.js');
  fs.writeFileSync(entry, FAKE_ACTION);
  return { dir, entry };
}

test('runAction: inputs, outputs, state, summary, post step', async () => {
  const { dir, entry } = writeFakeAction();
  try {
    const r = await runAction({ entry, cwd: dir, inputs: { 'ssh-key': 'SECRETKEY', 'main-code': '2' } });
    assert.equal(r.code, 2);
    assert.match(r.log, /main: ssh-key=SECRETKEY command=deploy/, 'action.yml default for command');
    assert.match(r.log, /main: to stderr/);
    assert.match(r.log, new RegExp(`cwd=${dir} ws=${dir} sha=[0-9a-f]{40}`));
    assert.deepEqual(r.outputs, { result: 'deployed', versions: '{"web":"1.0.0",\n"api":"2.0.0"}', plain: 'yes' });
    assert.deepEqual(r.state, { isPost: 'true', note: 'hello from main' });
    assert.deepEqual(r.exportedEnv, { FROM_MAIN: 'exported' });
    assert.equal(r.summary, '## Deployed\n');
    assert.deepEqual(r.errors, ['boom']);
    assert.deepEqual(r.masks, ['SECRETKEY']);
    assert.ok(!r.maskedLog.includes('SECRETKEY'));
    assert.match(r.maskedLog, /ssh-key=\*\*\*/);
    assert.equal(r.env['INPUT_SSH-KEY'], 'SECRETKEY');
    assert.equal(r.postCode, 0);
    assert.match(r.postLog, /post: main said hello from main/);
    assert.match(r.postLog, /post: exported exported/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('runAction: post: false skips the post step; env overrides', async () => {
  const { dir, entry } = writeFakeAction();
  try {
    const r = await runAction({
      entry,
      cwd: dir,
      inputs: { 'ssh-key': 'k' },
      env: { GITHUB_SHA: 'f'.repeat(40) },
      post: false,
    });
    assert.equal(r.code, 0);
    assert.match(r.log, new RegExp(`sha=${'f'.repeat(40)}`));
    assert.equal(r.postCode, null);
    assert.equal(r.postLog, '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('runAction: a step over its time is killed with its children, and rejects', async () => {
  const { dir, entry } = writeFakeAction();
  try {
    const t0 = Date.now();
    await assert.rejects(
      runAction({ entry, cwd: dir, inputs: { sleep: '1' }, timeoutMs: 1500 }),
      /\(main\): .* did not finish within 1500 ms and was killed/,
    );
    assert.ok(Date.now() - t0 < 10_000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('runAction: a missing entry fails clearly', async () => {
  await assert.rejects(
    runAction({ entry: '/nonexistent/index.js', inputs: {} }),
    /does not exist \(build it: npm run build\)/,
  );
});

// ------------------------------------------------ lab helpers (no lab needed)

test('lab helpers: parseExports reads `bash lab/lab.sh env`', () => {
  assert.deepEqual(parseExports("export LAB_HOST=127.0.0.1\nexport LAB_PORT='2222'\n# comment\nnoise\n"), {
    LAB_HOST: '127.0.0.1',
    LAB_PORT: '2222',
  });
});

test('lab helpers: waitFor resolves with the first truthy value', async () => {
  let n = 0;
  const v = await waitFor(() => (++n >= 3 ? `after ${n}` : false), {
    timeoutMs: 2000,
    intervalMs: 5,
    what: 'n to reach 3',
  });
  assert.equal(v, 'after 3');
});

test('lab helpers: waitFor names what it waited for, with the last error', async () => {
  await assert.rejects(
    waitFor(
      () => {
        throw new Error('not yet');
      },
      { timeoutMs: 100, intervalMs: 10, what: 'the impossible' },
    ),
    /timed out after \d+ ms waiting for the impossible \(last error: not yet\)/,
  );
});

test('lab helpers: copyExample copies example/ and applies VERSION and MODE', () => {
  const dir = copyExample({ web: { version: '2.0.0', mode: 'crash-later', crashAfter: 5 }, api: { mode: 'crash' } });
  try {
    assert.ok(dir.startsWith(os.tmpdir()));
    assert.equal(serviceVersion(dir, 'web'), '2.0.0');
    assert.equal(serviceVersion(dir, 'api'), serviceVersion(EXAMPLE_DIR, 'api'));
    assert.equal(fs.readFileSync(path.join(dir, 'service', 'web', 'MODE'), 'utf8'), 'crash-later 5\n');
    assert.equal(fs.readFileSync(path.join(dir, 'service', 'api', 'MODE'), 'utf8'), 'crash\n');
    assert.ok(fs.existsSync(path.join(dir, 'stacks', 'app.yml')));
    assert.equal(fs.readFileSync(path.join(EXAMPLE_DIR, 'service', 'web', 'MODE'), 'utf8').trim(), 'ok');
    assert.throws(() => setServiceVersion(dir, 'nope', '1.0.0'), /no service 'nope'/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
