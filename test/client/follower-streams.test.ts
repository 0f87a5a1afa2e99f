/**
 * A leader's state per follower writer stream stays bounded while followers come and go,
 * and pruning it never lets an entry into the log twice: a stream that comes back without
 * state is taken as new only past what its follower has read, and otherwise the leader
 * reads the log for what it had already written. The Sequencer here writes to an in-memory
 * log that refuses writes at the wrong position, and counts each written entry the way the
 * Log's feed does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { b64urlDecode, b64urlEncode, encodeEntry, entrySigner, originPrefix } from '../../src/client/index.js';
import { randomBytes } from '../../src/client/bytes.js';
import { parseMessage, type LinkMessage } from '../../src/client/link-messages.js';
import { findStreamEntries, MAX_STREAMS, STREAM_IDLE_MS } from '../../src/client/log-follower-streams.js';
import { Sequencer } from '../../src/client/log-sequencer.js';

const LIMITS = { maxFrame: 1 << 20, maxEntries: 1000, maxEntryBytes: 256 * 1024, maxHandles: 256 };
// Signatures are checked by readers, not by the sequencer: a constant one is enough here.
const signer = entrySigner('site', 'log', async () => new Uint8Array(64));

interface Follower {
  device: string;
  stream: string;
  entry(seq: number): Promise<string>;
}

function follower(): Follower {
  const device = b64urlEncode(randomBytes(32));
  const stream = b64urlEncode(randomBytes(8));
  const prefix = originPrefix(device, stream);
  return { device, stream, entry: async (seq) => b64urlEncode(await encodeEntry(prefix, seq, new TextEncoder().encode(`${seq}`), signer)) };
}

/** A leader at epoch 1 over an in-memory log holding `before` entries of earlier epochs. */
function leader(before: Uint8Array[] = []) {
  const log = [...before];
  const searches: { from: number; to: number }[] = [];
  let failSearches = 0;
  /** While set, writes wait for it (they are in flight). */
  let gate: Promise<void> | null = null;
  /** While set, reads of the log for returning streams wait for it. */
  let searchGate: Promise<void> | null = null;
  const read = async (from: number) => ({ from, entries: log.slice(from, from + 100), length: log.length });
  const seq: Sequencer = new Sequencer(
    {
      write: async (at, entries) => {
        if (gate !== null) await gate;
        if (at !== log.length) return { nack: true, length: log.length };
        for (const e of entries) log.push(b64urlDecode(e)!);
        return { length: log.length };
      },
      // What the Log's feed and admission do with written entries: each counts at its index.
      written: (at, items) => {
        items.forEach((it, i) => seq.noteCommitted(it.origin, at + i, true));
        seq.flushAcks();
      },
      failed: () => assert.fail('the pipeline halted'),
      refused: () => assert.fail('entries refused'),
      mayWrite: () => true,
      find: async (device, stream, from, to) => {
        searches.push({ from, to });
        if (searchGate !== null) await searchGate;
        if (failSearches > 0) {
          failSearches--;
          throw new Error('read failed');
        }
        return findStreamEntries(read, device, stream, from, to);
      },
    },
    'w',
    LIMITS,
  );
  seq.resume(1, log.length);
  return {
    seq,
    log,
    searches,
    failNextSearch: () => failSearches++,
    /** Holds the reads for returning streams from now on; returns what lets them go. */
    holdSearches(): () => void {
      let open!: () => void;
      searchGate = new Promise<void>((r) => (open = r));
      return () => {
        searchGate = null;
        open();
      };
    },
    /** Holds the writes from now on in flight; returns what lets them go. */
    holdWrites(): () => void {
      let open!: () => void;
      gate = new Promise<void>((r) => (open = r));
      return () => {
        gate = null;
        open();
      };
    },
    /** Submits `seqs` of `f` (floor: the first; `seen` unless null) and waits until the writes settle. */
    async submit(f: Follower, seqs: number[], seen: number | null, replies: LinkMessage[] = []): Promise<LinkMessage[]> {
      const entries = await Promise.all(seqs.map((s) => f.entry(s)));
      const msg = { t: 'submit' as const, epoch: 1, stream: f.stream, floor: seqs[0]!, ...(seen === null ? {} : { seen }), entries };
      seq.submitRemote(f.device, msg, (m) => replies.push(m));
      await settle(seq);
      return replies;
    },
    /** How many times each `device/stream/seq` is in the log. */
    counts(): Map<string, number> {
      const out = new Map<string, number>();
      for (const bytes of log) {
        const o = decodeOrigin(bytes);
        out.set(o, (out.get(o) ?? 0) + 1);
      }
      return out;
    },
  };
}

