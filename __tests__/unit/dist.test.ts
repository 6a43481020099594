import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');

// Users run dist/, not src/: a stale bundle ships old code under a new tag.
test('dist/index.js is the ncc bundle of the current src/', { timeout: 180_000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-check-'));
  // The very command of `npm run build` (its ncc part), into a folder of our own.
  const build = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { build: string } })
    .scripts.build;
  const args = /\bncc (build .*)$/.exec(build)?.[1].split(/\s+/);
  assert.ok(args && args.includes('-o'), `package.json "build" has no \`ncc build … -o dist\`: ${build}`);
  args[args.indexOf('-o') + 1] = out;
  execFileSync(path.join(root, 'node_modules', '.bin', 'ncc'), args, { cwd: root, stdio: 'pipe' });
  const built = fs.readFileSync(path.join(out, 'index.js'), 'utf8');
  const committed = fs.readFileSync(path.join(root, 'dist', 'index.js'), 'utf8');
  assert.ok(
    built === committed,
    'dist/index.js differs from a fresh build of src/: run `npm run build` and commit dist/.',
  );
  for (const f of fs.readdirSync(out))
    assert.ok(fs.existsSync(path.join(root, 'dist', f)), `dist/${f} is missing: run npm run build and commit it.`);
  fs.rmSync(out, { recursive: true, force: true });
});

// undici registers its diagnostics channels as it loads: a preload records the names asked for.
const CHANNELS_PRELOAD = `const dc = require('diagnostics_channel');
const channel = dc.channel.bind(dc);
const seen = new Set();
dc.channel = (name) => (seen.add(String(name)), channel(name));
process.on('exit', () => require('fs').writeSync(2, '@@channels ' + [...seen].join(',') + '\\n'));
`;

function channelsAtLoad(args: string[]): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-load-'));
  try {
    fs.writeFileSync(path.join(dir, 'preload.js'), CHANNELS_PRELOAD);
    const r = spawnSync(process.execPath, ['-r', path.join(dir, 'preload.js'), ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
    });
    const line = /^@@channels (.*)$/m.exec(r.stderr)?.[1];
    assert.ok(line !== undefined, `no channel report: ${r.stderr.slice(-500)}`);
    return line.split(',').filter(Boolean);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the bundle starts without evaluating undici (only the OIDC client of @actions/core would use it)', () => {
  // The probe sees undici load when it does.
  const direct = channelsAtLoad(['-e', `require(${JSON.stringify(path.join(root, 'node_modules', 'undici'))})`]);
  assert.ok(
    direct.some((c) => c.startsWith('undici:')),
    direct.join(','),
  );
  // The action, started with no input at all: it loads, reads its inputs, and fails on the first.
  const action = channelsAtLoad([path.join(root, 'dist', 'index.js')]);
  assert.deepEqual(
    action.filter((c) => c.startsWith('undici:')),
    [],
  );
});
