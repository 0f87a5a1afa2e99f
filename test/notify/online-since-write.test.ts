/**
 * A user who was online when a write was made, or at any moment since, has seen it and is
 * not pushed about it. Notify dates each write from `ageMs` of dg.notify.publish (on its own
 * clock) and compares with when the tail nodes last listed the user. Driven over the bus as
 * several tail nodes drive it, with a real push receiver; each "no push" has a control
 * (C, a member never online, pushed for the same publish).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startPushReceiver } from '../helpers/push-receiver.js';
import { member, newSite, pushedLengths, sleep, startNotify } from './harness.js';

describe('pushes and the moment a write was made', async () => {
  const receiver = await startPushReceiver();

  it('a user whose node says it left after the write was made is not pushed for it; a later write is pushed', async () => {
    const h = await startNotify({ receiver, pushIntervalMs: 100 });
    const site = newSite();
    const v = await member(h, receiver, site);
    const c = await member(h, receiver, site);
    // V is online on tail node b; the write is made on node a, whose publish tail held for a
    // second: it arrives after node b said V left.
    h.presence({ node: 'tail-b', ttlMs: 10_000, full: false, online: [v.user], offline: [] });
    await sleep(20);
    h.presence({ node: 'tail-b', ttlMs: 10_000, full: false, online: [], offline: [v.user] });
    h.publish(site, 'main', 2, 1000);
    await receiver.waitFor(c.sub.id, 1);
    await sleep(300);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [], 'V was online when the write was made');

    // Made after V left (ageMs 0, or absent as from an older tail): pushed.
    h.publish(site, 'main', 3, 0);
    await receiver.waitFor(v.sub.id, 1);
    h.publish(site, 'main', 4);
    await receiver.waitFor(v.sub.id, 2, 3000);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [3, 4]);
  });

  it('a user listed until its node expired counts as online until then', async () => {
    const h = await startNotify({ receiver, pushIntervalMs: 100 });
    const site = newSite();
    const v = await member(h, receiver, site);
    const c = await member(h, receiver, site);
    h.presence({ node: 'tail-dying', ttlMs: 300, full: true, online: [v.user], offline: [] });
    await sleep(450);
    // The node expired 150 ms ago; the write was made 250 ms ago, while it still listed V.
    h.publish(site, 'main', 1, 250);
    await receiver.waitFor(c.sub.id, 1);
    await sleep(250);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), []);
    h.publish(site, 'main', 2, 0);
    await receiver.waitFor(v.sub.id, 1);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [2]);
  });

  it('a push held for its window is dropped when the user came online, even briefly, before it was due', async () => {
    const h = await startNotify({ receiver, pushIntervalMs: 600 });
    const site = newSite();
    const v = await member(h, receiver, site);
    const c = await member(h, receiver, site);
    h.publish(site, 'main', 1);
    await receiver.waitFor(v.sub.id, 1);
    await receiver.waitFor(c.sub.id, 1);
    // Held for both windows; V comes and goes before they end.
    h.publish(site, 'main', 2);
    await sleep(50);
    h.presence({ node: 'tail-b', ttlMs: 10_000, full: false, online: [v.user], offline: [] });
    await sleep(50);
    h.presence({ node: 'tail-b', ttlMs: 10_000, full: false, online: [], offline: [v.user] });
    await receiver.waitFor(c.sub.id, 2, 3000);
    await sleep(200);
    assert.deepEqual(pushedLengths(receiver, c.sub.id), [1, 2]);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [1], 'V saw length 2 while online');

    // A write after V left is pushed (once V's window allows).
    h.publish(site, 'main', 3);
    await receiver.waitFor(v.sub.id, 2, 3000);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [1, 3]);
  });
});
