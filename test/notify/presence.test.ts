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

  it('replaces a node\'s users with a full snapshot', () => {
    const p = new PresenceTracker(10);
    p.apply({ node: 'a', ttlMs: 1000, full: false, online: ['u1', 'u2'], offline: [] }, 0);
    p.apply({ node: 'a', ttlMs: 1000, full: true, online: ['u3'], offline: [] }, 0);
    assert.deepEqual(['u1', 'u2', 'u3'].map((u) => p.isOnline(u, 1)), [false, false, true]);
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
