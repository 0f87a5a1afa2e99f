/**
 * What a link holds of unfinished messages is bounded: per link in characters (a message
 * declared longer is refused at once; a new one pushes out the link's oldest), per hub over
 * all links (one peer cannot push out another's), and in time. The PeerHub holds nothing
 * of a device it does not admit, declines its offers, and closes a link that keeps sending
 * refused pieces. The signal relay is played by the test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toFrames, type LinkMessage } from '../../src/client/link-messages.js';
import { FragmentPool, Reassembler, type ReassemblyLimits } from '../../src/client/link-reassembly.js';
import { PeerHub } from '../../src/client/peer-link.js';

const D = 'q'.repeat(24_000);
const frag = (id: string, i: number, n: number, d = D) => ({ t: 'frag', id, i, n, d });

test('a link holds at most its budget of unfinished messages, the hub at most its total, for at most their age', () => {
  const limits: ReassemblyLimits = { linkChars: 100_000, totalChars: 130_000, maxAgeMs: 1000 };
  const pool = new FragmentPool(() => limits);
  const a = new Reassembler(pool);
  const b = new Reassembler(pool);

  // Declared longer than the link's budget: refused from its first piece.
  assert.equal(a.push(frag('big', 0, 6), 0), null);
  assert.equal(pool.used, 0);
  assert.equal(a.refused, 1);

  // Two messages of 4 pieces (96,000 characters each): the second pushes out the first.
  for (let i = 0; i < 3; i++) a.push(frag('m1', i, 4), 0);
  assert.equal(pool.used, 72_000);
  a.push(frag('m2', 0, 4), 10);
  a.push(frag('m2', 1, 4), 10);
  assert.equal(pool.used, 48_000, 'm1 made room for m2');

  // Another link fills the hub's total: its piece over it is refused (and its message
  // dropped: it cannot be finished); a's message is kept.
  for (let i = 0; i < 3; i++) b.push(frag('n1', i, 5), 20);
  assert.equal(pool.used, 120_000);
  assert.equal(b.push(frag('n1', 3, 5), 20), null);
  assert.equal(b.refused, 1);
  assert.equal(b.holding, false);
  assert.equal(pool.used, 48_000);
  assert.ok(a.holding, "a's message stays");

  // Too old: dropped when its link hears anything next (here a piece of it), or by expire().
  b.push(frag('n2', 0, 5), 20);
  a.push(frag('m2', 2, 4), 1010);
  assert.equal(pool.used, 24_000 + 24_000, 'm2 expired: its late piece begins it anew');
  b.expire(1020);
  assert.equal(b.holding, false);
  a.clear();
  assert.equal(pool.used, 0, 'every character given back');

  // A whole message comes out, and gives back what it held.
  const msg: LinkMessage = { t: 'submit', epoch: 1, stream: 's', floor: 1, entries: ['A'.repeat(50_000)] };
  let out: LinkMessage | null = null;
  for (const f of toFrames(msg)) out = a.push(f, 3000) ?? out;
  assert.deepEqual(out, msg);
  assert.equal(pool.used, 0);
});

/** A hub whose relay is the test: what it sends, and to whom. */
function hub(admits: (device: string) => boolean, limits: ReassemblyLimits) {
  const sent: { to: string; kind: string; data: unknown }[] = [];
  const got: LinkMessage[] = [];
  const declined: string[] = [];
  const h = new PeerHub({
    signal: async (to, kind, data) => void sent.push({ to, kind, data }),
    onMessage: (_from, msg) => void got.push(msg),
    admits,
    declined: (from, reply) => {
      declined.push(from);
      reply({ t: 'denied', epoch: 7 });
    },
    reassembly: () => limits,
    // An offer is answered only where a peer connection can be made.
    RTCPeerConnection: class {
      constructor() {
        throw new Error('no WebRTC in this test');
      }
    } as never,
  });
  const held = (addr: string): number => {
    const link = (h as unknown as { links: Map<string, { rx: { partial: Map<string, unknown> } }> }).links.get(addr);
    return link?.rx.partial.size ?? 0;
  };
  const has = (addr: string): boolean => (h as unknown as { links: Map<string, unknown> }).links.has(addr);
  return { h, sent, got, declined, held, has };
}

test('the hub holds nothing of a device it does not admit, and declines its offers', async () => {
  const reader = 'R'.repeat(43);
  const writer = 'W'.repeat(43);
  const t = hub((d) => d === writer, { linkChars: 1 << 22, totalChars: 1 << 25, maxAgeMs: 30_000 });
  t.h.handleSignal(reader, 'offer', { link: 'L1', type: 'offer', sdp: 'v=0' }, 'pR');
  for (let i = 0; i < 3; i++) t.h.handleSignal(reader, 'data', frag('x', i, 5), 'pR');
  t.h.handleSignal(writer, 'data', frag('y', 0, 5), 'pW');
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    t.sent.filter((s) => s.to === 'pR').map((s) => s.kind),
    ['bye', 'data'],
    'the offer declined; the message answered once, at its first piece',
  );
  assert.deepEqual(t.declined, [reader]);
  assert.equal(t.held('pR'), 0);
  assert.equal(t.held('pW'), 1, 'a writer may send pieces');
  t.h.close();
});

test("an idle link's unfinished messages go once too old, and a link that keeps sending refused pieces is closed", async () => {
  const writer = 'W'.repeat(43);
  const t = hub(() => true, { linkChars: 100_000, totalChars: 400_000, maxAgeMs: 60 });
  t.h.handleSignal(writer, 'data', frag('y', 0, 3), 'pW');
  assert.equal(t.held('pW'), 1);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(t.held('pW'), 0, 'dropped without another piece coming');

  // Pieces of messages longer than the link may hold, again and again: the link goes.
  for (let i = 0; i < 63; i++) t.h.handleSignal(writer, 'data', frag(`b${i}`, 0, 9), 'pW');
  assert.equal(t.has('pW'), true);
  t.h.handleSignal(writer, 'data', frag('b63', 0, 9), 'pW');
  assert.equal(t.has('pW'), false);
  // It may start again: a new link, with a clean slate.
  t.h.handleSignal(writer, 'data', { t: 'stale', epoch: 1 }, 'pW');
  assert.equal(t.has('pW'), true);
  assert.deepEqual(t.got, [{ t: 'stale', epoch: 1 }]);
  t.h.close();
});