function decodeOrigin(bytes: Uint8Array): string {
  const device = b64urlEncode(bytes.subarray(2, 34));
  const stream = b64urlEncode(bytes.subarray(34, 42));
  return `${device}/${stream}/${bytes[42]!}`; // seqs here stay under 128: one varint byte
}

async function settle(seq: Sequencer): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    await seq.idle();
  }
}

function acked(replies: LinkMessage[]): [number, number][] {
  return replies.flatMap((m) => (m.t === 'ack' ? m.acks : []));
}

test('a leader keeps state for at most MAX_STREAMS follower streams while 20 000 followers come and go, and every entry is written once', async () => {
  const l = leader();
  let most = 0;
  for (let i = 0; i < 20_000; i++) {
    // A follower that opens the log reads it to its end before it sends.
    const replies = await l.submit(follower(), [1, 2], l.log.length);
    assert.deepEqual(acked(replies).map(([s]) => s), [1, 2]);
    most = Math.max(most, l.seq.followerStreams);
  }
  assert.ok(most <= MAX_STREAMS, `at most ${MAX_STREAMS} streams had state (${most})`);
  assert.equal(l.log.length, 40_000);
  assert.ok([...l.counts().values()].every((n) => n === 1), 'no entry twice');
  assert.deepEqual(l.searches, [], 'followers that say how far they read need no search');
});

test('a follower stream idle for STREAM_IDLE_MS is pruned; one with entries in flight is not', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const l = leader();
  await l.submit(follower(), [1], 0);
  await l.submit(follower(), [1], 0);
  // A third one's write stays in flight across the idle time.
  const release = l.holdWrites();
  const busy = follower();
  const entry = await busy.entry(1);
  l.seq.submitRemote(busy.device, { t: 'submit', epoch: 1, stream: busy.stream, floor: 1, seen: 0, entries: [entry] }, () => undefined);
  assert.equal(l.seq.followerStreams, 3);
  t.mock.timers.tick(STREAM_IDLE_MS + 1);
  const next = follower();
  next.entry(1).then((e) => l.seq.submitRemote(next.device, { t: 'submit', epoch: 1, stream: next.stream, floor: 1, seen: 0, entries: [e] }, () => undefined));
  await new Promise((r) => setImmediate(r));
  assert.equal(l.seq.followerStreams, 2, 'the idle ones are pruned; the one in flight and the new one stay');
  release();
  await settle(l.seq);
  t.mock.timers.tick(STREAM_IDLE_MS + 1);
  await l.submit(follower(), [1], 0);
  assert.equal(l.seq.followerStreams, 1);
  assert.ok([...l.counts().values()].every((n) => n === 1));
});

/** Fills the leader with MAX_STREAMS other followers, so that `f`'s state is pruned. */
async function crowdOut(l: ReturnType<typeof leader>): Promise<void> {
  for (let i = 0; i < MAX_STREAMS; i++) await l.submit(follower(), [1], l.log.length);
}

test("a pruned follower's resend of entries already written (its acks lost) is not written again, and is acknowledged", async () => {
  const l = leader();
  const f = follower();
  await l.submit(f, [1, 2, 3], 0); // written at 0…2; say the acks never reach f
  await crowdOut(l);
  const length = l.log.length;

  // f has not read the log since (`seen` 0): it resends 1…3, with 4 new.
  const replies = await l.submit(f, [1, 2, 3, 4], 0);
  assert.equal(l.searches.length, 1, 'the leader read the log where f could not vouch for it');
  assert.equal(l.searches[0]!.from, 0);
  assert.ok(l.searches[0]!.to >= 3);
  assert.deepEqual(acked(replies), [[1, 0], [2, 1], [3, 2], [4, length]]);
  assert.equal(l.log.length, length + 1, 'only seq 4 was written');
  assert.ok([...l.counts().values()].every((n) => n === 1), 'no entry twice');
});

