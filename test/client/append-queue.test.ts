/**
 * The Log's append queue on its own: seqs taken in the order of the calls, each call's only
 * once all its entries are prepared as those seqs; a call that fails takes none (the calls
 * after it are prepared again as their new seqs); calls made together are prepared together,
 * within a window, and committed together; nothing is committed once the queue is stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DgError } from '../../src/protocol/errors.js';
import { AppendQueue, MAX_STEP_ENTRIES, PREPARE_WINDOW } from '../../src/client/log-append-queue.js';

const enc = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const many = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => enc(`${prefix}${i}`));
const outcome = (r: PromiseSettledResult<number[]>) => (r.status === 'fulfilled' ? r.value : (r.reason as DgError).code);

/** A queue whose entries are "payload@seq", made out of order; "fail" and "crash" (not a DgError) cannot be made. */
function harness() {
  const h = { seq: 0, steps: 0, commits: 0, inFlight: 0, maxInFlight: 0, committed: [] as string[], started: [] as string[] };
  const queue = new AppendQueue({
    lastSeq: () => {
      h.steps++;
      return h.seq;
    },
    prepare: async (payload, seq) => {
      h.started.push(text(payload));
      if (text(payload) === 'fail') throw new DgError('FORBIDDEN', 'cannot seal');
      if (text(payload) === 'crash') throw new TypeError('boom');
      h.maxInFlight = Math.max(h.maxInFlight, ++h.inFlight);
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      h.inFlight--;
      return enc(`${text(payload)}@${seq}`);
    },
    commit: (base, entries) => {
      h.commits++;
      entries.forEach((e, i) => assert.ok(text(e).endsWith(`@${base + 1 + i}`), `${text(e)} was prepared as the seq it takes`));
      h.seq = base + entries.length;
      h.committed.push(...entries.map(text));
      return entries.map((_, i) => Promise.resolve(base + i));
    },
  });
  return { queue, h };
}

test('seqs follow the order of calls and are taken once a whole call is ready; a failed call takes none and leaves no gap', async () => {
  const { queue, h } = harness();
  const calls = [queue.add([enc('a'), enc('b')]), queue.add([enc('c'), enc('fail')]), queue.add([]), queue.add([enc('crash')]), queue.add([enc('d')]), queue.add(many('x', 100)), queue.add([enc('e')])];
  assert.equal(queue.waiting, 107);
  const results = await Promise.allSettled(calls);
  assert.deepEqual(results.map(outcome), [[0, 1], 'FORBIDDEN', [], 'INTERNAL', [2], Array.from({ length: 100 }, (_, i) => 3 + i), [103]]);
  assert.deepEqual(h.committed, ['a@1', 'b@2', 'd@3', ...Array.from({ length: 100 }, (_, i) => `x${i}@${4 + i}`), 'e@104']);
  assert.ok(h.maxInFlight > 1 && h.maxInFlight <= PREPARE_WINDOW, `entries prepared concurrently, at most ${PREPARE_WINDOW} (${h.maxInFlight})`);
  assert.ok(h.started.length < 107 + 100, 'after a failure, the later entries of the step were not all started');
  assert.equal(queue.waiting, 0);

  // Later calls go on from there.
  assert.deepEqual(await queue.add([enc('f')]), [104]);
  assert.deepEqual(h.committed.at(-1), 'f@105');
});

test('calls made together are prepared and committed together, up to MAX_STEP_ENTRIES entries a step', async () => {
  const { queue, h } = harness();
  const n = MAX_STEP_ENTRIES + 200;
  const indexes = await Promise.all(Array.from({ length: n }, (_, i) => queue.add([enc(`s${i}`)])));
  assert.deepEqual(indexes.flat(), Array.from({ length: n }, (_, i) => i));
  assert.equal(h.steps, 2, 'two steps');
  assert.equal(h.commits, n);
  assert.ok(h.maxInFlight <= PREPARE_WINDOW);

  // A call larger than a step is a step of its own.
  h.steps = 0;
  assert.equal((await queue.add(many('big', MAX_STEP_ENTRIES + 1))).length, MAX_STEP_ENTRIES + 1);
  assert.equal(h.steps, 1);
});

test('a stopped queue commits nothing more: the call under way and those waiting reject, and take no seqs', async () => {
  const { queue, h } = harness();
  await queue.add([enc('first')]);
  const during = queue.add(many('e', 10));
  while (!h.started.includes('e0')) await new Promise((r) => setImmediate(r));
  const waiting = queue.add([enc('f')]);
  queue.stop(new DgError('UNAVAILABLE', 'log closed'));
  await assert.rejects(waiting, { code: 'UNAVAILABLE' });
  await assert.rejects(during, { code: 'UNAVAILABLE' });
  await assert.rejects(queue.add([enc('g')]), { code: 'UNAVAILABLE' });
  assert.deepEqual(h.committed, ['first@1']);
  assert.ok(!h.started.includes('f'), 'the waiting call was never prepared');
  assert.equal(queue.waiting, 0);
});
