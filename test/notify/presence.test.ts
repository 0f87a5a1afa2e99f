import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PresenceTracker } from '../../src/notify/presence.js';

describe('PresenceTracker', () => {
  it('is online while any live node lists the user', () => {
    const p = new PresenceTracker(10);
    p.apply({ node: 'a', ttlMs: 1000, full: true, online: ['u1', 'u2'], offline: [] }, 0);
    p.apply({ node: 'b', ttlMs: 1000, full: false, online: ['u1'], offline: [] }, 0);
    assert.equal(p.isOnline('u1', 10), true);
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: [], offline: ['u1'] }, 10);
    assert.equal(p.isOnline('u1', 20), true, 'still on b');
    assert.equal(p.isOnline('u1', 1000), false, 'b expired at 1000');
    assert.equal(p.isOnline('u2', 1009), true, 'a lives until 1010');
    assert.equal(p.isOnline('u2', 1010), false);
    assert.equal(p.liveNodes(1010), 0);
  });

  it('takes from `left` (a tail node answering dg.notify.hello) when users who left it were last online', () => {
    const p = new PresenceTracker(10);
    p.apply({ node: 'a', ttlMs: 1000, full: true, online: ['u2'], offline: [] }, 5000);
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: [], offline: [], left: [{ user: 'u1', agoMs: 1000 }] }, 5000);
    assert.equal(p.isOnline('u1', 5001), false);
    assert.equal(p.seenSince('u1', 4000, 5001), true, 'left at 4000');
    assert.equal(p.seenSince('u1', 4001, 5001), false);
    assert.equal(p.isOnline('u2', 5001), true, 'a delta with only `left` changes nobody\'s presence');
  });

  it('replaces a node\'s users with a full snapshot', () => {
    const p = new PresenceTracker(10);
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: ['u1', 'u2'], offline: [] }, 0);
    p.apply({ node: 'a', ttlMs: 1000, full: true, online: ['u3'], offline: [] }, 0);
    assert.deepEqual(['u1', 'u2', 'u3'].map((u) => p.isOnline(u, 1)), [false, false, true]);
  });

  it('remembers when a user was last listed: by an offline delta, a full snapshot, or until its node expired', () => {
    const p = new PresenceTracker(10);
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: ['u1', 'u2', 'u3'], offline: [] }, 0);
    assert.equal(p.seenSince('u1', 50, 60), true, 'online now');
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: [], offline: ['u1'] }, 100);
    assert.equal(p.isOnline('u1', 150), false);
    assert.equal(p.seenSince('u1', 100, 150), true, 'online at 100');
    assert.equal(p.seenSince('u1', 101, 150), false);
    p.apply({ node: 'a', ttlMs: 1000, full: true, online: ['u3'], offline: [] }, 200);
    assert.equal(p.seenSince('u2', 200, 250), true, 'dropped by the snapshot at 200');
    assert.equal(p.seenSince('u2', 201, 250), false);
    // Node a expires at 1200 (its last message at 200): u3 counts as online until then.
    assert.equal(p.seenSince('u3', 1200, 5000), true);
    assert.equal(p.seenSince('u3', 1201, 5000), false);
    assert.equal(p.seenSince('never', 0, 5000), false);
  });

  it('an offline delta counts even for a user the node had not listed (notify restarted)', () => {
    const p = new PresenceTracker(10);
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: [], offline: ['u'] }, 70);
    assert.equal(p.seenSince('u', 70, 80), true);
  });

  it('forgets last times after memoryMs, and keeps at most maxUsers (the oldest go first)', () => {
    const p = new PresenceTracker(10, { memoryMs: 1000, maxUsers: 2 });
    for (const [i, u] of ['u1', 'u2', 'u3'].entries()) p.apply({ node: 'a', ttlMs: 100_000, full: false, online: [], offline: [u] }, 10 * i);
    assert.equal(p.remembered, 2);
    assert.equal(p.seenSince('u1', 0, 30), false, 'forgotten for room');
    assert.equal(p.seenSince('u2', 10, 30), true);
    assert.equal(p.seenSince('u3', 20, 30), true);
    p.apply({ node: 'a', ttlMs: 100_000, full: false, online: [], offline: ['u2'] }, 500);
    assert.equal(p.seenSince('u3', 20, 1015), true, 'kept for memoryMs');
    assert.equal(p.seenSince('u3', 20, 1021), false, 'forgotten after');
    assert.equal(p.seenSince('u2', 500, 1021), true, 'seen again later, kept');
    assert.equal(p.remembered, 1);
  });

  it('bounds the number of live nodes', () => {
    const p = new PresenceTracker(2);
    assert.equal(p.apply({ node: 'a', ttlMs: 100, full: true, online: [], offline: [] }, 0), true);
    assert.equal(p.apply({ node: 'b', ttlMs: 100, full: true, online: [], offline: [] }, 0), true);
    assert.equal(p.apply({ node: 'c', ttlMs: 100, full: true, online: ['u'], offline: [] }, 50), false);
    assert.equal(p.apply({ node: 'c', ttlMs: 100, full: true, online: ['u'], offline: [] }, 100), true, 'room once a and b expired');
    assert.equal(p.isOnline('u', 101), true);
  });
});
