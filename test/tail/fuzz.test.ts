/**
 * Fuzzing the tail API with fast-check against a live server: random text, random JSON and
 * mutations of valid frames. Properties: every frame gets exactly one reply (`re` = its
 * integer id, or null when it has none), the server never crashes, and it still answers
 * after the run. The abuse limits are raised so one session sees many bad frames.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TailClient, type TailReply } from '../helpers/tail-client.js';
import { lease, logName, world } from './fixture.js';

type Mutation = { kind: 'none' } | { kind: 'set'; key: string; value: unknown } | { kind: 'delete'; key: string } | { kind: 'op'; op: string };
type IdShape = { kind: 'int' } | { kind: 'none' } | { kind: 'other'; value: unknown };
type Gen =
  | { kind: 'text'; text: string; binary: boolean }
  | { kind: 'json'; value: unknown }
  | { kind: 'frame'; base: Record<string, unknown>; mutation: Mutation; id: IdShape };

const HANDLE = '$H';
const b64 = fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u).toString('base64url'));

function bases(site: string, log: string, token: string): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    fc.constant({ op: 'ping' }),
    fc.constant({ op: 'connect', token }),
    fc.record({ op: fc.constant('connect'), token: fc.oneof(fc.string({ maxLength: 30 }), fc.constant(`${token.slice(0, -2)}AA`)) }),
    fc.record({ op: fc.constant('lease'), site: fc.constant(site), log: fc.oneof(fc.constant(log), fc.string()), lead: fc.boolean() }),
    fc.constant({ op: 'release', handle: HANDLE }),
    fc.record({ op: fc.constant('read'), handle: fc.constant(HANDLE), from: fc.nat(20), limit: fc.integer({ min: -2, max: 2000 }) }),
    fc.record({ op: fc.constant('write'), handle: fc.constant(HANDLE), at: fc.nat(30), entries: fc.array(b64, { maxLength: 5 }), wid: fc.string({ maxLength: 8 }) }),
    fc.record({ op: fc.constant('signal'), handle: fc.constant(HANDLE), to: fc.constant('leader'), kind: fc.constantFrom('offer', 'answer', 'candidate', 'bye', 'data', 'x'), data: fc.jsonValue({ maxDepth: 3 }) }),
    fc.record({ op: fc.constant('attest'), grant: fc.string({ maxLength: 40 }) }),
  );
}

function gen(site: string, log: string, token: string): fc.Arbitrary<Gen> {
  const keys = fc.constantFrom('op', 'id', 'handle', 'at', 'entries', 'from', 'limit', 'site', 'log', 'lead', 'token', 'to', 'kind', 'data', 'wid', 'grant', '__proto__', 'constructor');
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.constant<Mutation>({ kind: 'none' }),
    fc.record({ kind: fc.constant('set' as const), key: keys, value: fc.jsonValue({ maxDepth: 3 }) }),
    fc.record({ kind: fc.constant('delete' as const), key: keys }),
    fc.record({ kind: fc.constant('op' as const), op: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('ping', 'write', 'toString', 'hasOwnProperty')) }),
  );
  const id: fc.Arbitrary<IdShape> = fc.oneof(
    { weight: 6, arbitrary: fc.constant<IdShape>({ kind: 'int' }) },
    { weight: 1, arbitrary: fc.constant<IdShape>({ kind: 'none' }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }).map((value): IdShape => ({ kind: 'other', value })) },
  );
  return fc.oneof(
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: fc.string({ unit: 'binary', maxLength: 200 }), binary: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('json' as const), value: fc.jsonValue({ maxDepth: 4 }) }) },
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('frame' as const), base: bases(site, log, token), mutation, id }) },
  );
}

/** The frame's text, with the session's handle and a unique id where the shape asks for one. */
function render(g: Gen, handle: string, nextId: () => number): { data: string; binary: boolean } {
  if (g.kind === 'text') return { data: g.text, binary: g.binary };
  if (g.kind === 'json') return { data: JSON.stringify(g.value) ?? 'null', binary: false };
  const f: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(g.base)) f[k] = v === HANDLE ? handle : v;
  const m = g.mutation;
  if (m.kind === 'set') Object.defineProperty(f, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
  if (m.kind === 'delete') delete f[m.key];
  if (m.kind === 'op') f.op = m.op;
  if (g.id.kind === 'int') f.id = nextId();
  else if (g.id.kind === 'none') delete f.id;
  else f.id = g.id.value;
  return { data: JSON.stringify(f), binary: false };
}

/** The `re` a frame must be answered with. */
function expectedRe(data: string, binary: boolean): number | null {
  if (binary) return null;
  try {
    const v: unknown = JSON.parse(data);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
    const id = (v as { id?: unknown }).id;
    return typeof id === 'number' && Number.isSafeInteger(id) ? id : null;
  } catch {
    return null;
  }
}

describe('tail: fuzz', async () => {
  const w = await world({ tailLimits: { badFrames: 1_000_000, abuseRejects: 1_000_000, opsPerSec: 1_000_000, opsBurst: 1_000_000 } });
  const log = logName();

  it('answers every frame exactly once and never falls over', { timeout: 120_000 }, async () => {
    let c: TailClient | null = null;
    let handle = '';
    let id = 1_000_000;
    let sessions = 0;
    const open = async (): Promise<TailClient> => {
      if (c !== null && c.open) return c;
      c = await TailClient.connect(w.wsUrl, w.owner.access);
      handle = (await lease(c, w.site, log)).handle;
      sessions++;
      return c;
    };
    let frames = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(gen(w.site, log, w.owner.access), { minLength: 1, maxLength: 20 }), async (gens) => {
        for (const g of gens) {
          const client = await open();
          const { data, binary } = render(g, handle, () => id++);
          const re = expectedRe(data, binary);
          client.sendRaw(data, binary);
          frames++;
          let r: TailReply;
          try {
            r = re === null ? await client.nextNullReply(5000) : await client.reply(re, 5000);
          } catch (err) {
            // Even a frame that ends the session (a spoiled connect token: 4401) is answered first.
            throw new Error(`no reply to ${data.slice(0, 200)}: ${String(err)}`);
          }
          assert.equal(r.re, re);
          if (r.error !== undefined) assert.equal(typeof r.error.code, 'string');
          if (re !== null) assert.equal(client.replyCount.get(re), 1, `one reply to ${re}`);
        }
      }),
      { numRuns: 200, seed: 20261125 },
    );
    const last = c as TailClient | null;
    if (last !== null) {
      await new Promise((r) => setTimeout(r, 100));
      for (const [re, n] of last.replyCount) assert.equal(n, 1, `exactly one reply to ${re}`);
      assert.equal(last.nullReplies.length, 0, 'no unexpected re:null replies');
      last.close();
    }
    assert.ok(frames >= 1000, `${frames} frames`);
    assert.ok(sessions > 1, 'some frames ended their session (a spoiled connect), and the next one went on');
    const after = await TailClient.connect(w.wsUrl, w.owner.access);
    assert.deepEqual(await after.call('ping'), { re: 2 });
    assert.equal((await fetch(`${w.url}/health`)).status, 200);
    after.close();
  });
});