test('a follower that read past what was pruned is taken as new without reading the log; an older SDK (no `seen`) makes the leader read from the epoch start', async () => {
  const earlier = follower();
  const before = await Promise.all([1, 2].map(async (s) => b64urlDecode(await earlier.entry(s))!));
  const l = leader(before); // the epoch starts at index 2
  const f = follower();
  const old = follower();
  await l.submit(f, [1], 2);
  await l.submit(old, [1], null);
  await crowdOut(l);
  const length = l.log.length;

  // f read everything (its entry 1 settled): it sends 2 with `seen` at the end.
  const replies = await l.submit(f, [2], length);
  assert.equal(l.searches.length, 0, 'no search: f vouches for everything before the end');
  assert.deepEqual(acked(replies), [[2, length]]);

  // The older SDK resends its 1 (ack lost) and 2: the leader reads from where it began writing.
  const oldReplies = await l.submit(old, [1, 2], null);
  assert.equal(l.searches.length, 1);
  assert.equal(l.searches[0]!.from, 2);
  assert.deepEqual(acked(oldReplies), [[1, 3], [2, length + 1]]);
  assert.ok([...l.counts().values()].every((n) => n === 1), 'no entry twice');
});

test('when reading the log for a returning stream fails, nothing of it is written until a resend reads it again', async () => {
  const l = leader();
  const f = follower();
  await l.submit(f, [1, 2], 0);
  await crowdOut(l);
  const length = l.log.length;
  l.failNextSearch();
  const first = await l.submit(f, [1, 2, 3], 0);
  assert.deepEqual(acked(first), []);
  assert.equal(l.log.length, length, 'nothing written while it is not known what is there');
  const again = await l.submit(f, [1, 2, 3], 0);
  assert.equal(l.searches.length, 2);
  assert.deepEqual(acked(again), [[1, 0], [2, 1], [3, length]]);
  assert.ok([...l.counts().values()].every((n) => n === 1), 'no entry twice');
});

test('submit messages carry `seen` (optional, a non-negative integer)', () => {
  const base = { t: 'submit', epoch: 1, stream: 's', floor: 1, entries: [] };
  assert.deepEqual(parseMessage({ ...base, seen: 7 }), { ...base, seen: 7 });
  assert.deepEqual(parseMessage(base), base);
  assert.equal(parseMessage({ ...base, seen: -1 }), null);
  assert.equal(parseMessage({ ...base, seen: '7' }), null);
});

test('at most 4 returning streams are searched for at once; the fifth is told to send again shortly', async () => {
  const l = leader();
  const fs = Array.from({ length: 5 }, () => follower());
  for (const f of fs) await l.submit(f, [1], l.log.length);
  await crowdOut(l);
  const release = l.holdSearches();
  const replies = fs.map(() => [] as LinkMessage[]);
  for (const [i, f] of fs.entries()) void l.submit(f, [1, 2], 0, replies[i]);
  await settle(l.seq);
  assert.equal(l.searches.length, 4);
  release();
  await settle(l.seq);
  assert.deepEqual(acked(replies[4]!), [], 'the fifth was not taken');
  assert.deepEqual(replies[4]!.filter((m) => m.t === 'stale'), [{ t: 'stale', epoch: 1 }], 'and told to send again shortly');
  await l.submit(fs[4]!, [1, 2], 0, replies[4]);
  assert.equal(l.searches.length, 5);
  for (const [i, r] of replies.entries()) assert.deepEqual(acked(r).map(([s]) => s), [1, 2], `follower ${i}`);
  assert.ok([...l.counts().values()].every((n) => n === 1), 'no entry twice');
});
