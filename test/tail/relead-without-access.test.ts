/**
 * Leasing a log again gives the handle the access auth states now. When that is none (the
 * lease is answered `needproof`), the handle the session held on the log is gone too, with
 * a `revoke` event, and its leadership ends: it neither reads nor writes on the old access.
 * Here the bus loses the revocation's message, so the node learns of it only from the lease.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SUBJECTS } from '../../src/protocol/bus-messages.js';
import { post } from '../helpers/auth-client.js';
import { entry } from '../helpers/tail-client.js';
import { connect, lease, logName, member, sleep, world } from './fixture.js';

describe('tail: a lease answered needproof while the session holds the log', async () => {
  const w = await world({ tailLimits: { accessCacheTtlMs: 200, revokedPollMs: 600_000 } });

  it('ends the handle held on the log, with its leadership', async () => {
    const m = await member(w, ['write']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const log = logName();
    const c = await connect(w, m.dev);
    const l = await lease(c, w.site, log);
    assert.equal(l.role, 'leader');
    const o = await connect(w, w.owner);
    const ol = await lease(o, w.site, log);
    assert.equal(ol.role, 'follower');

    const bus = w.srv.server.bus;
    const publish = bus.publish;
    bus.publish = (subject, message) => {
      if (subject !== SUBJECTS.tailRevoke) publish.call(bus, subject, message);
    };
    try {
      assert.equal((await post(w.url, '/revoke', { grant: m.grant.hash }, w.owner.access)).status, 200);
    } finally {
      bus.publish = publish;
    }
    await sleep(300);

    assert.deepEqual(await c.call('lease', { site: w.site, log }), { re: 3, needproof: true });
    const revoke = await c.nextEvent('revoke', l.handle, 2000);
    assert.equal(typeof revoke.reason, 'string');
    assert.equal((await c.failure('write', { handle: l.handle, at: 0, entries: [entry('late')] })).code, 'NOT_FOUND');
    assert.equal((await c.failure('read', { handle: l.handle, from: 0 })).code, 'NOT_FOUND');

    // The others hear that the device left and the leadership ended, and may lead.
    assert.equal((await o.nextEvent('peer', ol.handle)).state, 'leave');
    const ended = await o.nextEvent('leader', ol.handle);
    assert.equal(ended.leader, null);
    assert.ok((ended.epoch as number) > l.epoch);
    const taken = await lease(o, w.site, log);
    assert.equal(taken.role, 'leader');
    assert.equal(taken.length, 0, 'nothing was written on the revoked access');
    c.close();
    o.close();
  });
});
