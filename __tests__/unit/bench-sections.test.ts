// BENCHMARKS.md is written by two scripts: bench/bench.ts rewrites the file, bench/multinode.ts owns
// the section between `<!-- bench:nodes -->` markers; neither may lose the other's figures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepSections, putSection, sections } from '../../bench/lib';

const OLD =
  '# Benchmarks\n\nold 1-node figures\n\n<!-- bench:nodes -->\n## 3 nodes\n\nold 3-node figures ($& $1)\n<!-- /bench:nodes -->\n';

test('a rewrite of the whole file keeps the 3-node section, once', () => {
  const out = keepSections(OLD, '# Benchmarks\n\nnew 1-node figures\n');
  assert.match(out, /new 1-node figures/);
  assert.doesNotMatch(out, /old 1-node figures/);
  assert.deepEqual(
    sections(out).map((s) => s.name),
    ['nodes'],
  );
  assert.ok(out.includes('old 3-node figures ($& $1)'));
  // Twice: still one section.
  assert.equal(sections(keepSections(out, out)).length, 1);
});

test('the 3-node script replaces its section in place, or appends it', () => {
  const out = putSection(OLD, 'nodes', '## 3 nodes\n\nnew figures ($&)');
  assert.ok(
    out.startsWith(
      '# Benchmarks\n\nold 1-node figures\n\n<!-- bench:nodes -->\n## 3 nodes\n\nnew figures ($&)\n<!-- /bench:nodes -->',
    ),
  );
  assert.doesNotMatch(out, /old 3-node/);
  const fresh = putSection('# Benchmarks\n\nfigures\n', 'nodes', 'x');
  assert.equal(fresh, '# Benchmarks\n\nfigures\n\n<!-- bench:nodes -->\nx\n<!-- /bench:nodes -->\n');
});
