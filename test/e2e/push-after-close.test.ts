/**
 * Sessions that end right after writes, end to end through the monolith with a real push
 * receiver: tail holds a log's later commits for its publish interval, so the publish of
 * writes made while a user was online can reach notify after that user went offline. Such
 * a user must not be pushed for them (docs/notify.md: an online app sees the change itself),
 * whether the user wrote them or only had a session open while they were made.
 *
 * Tail's publish interval is raised to 1 s here so that a session always ends within it,
 * however slow the machine; every "no push" assertion has a control (C, an offline member
 * pushed for the same writes).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSite, signupDevice } from '../helpers/auth-client.js';
import { startPushReceiver } from '../helpers/push-receiver.js';
import { TailClient } from '../helpers/tail-client.js';
import { SUBJECTS, type NotifyPublish, type PresenceMessage } from '../../src/protocol/bus-messages.js';
import { metric } from '../helpers/metrics.js';
import { PUSH_INTERVAL_MS, Writer, delivered, enablePush, member, pushWithLength, sleep, startPushServer, tailSessions, until, vapidKey } from './push-world.js';

const TAIL_PUBLISH_INTERVAL_MS = 1000;
/** Long enough for anything tail held, and then notify held, to have been pushed. */
const QUIET_MS = TAIL_PUBLISH_INTERVAL_MS + PUSH_INTERVAL_MS * 4;

describe('push end to end: sessions that end right after writes', async () => {
  const receiver = await startPushReceiver();
  const srv = await startPushServer(receiver, { tailLimits: { notifyIntervalMs: TAIL_PUBLISH_INTERVAL_MS } });
  const vapid = await vapidKey(srv.url);

  it('a writer who closes its session right after writing is not pushed about its own writes', async () => {
    const w = await signupDevice(srv.url, { name: 'W phone' });
    const site = await createSite(srv.url, w.access, 'notes');
    const c = await member(srv.url, w, site);
    const wSub = await enablePush(srv.url, w, receiver, vapid, site);
    const cSub = await enablePush(srv.url, c, receiver, vapid, site);
    const open = await metric(srv.url, 'datagrove_tail_sessions');
    // What tail tells notify, in order.
    const told: string[] = [];
    const subs = [
      srv.server.bus.subscribe(SUBJECTS.notifyPublish, (m) => {
        const p = m as NotifyPublish;
        if (p.site === site) told.push(`publish ${p.length}`);
      }),
      srv.server.bus.subscribe(SUBJECTS.notifyPresence, (m) => {
        const p = m as PresenceMessage;
        if (!p.full && p.offline.includes(w.user)) told.push('W offline');
      }),
    ];

    // W's only session: three quick writes, then the app closes. Tail publishes the first
    // at once and would hold the other two for its interval, past the end of the session.
    const writer = await Writer.open(srv.wsUrl, w, site, 'chat');
    await writer.write(1);
    await writer.write(1);
    const length = await writer.write(1);
    writer.close();
    await tailSessions(srv.url, open);
    // The publish held for W's writes went out before W's offline delta, not an interval later.
    await until('W offline on the bus', () => told.includes('W offline'), 1000);
    assert.deepEqual(told, ['publish 1', 'publish 3', 'W offline']);
    for (const sub of subs) sub.unsubscribe();

    await pushWithLength(receiver, cSub, length, QUIET_MS + 5000);
    await sleep(QUIET_MS);
    assert.deepEqual(receiver.received(wSub.id).map((p) => p.payload), [], 'W was pushed about its own writes');

    // W, offline now, is pushed for what others write (its subscription works). Another
    // log: W's leadership of `chat` outlives its session for a grace period.
    const other = await Writer.open(srv.wsUrl, c, site, 'replies');
    const next = await other.write(1);
    assert.deepEqual((await pushWithLength(receiver, wSub, next)).payload, { site, log: 'replies', length: next });
    other.close();
  });

  it('a member whose session ends right after another user\'s writes is not pushed for writes made while it was online', async () => {
    const a = await signupDevice(srv.url, { name: 'A laptop' });
    const site = await createSite(srv.url, a.access, 'board');
    const b = await member(srv.url, a, site);
    const c = await member(srv.url, a, site);
    const bSub = await enablePush(srv.url, b, receiver, vapid, site);
    const cSub = await enablePush(srv.url, c, receiver, vapid, site);
    const open = await metric(srv.url, 'datagrove_tail_sessions');
    const writer = await Writer.open(srv.wsUrl, a, site, 'cards');

    // B is online (a session with no lease) while A writes, and leaves right after.
    const bSession = await TailClient.connect(srv.wsUrl, b.access);
    await tailSessions(srv.url, open + 2);
    await writer.write(1);
    await writer.write(1);
    const length = await writer.write(1);
    bSession.close();
    await tailSessions(srv.url, open + 1);

    await pushWithLength(receiver, cSub, length, QUIET_MS + 5000);
    await sleep(QUIET_MS);
    assert.deepEqual(delivered(receiver, bSub).map((p) => p.payload), [], 'B was pushed for writes made while it was online');

    // A write made after B left is pushed to B.
    const next = await writer.write(1);
    assert.deepEqual((await pushWithLength(receiver, bSub, next)).payload, { site, log: 'cards', length: next });
    writer.close();
  });
});
