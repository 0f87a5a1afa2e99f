/** The nesting bound checked before JSON is parsed. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../src/protocol/json-depth.js';

const nested = (n: number, open = '[', close = ']') => open.repeat(n) + close.repeat(n);

test('finds nesting beyond the bound, and only that', () => {
  assert.equal(nestsDeeperThan(Buffer.from(nested(MAX_JSON_DEPTH))), false);
  assert.equal(nestsDeeperThan(Buffer.from(nested(MAX_JSON_DEPTH + 1))), true);
  assert.equal(nestsDeeperThan(Buffer.from(`{"a":${'{"a":'.repeat(70)}1${'}'.repeat(71)}`)), true);
  // Many brackets side by side, or inside strings, are not nesting.
  assert.equal(nestsDeeperThan(Buffer.from(`[${Array.from({ length: 5000 }, () => '[1]').join(',')}]`)), false);
  assert.equal(nestsDeeperThan(Buffer.from(JSON.stringify({ s: '['.repeat(10_000), t: 'a\\"[[[' }))), false);
  assert.equal(nestsDeeperThan(Buffer.from('x'.repeat(1000))), false);
});

test('agrees with the depth of random JSON values', () => {
  const depthOf = (v: unknown): number =>
    v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0;
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 12 }), (v, max) => {
      const text = Buffer.from(JSON.stringify(v));
      assert.equal(nestsDeeperThan(text, max), depthOf(v) > max);
    }),
    { numRuns: 500 },
  );
});
