/**
 * ServerEpochs: a caller gets a site's key epoch from a read that started after its mark;
 * callers share reads, and one site is read at most once per interval however many ask.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { DgError } from '../../src/protocol/errors.js';
import { ServerEpochs } from '../../src/client/keys/server-epochs.js';

const INTERVAL = 200;

// The waits between reads do not keep a process alive (an app's sockets do): this does, here.
const alive = setInterval(() => undefined, 1000);
after(() => clearInterval(alive));

/** A server whose epoch the test sets, recording when each read started. */
function server() {
  const s = { epoch: 1, starts: [] as number[], fail: null as DgError | null };
  const read = async () => {
    s.starts.push(Date.now());
    await new Promise((r) => setTimeout(r, 20));
    if (s.fail !== null) throw s.fail;
    return s.epoch;
  };
  return { s, epochs: new ServerEpochs(read, INTERVAL) };
}

test('callers of one turn share one read; a caller after it waits for the next, an interval later', async () => {
  const { s, epochs } = server();
  const [a, b, c] = await Promise.all([epochs.since('x'), epochs.since('x'), epochs.since('x')]);
  assert.deepEqual([a, b, c, s.starts.length], [1, 1, 1, 1]);

  // A change the first read could not see: a later mark needs a later read.
  s.epoch = 2;
  const t0 = Date.now();
  assert.equal(await epochs.since('x'), 2);
  assert.equal(s.starts.length, 2);
  assert.ok(s.starts[1]! - s.starts[0]! >= INTERVAL - 5, 'not sooner than the interval');
  assert.ok(Date.now() - t0 >= INTERVAL - 50);

  // A mark taken before a read started is served by it, at once.
  const mark = epochs.mark();
  const after = epochs.since('x');
  assert.equal(await epochs.since('x', mark), 2);
  await after;
  assert.equal(epochs.known('x'), 2);
  assert.equal(s.starts.length, 3);
});

test('a burst of callers, each after the last answer, costs one read per interval', async () => {
  const { s, epochs } = server();
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) await epochs.since('x');
  const took = Date.now() - t0;
  assert.equal(s.starts.length, 5);
  assert.ok(took >= 4 * INTERVAL - 20, `took ${took} ms`);
  // Other sites are read on their own.
  await epochs.since('y');
  assert.equal(s.starts.length, 6);
  assert.ok(Date.now() - t0 - took < INTERVAL, 'no wait for another site');
});

test('a failed read rejects its callers, and the next waits for the interval all the same', async () => {
  const { s, epochs } = server();
  s.fail = new DgError('UNAVAILABLE', 'down');
  await assert.rejects(epochs.since('x'), (e: DgError) => e.code === 'UNAVAILABLE');
  s.fail = null;
  assert.equal(await epochs.since('x'), 1);
  assert.ok(s.starts[1]! - s.starts[0]! >= INTERVAL - 5);
  // An epoch noted (this device claimed it) counts as read now.
  const before = epochs.mark();
  epochs.note('x', 7);
  assert.equal(epochs.known('x'), 7);
  assert.equal(await epochs.since('x', before), 7);
  assert.equal(s.starts.length, 2);
});
