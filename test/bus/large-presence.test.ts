/**
 * A tail node with more users online than one NATS message can list (user ids of up to 64
 * characters, a 1 MiB payload limit): its full presence snapshot, the one it sends when
 * notify says hello, and its goodbye when it drains all still reach notify, in messages that
 * each fit the bus, and a notify process that applies them in order knows every user.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { NatsBus } from '../../src/bus/nats.js';
import { PresenceTracker } from '../../src/notify/presence.js';
import { SUBJECTS, type PresenceMessage } from '../../src/protocol/bus-messages.js';
import { PresenceMessageCheck } from '../../src/protocol/notify-schemas.js';
import { Presence } from '../../src/tail/presence.js';
import { NATS_URL, natsSkip } from '../helpers/services.js';

const skip = await natsSkip();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('presence of more users than one bus message holds', { skip }, () => {
  const open: NatsBus[] = [];
  after(async () => {
    for (const b of open) await b.close();
  });

  it('reaches notify whole, in messages that each fit the bus', { timeout: 60_000 }, async () => {
    const [tailBus, notifyBus] = [await NatsBus.connect(NATS_URL), await NatsBus.connect(NATS_URL)];
    open.push(tailBus, notifyBus);
    const node = `tail-large-${process.pid}-${Date.now()}`;
    const users = Array.from({ length: 25_000 }, (_, i) => `u${String(i).padStart(8, '0')}`.padEnd(64, 'x'));
    const presence = new Presence(tailBus, node, 30_000, pino({ level: 'silent' }));
    for (const u of users) presence.online(u);

    const got: PresenceMessage[] = [];
    const tracker = new PresenceTracker(16);
    notifyBus.subscribe(SUBJECTS.notifyPresence, (m) => {
      const p = m as PresenceMessage;
      if (p.node !== node) return;
      assert.ok(PresenceMessageCheck.Check(p), 'a valid presence message');
      got.push(p);
      tracker.apply(p, Date.now());
    });
    await notifyBus.flush();
    await tailBus.flush();

    presence.start();
    const t0 = Date.now();
    while (got.filter((p) => p.full).length === 0 || got.reduce((n, p) => n + p.online.length, 0) < users.length) {
      if (Date.now() - t0 > 10_000) break;
      await sleep(20);
    }
    const snapshot = got.slice(got.findIndex((p) => p.full));
    assert.ok(snapshot.length > 1, 'the snapshot goes in several messages');
    assert.equal(new Set(snapshot.flatMap((p) => p.online)).size, users.length, 'every online user listed');
    const now = Date.now();
    for (const u of [users[0], users[12_345], users[24_999]] as string[]) assert.equal(tracker.isOnline(u, now), true, u);

    // Draining: everyone offline, and notify knows it.
    got.length = 0;
    presence.stop();
    const t1 = Date.now();
    while (got.reduce((n, p) => n + p.offline.length, 0) < users.length && Date.now() - t1 < 10_000) await sleep(20);
    assert.equal(got[0]?.full, true);
    assert.equal(tracker.isOnline(users[24_999] as string, Date.now()), false);
  });
});
