/** Strict JSON of signed parts: a key given twice in any object is found, whatever the strings around it hold. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { repeatedKey } from '../../src/protocol/json-keys.js';
import { decodeJwsJson } from '../../src/protocol/jws-json.js';

describe('repeatedKey', () => {
  it('finds a key given twice, at any depth, and only in the same object', () => {
    assert.equal(repeatedKey('{"a":1,"a":2}'), 'a');
    assert.equal(repeatedKey('{"x":{"b":1,"c":{"d":1},"b":2}}'), 'b');
    assert.equal(repeatedKey('[{"a":1},{"a":2}]'), null, 'two objects, one key each');
    assert.equal(repeatedKey('{"a":{"a":1}}'), null, 'nested objects have their own keys');
    assert.equal(repeatedKey('{"a":[1,{"a":2}],"b":3}'), null);
    assert.equal(repeatedKey('{"a":[1,2],"a":3}'), 'a', 'after an array value');
    assert.equal(repeatedKey('{"a":"x","\\u0061":"y"}'), 'a', 'an escape spells the same key');
  });

  it('is not misled by strings that hold JSON punctuation or escaped quotes', () => {
    assert.equal(repeatedKey('{"a":"{\\"a\\":1,","b":"]}"}'), null);
    assert.equal(repeatedKey('{"k\\"":1,"k":2}'), null, 'k" and k differ');
    assert.equal(repeatedKey('{"s":"a,\\"s\\":","t":[",{"],"s":0}'), 's');
    assert.equal(repeatedKey('{"\\\\":1,"\\\\":2}'), '\\');
  });

  it('decodes a base64url part, refusing what is not JSON and what repeats a key', () => {
    const part = (s: string) => Buffer.from(s).toString('base64url');
    assert.deepEqual(decodeJwsJson(part('{"a":1}')), { ok: true, value: { a: 1 } });
    assert.deepEqual(decodeJwsJson(part('{"a":1')), { ok: false, problem: 'not JSON' });
    assert.deepEqual(decodeJwsJson(part('{"a":1,"a":1}')), { ok: false, problem: 'the key "a" is given twice' });
  });
});
