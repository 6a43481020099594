// src/lazy-undici.ts stands in for undici in the bundle: what it exports is undici's, once asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';

test('the stand-in for undici hands out undici itself on first use', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const real = require('undici/index.js') as Record<string, unknown>;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lazy = require('../../src/lazy-undici') as Record<string, unknown>;
  assert.equal(lazy.ProxyAgent, real.ProxyAgent);
  assert.equal(typeof lazy.ProxyAgent, 'function');
  assert.ok('fetch' in lazy);
  assert.ok(Object.keys(lazy).includes('Agent'));
});
