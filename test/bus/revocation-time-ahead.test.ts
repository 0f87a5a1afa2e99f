/**
 * A dg.tail.revoke whose `at` lies far ahead of every clock (a sender with a broken clock or
 * of another version, or anyone on the bus) is at worst a denial: it must not make the node
 * take a later revocation of the same (user, site), whose own message was lost, for one it
 * already acted on. That one still arrives with auth's list of recent revocations, and
 * kills the handle.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SUBJECTS, type AccessChanged, type RevokeEvent } from '../../src/protocol/bus-messages.js';
import { post } from '../helpers/auth-client.js';
import { connect, lease, logName, member, revokeGrantUnannounced, sleep, world } from '../tail/fixture.js';

const TEN_YEARS_MS = 10 * 365 * 86_400_000;

describe('bus messages dated ahead of every clock', () => {
  it('do not hide a later revocation of the same access whose message was lost', async () => {
    // A node that asks auth for the recent revocations every second.
    const w = await world({ tailLimits: { revokedPollMs: 1000 } });
    const log = logName();
    const m = await member(w, ['read']);
    assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
    const c = await connect(w, m.dev);
    const l = await lease(c, w.site, log);
    assert.equal(l.role, 'follower');

    // Forged or broken: a revocation and a join of the pair, dated ten years from now. Auth
    // still confirms the access, so the handle stays.
    const bus = w.srv.server.bus;
    const future = Date.now() + TEN_YEARS_MS;
    bus.publish(SUBJECTS.tailRevoke, { reason: 'grant', access: [{ user: m.dev.user, site: w.site, at: future }] } satisfies RevokeEvent);
    bus.publish(SUBJECTS.tailAccess, { user: m.dev.user, site: w.site, at: future } satisfies AccessChanged);
    await sleep(300);
    assert.deepEqual((await c.call<{ entries: unknown[] }>('read', { handle: l.handle, from: 0 })).entries, [], 'the handle still reads');

    // The real revocation, whose message is lost.
    assert.deepEqual(await revokeGrantUnannounced(w, m.grant.hash), [m.dev.user]);
    assert.deepEqual(await c.nextEvent('revoke', l.handle, 5000), { ev: 'revoke', handle: l.handle, reason: 'grant' });
    assert.equal((await c.failure('read', { handle: l.handle, from: 0 })).code, 'NOT_FOUND');
    c.close();
    await w.srv.stop();
  });
});
