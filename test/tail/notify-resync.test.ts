/**
 * What a tail node sends when a notify process says hello (dg.notify.hello): its presence,
 * with who left and when, then the last publish of each log it remembers, within its bounds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { Bus, BusHandler, Subscription } from '../../src/bus/bus.js';
import { SUBJECTS, type NotifyPublish, type PresenceMessage } from '../../src/protocol/bus-messages.js';
import { NotifyPublisher } from '../../src/tail/notify-publish.js';
import { Presence } from '../../src/tail/presence.js';

const log = pino({ level: 'silent' });

/** A bus that records what is published, in order. */
function recordingBus(): Bus & { sent: { subject: string; message: unknown }[] } {
  const sent: { subject: string; message: unknown }[] = [];
  return {
    sent,
    publish(subject, message) {
      sent.push({ subject, message });
    },
    subscribe(_subject: string, _handler: BusHandler): Subscription {
      return { unsubscribe() {} };
    },
    request: () => Promise.reject(new Error('no requests here')),
    healthy: () => true,
    close: () => Promise.resolve(),
  };
}

const publishes = (bus: ReturnType<typeof recordingBus>): NotifyPublish[] =>
  bus.sent.filter((m) => m.subject === SUBJECTS.notifyPublish).map((m) => m.message as NotifyPublish);

describe('tail: resync for a notify process that said hello', () => {
  it('republishes the last publish of each log, with the age of its newest write', async () => {
    const bus = recordingBus();
    const p = new NotifyPublisher(bus, 10_000, log, { maxLogs: 10, keepMs: 60_000, batch: 100, batchGapMs: 1 });
    const t0 = performance.now();
    p.committed('s1/a', 's1', 'a', 1, 'u', t0 - 500);
    p.committed('s1/a', 's1', 'a', 3, 'u', t0 - 100); // held for the interval
    p.committed('s1/b', 's1', 'b', 2, 'u', t0);
    bus.sent.length = 0;
    p.republish();
    const again = publishes(bus);
    assert.deepEqual(again.map(({ site, log: l, length }) => ({ site, log: l, length })), [
      { site: 's1', log: 'a', length: 1 },
      { site: 's1', log: 'b', length: 2 },
    ], 'what was published, not what is held (that goes out when its interval ends)');
    assert.ok((again[0]?.ageMs ?? 0) >= 500, 'aged from the write, not from the republish');
    p.stop();
  });

  it('remembers at most maxLogs logs and forgets a publish keepMs after its write', async () => {
    const bus = recordingBus();
    const p = new NotifyPublisher(bus, 1, log, { maxLogs: 3, keepMs: 1000, batch: 100, batchGapMs: 1 });
    const now = performance.now();
    p.committed('old', 's', 'old', 1, undefined, now - 2000);
    for (const l of ['a', 'b', 'c', 'd']) p.committed(l, 's', l, 1, undefined, now);
    assert.equal(p.remembered, 3);
    bus.sent.length = 0;
    p.republish();
    assert.deepEqual(publishes(bus).map((m) => m.log), ['b', 'c', 'd']);
    p.stop();
  });

  it('republishes in batches, and a new hello starts over', async () => {
    const bus = recordingBus();
    const p = new NotifyPublisher(bus, 1, log, { maxLogs: 100, keepMs: 60_000, batch: 2, batchGapMs: 20 });
    for (const l of ['a', 'b', 'c', 'd', 'e']) p.committed(l, 's', l, 1, undefined, performance.now());
    bus.sent.length = 0;
    p.republish();
    assert.equal(publishes(bus).length, 2, 'one batch at once');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(publishes(bus).map((m) => m.log), ['a', 'b', 'c', 'd', 'e']);
    p.stop();
  });

  it('answers with the full snapshot first, then who left this node and how long ago', () => {
    const bus = recordingBus();
    const presence = new Presence(bus, 'n1', 30_000, log);
    presence.snapshot();
    assert.equal(bus.sent.length, 0, 'nothing before start');
    presence.start();
    presence.online('u1');
    presence.online('u2');
    presence.offline('u1');
    bus.sent.length = 0;
    presence.snapshot();
    const msgs = bus.sent.map((m) => m.message as PresenceMessage);
    assert.equal(msgs.length, 2);
    assert.deepEqual({ ...msgs[0] }, { node: 'n1', ttlMs: 30_000, full: true, online: ['u2'], offline: [] });
    assert.equal(msgs[1]?.full, false);
    assert.deepEqual(msgs[1]?.left?.map((x) => x.user), ['u1']);
    assert.ok((msgs[1]?.left?.[0]?.agoMs ?? -1) >= 0);
    presence.stop();
  });
});
