/**
 * Edges of `signal` on a tail node: what a refused signal costs its sender. A signal refused
 * for the byte budget gives back the count it took, and refusals because the recipient is
 * not reading are the recipient's state: they never close the sender 4429.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect, joined, lease, logName, world } from './fixture.js';

describe('tail: signals to a peer that does not read', async () => {
  const w = await world({
    tailLimits: {
      softBuffer: 64 * 1024,
      hardBuffer: 4 * 1024 * 1024,
      abuseRejects: 20,
      signalBytesPerSec: 64 * 1024 * 1024,
      signalBytesBurst: 64 * 1024 * 1024,
      signalsPerSec: 10_000,
      signalsBurst: 10_000,
    },
  });
  const peer = await joined(w, ['read', 'write']);

  it('does not close the sender 4429 for refusals that are the recipient\'s doing', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    await lease(a, w.site, log);
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log);
    a.pause(); // the leader reads nothing more
    const data = { blob: 'x'.repeat(30_000) };
    let refused = 0;
    for (let i = 0; i < 400 && refused < 40 && b.open; i++) {
      const r = await b.request('signal', { handle: lb.handle, to: 'leader', kind: 'data', data }).catch(() => null);
      if (r?.error !== undefined) {
        assert.equal(r.error.code, 'RATE_LIMITED');
        assert.match(r.error.message, /not keeping up/);
        refused++;
      }
    }
    // Twice the session's allowance of RATE_LIMITED replies, all for the recipient's backlog.
    assert.equal(refused, 40, `${refused} refused before the sender closed (${String(b.closeCode)})`);
    assert.equal(b.open, true);
    await b.call('ping');
    a.resume();
    a.close();
    b.close();
  });
});

describe('tail: signal budget', async () => {
  // Budgets that do not refill within the test: 3 signals and 100 bytes.
  const w = await world({ tailLimits: { signalsPerSec: 0.001, signalsBurst: 3, signalBytesPerSec: 0.001, signalBytesBurst: 100 } });
  const peer = await joined(w, ['read', 'write']);

  it('gives back the count of a signal refused for the byte budget', async () => {
    const log = logName();
    const a = await connect(w, w.owner);
    const la = await lease(a, w.site, log);
    const b = await connect(w, peer);
    const lb = await lease(b, w.site, log);
    assert.equal((await b.failure('signal', { handle: lb.handle, to: 'leader', kind: 'data', data: 'x'.repeat(200) })).code, 'RATE_LIMITED');
    // The burst of 3 is whole: the refused signal took none of it.
    for (let i = 0; i < 3; i++) {
      await b.call('signal', { handle: lb.handle, to: 'leader', kind: 'data', data: i });
      assert.equal((await a.nextEvent('signal', la.handle)).data, i);
    }
    assert.equal((await b.failure('signal', { handle: lb.handle, to: 'leader', kind: 'data', data: 9 })).code, 'RATE_LIMITED');
    a.close();
    b.close();
  });
});
