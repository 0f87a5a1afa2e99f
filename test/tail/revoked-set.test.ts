/** The tail's memory of revocations: devices, families, and lost (user, site) access for lease tokens. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RevokedSet } from '../../src/tail/revocation.js';

describe('RevokedSet', () => {
  it('distrusts lease tokens issued up to a revocation of their (user, site), for as long as they can live', () => {
    const keep = 60_000;
    const r = new RevokedSet(keep);
    const t = 1_700_000_000_000;
    r.addAccess('u1', 's1', t);
    assert.equal(r.leaseTokenStale('u1', 's1', t / 1000 - 10), true, 'issued before');
    assert.equal(r.leaseTokenStale('u1', 's1', t / 1000), true, 'issued in the same second');
    assert.equal(r.leaseTokenStale('u1', 's1', t / 1000 + 1), false, 'issued after');
    assert.equal(r.leaseTokenStale('u1', 's2', 0), false, 'another site');
    assert.equal(r.leaseTokenStale('u2', 's1', 0), false, 'another user');
    r.prune(t + keep - 1);
    assert.equal(r.leaseTokenStale('u1', 's1', t / 1000 - 10), true);
    r.prune(t + keep);
    assert.equal(r.leaseTokenStale('u1', 's1', t / 1000 - 10), false, 'no such token can still live');
  });

  it('distrusts every token issued before it listened (plus a margin) until the list from auth is loaded', () => {
    const keep = 60_000;
    const r = new RevokedSet(keep);
    const t = 1_700_000_000_000;
    assert.equal(r.incomplete, false, 'nothing is unknown before it listens');
    r.listening(t);
    assert.equal(r.incomplete, true);
    assert.equal(r.predatesKnown(t / 1000 - 100), true, 'issued before');
    assert.equal(r.predatesKnown(t / 1000 + 2), true, 'issued within the margin');
    assert.equal(r.predatesKnown(t / 1000 + 3), false, 'issued after the margin');
    assert.equal(r.leaseTokenStale('u', 's', t / 1000 - 100), true, 'a lease token of before is checked with auth');
    assert.equal(r.leaseTokenStale('u', 's', t / 1000 + 3), false);
    r.prune(t + keep - 1);
    assert.equal(r.predatesKnown(t / 1000 - 100), true, 'still within a token lifetime');
    r.loaded();
    assert.equal(r.incomplete, false);
    assert.equal(r.predatesKnown(t / 1000 - 100), false, 'loaded: only revoked tokens are refused');
    assert.equal(r.leaseTokenStale('u', 's', t / 1000 - 100), false);
    r.listening(t);
    r.prune(t + 2000 + keep);
    assert.equal(r.incomplete, false, 'no token of before can still live');
  });

  it('folds the oldest pairs into a watermark beyond its bound, so no revocation is forgotten early', () => {
    const r = new RevokedSet(60_000);
    const t = 1_700_000_000_000;
    for (let i = 0; i <= 100_000; i++) r.addAccess(`u${i}`, 's', t + i);
    // u0 was folded: every token issued up to its revocation is distrusted, whoever holds it.
    assert.equal(r.leaseTokenStale('u0', 's', t / 1000), true);
    assert.equal(r.leaseTokenStale('someone', 'else', t / 1000), true);
    assert.equal(r.leaseTokenStale('someone', 'else', t / 1000 + 1), false);
    r.prune(t + 60_000);
    assert.equal(r.leaseTokenStale('someone', 'else', t / 1000), false, 'the watermark ends with the token lifetime');
  });

  it('knows a revocation again by auth\'s time, and takes the later clock for lease tokens', () => {
    const r = new RevokedSet(60_000);
    const t = 1_700_000_000_000;
    assert.equal(r.knowsAccess('u', 's', t), false);
    r.addAccess('u', 's', t, t - 5000);
    assert.equal(r.knowsAccess('u', 's', t - 5000), true, 'the same revocation');
    assert.equal(r.knowsAccess('u', 's', t - 6000), true, 'an older one');
    assert.equal(r.knowsAccess('u', 's', t - 4000), false, 'a later one');
    assert.equal(r.knowsAccess('u', 's2', t - 5000), false);
    r.addAccess('u', 's', t + 1000); // a message without auth's time keeps the one known
    assert.equal(r.knowsAccess('u', 's', t - 5000), true);
    // This node learned it late by its own clock, or auth's clock is ahead: the later time counts.
    const q = new RevokedSet(60_000);
    q.addAccess('u', 's', t, t + 3000);
    assert.equal(q.leaseTokenStale('u', 's', (t + 2000) / 1000), true);
    assert.equal(q.leaseTokenStale('u', 's', (t + 4000) / 1000), false);
  });

  it('distrusts every lease token issued up to a given time, once auth says its list was cut', () => {
    const r = new RevokedSet(60_000);
    const t = 1_700_000_000_000;
    assert.equal(r.distrustLeaseTokensUntil(t), true);
    assert.equal(r.distrustLeaseTokensUntil(t - 1000), false, 'never moves back');
    assert.equal(r.leaseTokenStale('anyone', 'anywhere', t / 1000), true);
    assert.equal(r.leaseTokenStale('anyone', 'anywhere', t / 1000 + 1), false);
    r.prune(t + 60_000);
    assert.equal(r.leaseTokenStale('anyone', 'anywhere', t / 1000), false, 'no such token can still live');
  });
});
