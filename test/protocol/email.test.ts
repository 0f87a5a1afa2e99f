/** Emails compare trimmed, with ASCII letters in lower case, and nothing else folded. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeEmail } from '../../src/protocol/email.js';

test('folds ASCII case and outer whitespace', () => {
  assert.equal(normalizeEmail('  Kate.Smith@Example.COM \t'), 'kate.smith@example.com');
});

test('keeps apart addresses that only Unicode case mapping would join', () => {
  const pairs: [string, string][] = [
    ['\u212Aate@example.com', 'kate@example.com'], // KELVIN SIGN lower-cases to k
    ['\u0130an@example.com', 'ian@example.com'], // LATIN CAPITAL I WITH DOT ABOVE
    ['\u212Bngstrom@example.com', '\u00e5ngstrom@example.com'], // ANGSTROM SIGN to a-ring
    ['jos\u00c9@example.com', 'jos\u00e9@example.com'],
  ];
  for (const [a, b] of pairs) {
    assert.notEqual(a.toLowerCase(), a, 'the pair folds under toLowerCase');
    assert.notEqual(normalizeEmail(a), normalizeEmail(b), `${a} and ${b} stay apart`);
    assert.equal(normalizeEmail(a), a, 'non-ASCII characters are kept as sent');
  }
});
