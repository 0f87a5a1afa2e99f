/**
 * base64url as the protocol reads it: one spelling per byte string. Decoders elsewhere
 * ignore the unused low bits of the last character, which gives every value that is not a
 * multiple of 3 bytes long several spellings; the server refuses all but the encoder's.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { b64urlDecode, hasCanonicalTail } from '../../src/protocol/b64.js';
import { B64URL_32_PATTERN } from '../../src/protocol/ids.js';
import { SIGNATURE_PATTERN } from '../../src/protocol/auth-schemas.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Every string that differs from `text` in its last character only. */
function twins(text: string): string[] {
  return [...ALPHABET].filter((c) => c !== text.slice(-1)).map((c) => text.slice(0, -1) + c);
}

test('accepts what an encoder writes and refuses every other spelling of the same bytes', () => {
  for (let n = 1; n <= 70; n++) {
    const bytes = randomBytes(n);
    const text = bytes.toString('base64url');
    assert.deepEqual(b64urlDecode(text), bytes, `${n} bytes`);
    for (const t of twins(text)) {
      const decoded = b64urlDecode(t);
      // A twin decodes, if at all, to other bytes: never to the same bytes under another name.
      if (decoded !== null) assert.notDeepEqual(decoded, bytes, `${n} bytes: ${t} accepted as a second spelling`);
      if (n % 3 !== 0 && Buffer.from(t, 'base64url').equals(bytes)) assert.equal(hasCanonicalTail(t), false, t);
    }
  }
});

test('refuses lengths no byte string has, padding and other alphabets', () => {
  for (const bad of ['A', 'AAAAA', 'YQ==', 'a+b/', 'YQ.', 'Y\u00e9']) assert.equal(b64urlDecode(bad), null, bad);
  assert.deepEqual(b64urlDecode(''), Buffer.alloc(0));
});

test('the 32-byte and signature patterns agree with the decoder', () => {
  const re32 = new RegExp(B64URL_32_PATTERN);
  const re64 = new RegExp(SIGNATURE_PATTERN);
  for (let i = 0; i < 200; i++) {
    const k = randomBytes(32).toString('base64url');
    const s = randomBytes(64).toString('base64url');
    assert.ok(re32.test(k), k);
    assert.ok(re64.test(s), s);
    for (const t of twins(k)) assert.equal(re32.test(t), b64urlDecode(t) !== null, t);
    for (const t of twins(s)) assert.equal(re64.test(t), b64urlDecode(t) !== null, t);
  }
});
