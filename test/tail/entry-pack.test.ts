/** The packed form of a write's entries: packing, decoding base64url straight into it, and recognising it. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PACK_PREFIX, decodePacked, isPackOf, packEntries, unpackEntries } from '../../src/tail/entry-pack.js';

describe('entry pack', () => {
  it('decodes base64url into the same bytes packEntries makes, with views of each entry', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 40 }), (raw) => {
        const b64 = raw.map((u) => Buffer.from(u).toString('base64url'));
        const views: Buffer[] = [];
        const packed = decodePacked(b64, views);
        assert.ok(Buffer.isBuffer(packed));
        assert.ok(packed.equals(packEntries(raw)));
        assert.equal(views.length, raw.length);
        views.forEach((v, i) => assert.ok(v.equals(Buffer.from(raw[i] as Uint8Array))));
        assert.ok(isPackOf(packed, views));
        const out: Buffer[] = [];
        assert.equal(unpackEntries(packed, 0, 0, 1000, { bytes: 0, max: 1 << 30 }, out), raw.length);
        assert.deepEqual(out.map((b) => b.toString('hex')), views.map((b) => b.toString('hex')));
      }),
      { numRuns: 300 },
    );
  });

  it('names the first string with a character outside base64url, wherever it is', () => {
    const bad = ['ab+d', 'ab/d', 'ab=d', 'ab d', 'ab!d', 'ab.d', 'abc\u00e9', 'abc\n', 'AAAAAAAA\u0000AAA', '+AAA', 'AAA/', 'AA==', '\u{1F600}AA'];
    for (const s of bad) {
      assert.equal(decodePacked(['AAAA', s], []), 1, JSON.stringify(s));
      assert.equal(decodePacked([s], []), 0, JSON.stringify(s));
    }
    // Every character of the alphabet, in every position of a quartet, is taken.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const views: Buffer[] = [];
    // (The shorter two end in 'A': a last character of a partial quartet may carry no bits
    // beyond the last byte.)
    const packed = decodePacked([alphabet, `${alphabet.slice(1, -1)}A`, `${alphabet.slice(2, -1)}A`], views);
    assert.ok(Buffer.isBuffer(packed));
    assert.deepEqual(views[0], Buffer.from(alphabet, 'base64url'));
    assert.equal(views[0]?.toString('base64url'), alphabet);
  });

  it('names the first string that no whole number of bytes encodes', () => {
    assert.equal(decodePacked(['AAAA', 'AAAAA', 'A'], []), 1);
    assert.equal(decodePacked(['A'], []), 0);
  });

  it('names the first string whose last character sets bits beyond the last byte', () => {
    assert.equal(decodePacked(['YQ', 'YR'], []), 1);
    assert.equal(decodePacked(['YWE', 'YWF'], []), 1);
    assert.equal(decodePacked(['YWI_'], []) instanceof Buffer, true, 'a whole quartet has no unused bits');
  });

  it('recognises only its own views, in order, covering the whole buffer', () => {
    const views: Buffer[] = [];
    const packed = decodePacked(['AAEC', 'AwQF', 'Bg'], views) as Buffer;
    assert.equal(packed.length, 3 * PACK_PREFIX + 3 + 3 + 1);
    assert.ok(isPackOf(packed, views));
    assert.equal(isPackOf(packed, views.slice(0, 2)), false, 'one entry missing');
    assert.equal(isPackOf(packed, [views[1] as Buffer, views[0] as Buffer, views[2] as Buffer]), false, 'out of order');
    assert.equal(isPackOf(Buffer.from(packed), views), false, 'a copy is another buffer');
    assert.equal(isPackOf(packed, views.map((v) => Buffer.from(v))), false, 'copies of the entries');
    const shorter = [views[0] as Buffer, views[1] as Buffer, (views[2] as Buffer).subarray(0, 0)];
    assert.equal(isPackOf(packed, shorter), false, 'a view shorter than its length prefix');
    assert.ok(isPackOf(Buffer.alloc(0), []));
    assert.equal(isPackOf(randomBytes(8), []), false, 'bytes left over');
  });
});
