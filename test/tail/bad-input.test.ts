import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entry, TailClient, type TailReply } from '../helpers/tail-client.js';
import { connect, lease, logName, world } from './fixture.js';

interface Case {
  name: string;
  /** The raw frame (a string is sent as text, a Buffer as binary). */
  frame: string | Buffer;
  code: string;
  /** The reply's `re` (null for frames with no usable id). */
  re: number | null;
  /** A fragment the message must contain (names the field). */
  mentions?: string | RegExp;
}

describe('tail: bad input', async () => {
  const w = await world();
  const log = logName();
  const setup = await connect(w, w.owner);
  const { handle } = await lease(setup, w.site, log);
  await setup.call('write', { handle, at: 0, entries: [entry('a')] });
  setup.close();

  const json = (v: unknown) => JSON.stringify(v);
  const write = (args: Record<string, unknown>) => json({ id: 40, op: 'write', handle: '$H', at: 1, entries: [entry('b')], ...args });
  const cases: Case[] = [
    { name: 'not JSON', frame: 'hello', code: 'BAD_REQUEST', re: null, mentions: 'JSON' },
    { name: 'truncated JSON', frame: '{"id":1,"op":"pi', code: 'BAD_REQUEST', re: null },
    { name: 'an array', frame: '[1,2]', code: 'BAD_REQUEST', re: null },
    { name: 'a number', frame: '42', code: 'BAD_REQUEST', re: null },
    { name: 'null', frame: 'null', code: 'BAD_REQUEST', re: null },
    { name: 'no id', frame: json({ op: 'ping' }), code: 'BAD_REQUEST', re: null, mentions: 'id' },
    { name: 'string id', frame: json({ id: '1', op: 'ping' }), code: 'BAD_REQUEST', re: null, mentions: 'id' },
    { name: 'fractional id', frame: json({ id: 1.5, op: 'ping' }), code: 'BAD_REQUEST', re: null },
    { name: 'huge id', frame: '{"id":1e300,"op":"ping"}', code: 'BAD_REQUEST', re: null },
    { name: 'binary frame', frame: Buffer.from(json({ id: 2, op: 'ping' })), code: 'BAD_REQUEST', re: null },
    { name: 'no op', frame: json({ id: 5 }), code: 'BAD_REQUEST', re: 5, mentions: 'op' },
    { name: 'numeric op', frame: json({ id: 5, op: 7 }), code: 'BAD_REQUEST', re: 5, mentions: 'op' },
    { name: 'unknown op', frame: json({ id: 6, op: 'fly' }), code: 'UNKNOWN_OP', re: 6, mentions: 'fly' },
    { name: '__proto__ op', frame: json({ id: 7, op: '__proto__' }), code: 'UNKNOWN_OP', re: 7 },
    { name: 'constructor op', frame: json({ id: 8, op: 'constructor' }), code: 'UNKNOWN_OP', re: 8 },
    { name: 'bad site', frame: json({ id: 9, op: 'lease', site: 'no spaces!', log: 'x' }), code: 'BAD_REQUEST', re: 9, mentions: 'site' },
    { name: 'bad log', frame: json({ id: 10, op: 'lease', site: w.site, log: '' }), code: 'BAD_REQUEST', re: 10, mentions: 'log' },
    { name: 'lead not boolean', frame: json({ id: 11, op: 'lease', site: w.site, log: 'x', lead: 'yes' }), code: 'BAD_REQUEST', re: 11, mentions: 'lead' },
    { name: 'negative at', frame: write({ at: -1 }), code: 'BAD_REQUEST', re: 40, mentions: 'at' },
    { name: 'at as string', frame: write({ at: '1' }), code: 'BAD_REQUEST', re: 40, mentions: 'at' },
    { name: 'entries not an array', frame: write({ entries: 'abc' }), code: 'BAD_REQUEST', re: 40, mentions: 'entries' },
    { name: 'no entries', frame: write({ entries: [] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries' },
    { name: 'entry not base64url', frame: write({ entries: ['a+b/'] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries.0' },
    { name: 'entry with padding', frame: write({ entries: ['YQ=='] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries.0' },
    { name: 'entry spelled with unused bits set (YR for YQ)', frame: write({ entries: ['YQ', 'YR'] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries.1' },
    { name: 'entry of 2 bytes with unused bits set', frame: write({ entries: ['YWF'] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries.0' },
    { name: 'entry of impossible length', frame: write({ entries: [entry('ok'), 'AAAAA'] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries.1' },
    { name: 'entry not a string', frame: write({ entries: [1] }), code: 'BAD_REQUEST', re: 40, mentions: 'entries.0' },
    { name: 'wid with a control character', frame: write({ wid: 'a\nb' }), code: 'BAD_REQUEST', re: 40, mentions: 'wid' },
    { name: 'wid outside ASCII', frame: write({ wid: 'caf\u00e9' }), code: 'BAD_REQUEST', re: 40, mentions: 'wid' },
    { name: 'empty wid', frame: write({ wid: '' }), code: 'BAD_REQUEST', re: 40, mentions: 'wid' },
    { name: 'wid over 128 characters', frame: write({ wid: 'w'.repeat(129) }), code: 'BAD_REQUEST', re: 40, mentions: 'wid' },
    { name: 'too many entries', frame: write({ entries: Array.from({ length: 1025 }, () => 'AA') }), code: 'TOO_LARGE', re: 40, mentions: 'entries' },
    { name: 'entry over 256 KiB', frame: write({ entries: [Buffer.alloc(256 * 1024 + 3).toString('base64url')] }), code: 'TOO_LARGE', re: 40, mentions: 'entries.0' },
    { name: 'frame over 1 MiB', frame: write({ entries: Array.from({ length: 5 }, () => Buffer.alloc(250 * 1024).toString('base64url')) }), code: 'TOO_LARGE', re: 40, mentions: 'frame' },
    { name: 'unknown handle', frame: json({ id: 41, op: 'read', handle: 'h999999', from: 0 }), code: 'NOT_FOUND', re: 41 },
    { name: 'handle of bad shape', frame: json({ id: 42, op: 'read', handle: 'no/slash', from: 0 }), code: 'BAD_REQUEST', re: 42, mentions: 'handle' },
    { name: 'read from as float', frame: json({ id: 43, op: 'read', handle: '$H', from: 0.5 }), code: 'BAD_REQUEST', re: 43, mentions: 'from' },
    { name: 'read limit 0', frame: json({ id: 44, op: 'read', handle: '$H', from: 0, limit: 0 }), code: 'BAD_REQUEST', re: 44, mentions: 'limit' },
    { name: 'read beyond the end', frame: json({ id: 45, op: 'read', handle: '$H', from: 99 }), code: 'BAD_REQUEST', re: 45, mentions: 'from' },
    { name: 'attest with empty grant', frame: json({ id: 47, op: 'attest', grant: '' }), code: 'BAD_REQUEST', re: 47, mentions: 'grant' },
    { name: 'release of a number', frame: json({ id: 48, op: 'release', handle: 5 }), code: 'BAD_REQUEST', re: 48, mentions: 'handle' },
    { name: 'write at the largest position, with a wid', frame: write({ at: Number.MAX_SAFE_INTEGER, wid: 'far' }), code: 'BAD_REQUEST', re: 40, mentions: 'at' },
    { name: 'frame over 1 MiB whose id is spelled with an exponent', frame: `{"id":5.1e1,"op":"ping","pad":"${'x'.repeat(1024 * 1024)}"}`, code: 'TOO_LARGE', re: 51, mentions: 'frame' },
    { name: 'frame over 1 MiB whose id is not an integer', frame: `{"id":5.15e1,"op":"ping","pad":"${'x'.repeat(1024 * 1024)}"}`, code: 'TOO_LARGE', re: null, mentions: 'frame' },
    { name: 'frame nested 65 deep', frame: `{"id":49,"op":"ping","x":${'['.repeat(65)}${']'.repeat(65)}}`, code: 'BAD_REQUEST', re: 49, mentions: 'nests deeper than 64' },
    { name: 'signal data nested 100 000 deep', frame: `{"id":50,"op":"signal","handle":"$H","to":"leader","kind":"data","data":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`, code: 'BAD_REQUEST', re: 50, mentions: 'nests deeper' },
  ];

  it('answers every bad frame with the right code and keeps the session usable', async () => {
    let c: TailClient | null = null;
    let h = '';
    for (let i = 0; i < cases.length; i++) {
      const k = cases[i] as Case;
      // A fresh session every few bad frames stays under the 4400 threshold.
      if (c === null || i % 8 === 0) {
        c?.close();
        c = await connect(w, w.owner);
        h = (await lease(c, w.site, log)).handle;
      }
      const frame = typeof k.frame === 'string' ? k.frame.replace('"$H"', JSON.stringify(h)) : k.frame;
      c.sendRaw(frame, typeof k.frame !== 'string');
      const r: TailReply = k.re === null ? await c.nextNullReply() : await c.reply(k.re);
      assert.equal(r.re, k.re, k.name);
      assert.equal(r.error?.code, k.code, `${k.name}: ${JSON.stringify(r)}`);
      if (k.mentions !== undefined) assert.match(r.error?.message ?? '', k.mentions instanceof RegExp ? k.mentions : new RegExp(k.mentions.replace('.', '\\.')), k.name);
      assert.deepEqual(Object.keys(r).sort(), ['error', 're'], k.name);
      const pong: TailReply = await c.request('ping');
      assert.equal(pong.error, undefined, `usable after ${k.name}`);
    }
    c?.close();
  });

  it('cuts frames over 2 MiB at the WebSocket layer (1009)', async () => {
    const c = await connect(w, w.owner);
    c.sendRaw('x'.repeat(2 * 1024 * 1024 + 1));
    assert.equal((await c.closedWith()).code, 1009);
  });

  it('closes a session that keeps sending bad frames with 4400', async () => {
    const c = await connect(w, w.owner);
    for (let i = 0; i < 25; i++) c.sendRaw(`garbage ${i}`);
    assert.equal((await c.closedWith()).code, 4400);
    assert.ok(c.nullReplies.length >= 19 && c.nullReplies.length <= 20, `${c.nullReplies.length} replies before the close`);
  });

  it('rate-limits ops and closes a session that keeps going with 4429', async () => {
    const c = await connect(w, w.owner);
    let limited = 0;
    c.ws.on('message', (data: Buffer) => {
      if ((JSON.parse(data.toString()) as TailReply).error?.code === 'RATE_LIMITED') limited++;
    });
    for (let i = 0; i < 20_000 && c.open; i++) c.send({ id: 1000 + i, op: 'ping' });
    assert.equal((await c.closedWith()).code, 4429);
    assert.ok(limited >= 400, `${limited} RATE_LIMITED replies before the close`);
  });
});
