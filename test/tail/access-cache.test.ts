/**
 * The tail's cache of access answers on its own, over the in-process bus with a responder
 * in auth's place that counts the questions: how long an answer is trusted, what a gain of
 * access drops, and which lease tokens it makes tail check with auth.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InProcessBus } from '../../src/bus/inproc.js';
import { SUBJECTS, type AccessReply } from '../../src/protocol/bus-messages.js';
import type { Right } from '../../src/protocol/ids.js';
import { AccessControl, type AccessOptions } from '../../src/tail/access.js';

const OPTIONS: AccessOptions = { timeoutMs: 1000, max: 100, ttlMs: 60_000, keepMs: 120_000 };

/** An AccessControl whose questions are answered with `state.rights` on every log, and counted; `state.hold` delays the answers. */
function setup(options: Partial<AccessOptions> = {}) {
  const bus = new InProcessBus();
  const state = { rights: ['read'] as Right[], asked: 0, hold: null as Promise<void> | null };
  bus.subscribe(SUBJECTS.authAccess, async (): Promise<AccessReply> => {
    state.asked++;
    const rights = state.rights;
    if (state.hold !== null) await state.hold;
    return { ok: true, allowed: true, rights, logs: ['*'], expiresAt: null };
  });
  return { access: new AccessControl(bus, { ...OPTIONS, ...options }), state };
}

describe('AccessControl', () => {
  it('answers from the cache within ttlMs, and asks auth again after it though the grant has no expiry', async () => {
    const { access, state } = setup();
    const t = Date.now();
    assert.deepEqual((await access.check('u', 'd', 's', 'l', t))?.rights, ['read']);
    state.rights = ['read', 'write'];
    assert.deepEqual((await access.check('u', 'd', 's', 'l', t + OPTIONS.ttlMs - 1))?.rights, ['read'], 'cached');
    assert.equal(state.asked, 1);
    assert.deepEqual((await access.check('u', 'd', 's', 'l', t + OPTIONS.ttlMs + 1000))?.rights, ['read', 'write'], 'asked again');
    assert.equal(state.asked, 2);
  });

  it('forgets answers past ttlMs when pruned, without a lookup of each', async () => {
    const { access } = setup();
    const t = Date.now();
    for (let i = 0; i < 50; i++) await access.check('u', `d${i}`, 's', `l${i}`, t);
    assert.equal(access.size, 50);
    access.prune(Date.now() + OPTIONS.ttlMs - 1000);
    assert.equal(access.size, 50, 'fresh answers stay');
    await access.check('u', 'late', 's', 'l', t);
    access.prune(Date.now() + OPTIONS.ttlMs + 1);
    assert.equal(access.size, 0, 'every answer past its ttl is gone');
  });

  it('drops the answers of a (user, site) whose access grew, and only those', async () => {
    const { access, state } = setup();
    await access.check('u', 'd1', 's', 'a');
    await access.check('u', 'd2', 's', 'b');
    await access.check('u', 'd1', 'other', 'a');
    await access.check('v', 'd3', 's', 'a');
    assert.equal(access.size, 4);
    const generation = access.generation;
    const changes = access.changes;
    access.grew('u', 's');
    assert.equal(access.size, 2, "both of u's devices on s");
    assert.equal(access.generation, generation, 'a gain is no revocation');
    assert.ok(access.changes > changes);
    state.rights = ['read', 'write'];
    assert.deepEqual((await access.check('u', 'd1', 's', 'a'))?.rights, ['read', 'write']);
    assert.deepEqual((await access.check('u', 'd1', 'other', 'a'))?.rights, ['read'], 'another site keeps its answer');
  });

  it('asks again when the access grew while its question was in flight', async () => {
    const { access, state } = setup();
    let release!: () => void;
    state.hold = new Promise<void>((r) => (release = r));
    const pending = access.check('u', 'd', 's', 'l');
    await new Promise((r) => setImmediate(r));
    assert.equal(state.asked, 1);
    state.rights = ['read', 'write'];
    access.grew('u', 's');
    state.hold = null;
    release();
    assert.deepEqual((await pending)?.rights, ['read', 'write'], 'the answer from before the gain is not used');
    assert.equal(state.asked, 2);
  });

  it('checks with auth the lease tokens of a pair issued up to its gain, for as long as they can live', () => {
    const { access } = setup();
    const t = 1_700_000_000_000;
    access.grew('u', 's', t - 5000, t);
    assert.equal(access.predatesGain('u', 's', t / 1000 - 10), true, 'issued before');
    assert.equal(access.predatesGain('u', 's', t / 1000), true, 'issued in the same second');
    assert.equal(access.predatesGain('u', 's', t / 1000 + 1), false, 'issued after');
    assert.equal(access.predatesGain('u', 'other', 0), false, 'another site');
    assert.equal(access.predatesGain('v', 's', 0), false, 'another user');
    access.grew('v', 's', t + 3000, t);
    assert.equal(access.predatesGain('v', 's', t / 1000 + 3), true, "auth's clock ahead of this node's: the later counts");
    access.prune(t + OPTIONS.keepMs - 1);
    assert.equal(access.predatesGain('u', 's', t / 1000 - 10), true);
    access.prune(t + OPTIONS.keepMs + 3000);
    assert.equal(access.predatesGain('u', 's', t / 1000 - 10), false, 'no such token can still live');
    assert.equal(access.predatesGain('v', 's', t / 1000), false);
  });

  it('remembers at most `max` gains; tokens issued up to a forgotten one are checked for every pair', () => {
    const { access } = setup({ max: 2 });
    const t = 1_700_000_000_000;
    access.grew('u1', 's', undefined, t);
    access.grew('u2', 's', undefined, t + 10_000);
    access.grew('u3', 's', undefined, t + 20_000);
    assert.equal(access.predatesGain('u1', 's', t / 1000), true, 'forgotten, but older tokens are still checked');
    assert.equal(access.predatesGain('u9', 's', t / 1000), true, 'whoever holds them');
    assert.equal(access.predatesGain('u9', 's', t / 1000 + 1), false);
    assert.equal(access.predatesGain('u3', 's', t / 1000 + 20), true);
    access.prune(t + OPTIONS.keepMs);
    assert.equal(access.predatesGain('u9', 's', t / 1000), false, 'the watermark goes with the tokens it covered');
  });
});
