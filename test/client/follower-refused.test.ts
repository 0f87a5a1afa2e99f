/**
 * A follower's entries that the server refuses (TOO_LARGE, BAD_REQUEST) are never written:
 * the leader tells the follower so (`refused`), instead of leaving its appends to be resent
 * without an answer, and the leader's own entries of that write are failed with the code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { b64urlEncode, encodeEntry, entrySigner, originPrefix } from '../../src/client/index.js';
import { randomBytes } from '../../src/client/bytes.js';
import { parseMessage, type LinkMessage } from '../../src/client/link-messages.js';
import { Sequencer, type SeqItem } from '../../src/client/log-sequencer.js';
import { DgError } from '../../src/protocol/errors.js';

const LIMITS = { maxFrame: 1 << 20, maxEntries: 1000, maxEntryBytes: 256 * 1024, maxHandles: 256 };
const signer = entrySigner('site', 'log', async () => new Uint8Array(64));

test('a refused write is reported to each follower whose entries it carried, with their seqs', async () => {
  const device = b64urlEncode(randomBytes(32));
  const stream = b64urlEncode(randomBytes(8));
  const prefix = originPrefix(device, stream);
  const entry = async (seq: number) => b64urlEncode(await encodeEntry(prefix, seq, new TextEncoder().encode(`${seq}`), signer));
  let refuse: DgError | null = new DgError('TOO_LARGE', 'over the frame limit');
  let length = 0;
  const ownRefused: SeqItem[][] = [];
  let halts = 0;
  const seq: Sequencer = new Sequencer(
    {
      write: async (_at, entries) => {
        if (refuse !== null) throw refuse;
        length += entries.length;
        return { length };
      },
      written: (at, items) => {
        items.forEach((it, i) => seq.noteCommitted(it.origin, at + i, true));
        seq.flushAcks();
      },
      // A refused write halts the pipeline (its position was taken); the Log then recovers.
      failed: () => void halts++,
      refused: (items) => void ownRefused.push(items),
      mayWrite: () => true,
      find: async () => [],
    },
    'w',
    LIMITS,
  );
  seq.resume(1, 0);
  const replies: LinkMessage[] = [];
  seq.submitRemote(device, { t: 'submit', epoch: 1, stream, floor: 1, seen: 0, entries: [await entry(1), await entry(2)] }, (m) => replies.push(m));
  await seq.idle();
  assert.deepEqual(replies, [{ t: 'refused', epoch: 1, stream, seqs: [1, 2], code: 'TOO_LARGE' }]);
  assert.deepEqual(ownRefused, [[]], 'no own entries were in that write');
  assert.equal(halts, 1);

  // After the recovery the stream goes on past the refused seqs: the next ones are written and acknowledged.
  refuse = null;
  seq.resume(1, length);
  seq.submitRemote(device, { t: 'submit', epoch: 1, stream, floor: 3, seen: 0, entries: [await entry(3)] }, (m) => replies.push(m));
  await seq.idle();
  assert.deepEqual(replies.at(-1), { t: 'ack', epoch: 1, stream, acks: [[3, 0]] });
});

test('refused messages parse only in their shape', () => {
  const ok = { t: 'refused', epoch: 2, stream: 's', seqs: [4, 5], code: 'BAD_REQUEST' };
  assert.deepEqual(parseMessage(ok), ok);
  assert.equal(parseMessage({ ...ok, code: 'UNAVAILABLE' }), null, 'only codes that mean never');
  assert.equal(parseMessage({ ...ok, seqs: [1.5] }), null);
  assert.equal(parseMessage({ ...ok, seqs: 'x' }), null);
  assert.equal(parseMessage({ ...ok, stream: 3 }), null);
});
