/** The NATS bus's strict JSON codec and subject rules (no server needed). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeJson, encodeJson } from '../../src/bus/json-codec.js';
import { assertQueue, isValidSubject } from '../../src/bus/subject.js';
import { DgError } from '../../src/protocol/errors.js';

const badRequest = (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST';
const bytes = (s: string) => new TextEncoder().encode(s);

describe('bus JSON codec', () => {
  it('round-trips every JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        // JSON has no negative zero: -0 arrives as 0, as it does through JSON.parse(JSON.stringify()).
        assert.deepEqual(decodeJson(encodeJson(v)), JSON.parse(JSON.stringify(v)));
        assert.equal(new TextDecoder().decode(encodeJson(v)), JSON.stringify(v));
      }),
      { numRuns: 500 },
    );
  });

  it('sends negative zero as 0', () => {
    assert.ok(Object.is(decodeJson(encodeJson(-0)), 0));
    assert.deepEqual(decodeJson(encodeJson({ a: [-0] })), { a: [0] });
  });

  it('encodes toJSON results and null-prototype objects as JSON.stringify does', () => {
    const bare = Object.assign(Object.create(null) as object, { a: 1 });
    const v = { d: new Date(0), e: new DgError('FORBIDDEN', 'no'), bare };
    assert.equal(new TextDecoder().decode(encodeJson(v)), JSON.stringify(v));
  });

  it('refuses values JSON would silently change', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: unknown[] = [
      undefined,
      NaN,
      -Infinity,
      { a: undefined },
      [1, undefined],
      { n: NaN },
      new Map([[1, 2]]),
      new Set([1]),
      new Uint8Array([1]),
      1n,
      Symbol('s'),
      () => 1,
      { nested: { deeper: [new Map()] } },
      cyclic,
      { toJSON: () => { throw new Error('x'); } },
    ];
    for (const v of bad) assert.throws(() => encodeJson(v), badRequest, String(typeof v));
  });

  it('refuses payloads that are not one UTF-8 JSON text', () => {
    for (const p of ['', ' ', 'nope', '{"a":1', '{"a":1} x', "{'a':1}", 'undefined', 'NaN']) {
      assert.throws(() => decodeJson(bytes(p)), badRequest, JSON.stringify(p));
    }
    assert.throws(() => decodeJson(new Uint8Array([0x22, 0xc3, 0x28, 0x22])), badRequest, 'invalid UTF-8');
    assert.deepEqual(decodeJson(bytes(' {"a":[1,"ü"]} ')), { a: [1, 'ü'] });
  });
});

describe('bus subjects', () => {
  it('accepts dot-separated printable tokens', () => {
    for (const s of ['dg.auth.access', 'a', 'conf.123.17000.4', 'x-y_z.A9:b=c', 'a.b.c.d.e']) assert.ok(isValidSubject(s), s);
  });

  it('refuses wildcards, whitespace, empty tokens and overlong subjects', () => {
    for (const s of ['', '.', 'a.', '.a', 'a..b', 'a b', 'a\nb', 'a.*', '*', 'a.>', 'a>', 'a*b', 'é', 'x'.repeat(257)]) {
      assert.equal(isValidSubject(s), false, JSON.stringify(s));
    }
    assert.ok(isValidSubject('x'.repeat(256)));
  });

  it('checks queue group names', () => {
    assertQueue('svc');
    for (const q of ['', 'a b', 'x'.repeat(65)]) assert.throws(() => assertQueue(q), badRequest);
  });
});
