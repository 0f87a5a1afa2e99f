/**
 * Several sessions of one device on one log (two tabs, two processes sharing the device's
 * keys): one leads, the others follow and append through it, each getting its own answers
 * (the server stamps each signal with the sender handle's `peer` address, and the leader
 * replies to that address, not to the device, which would reach only one of them). Over
 * the relay and over WebRTC; and when the leading session goes, another session of the
 * same device takes over with nothing lost or doubled.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryKeyStorage, type Log } from '../../src/client/index.js';
import { assertExactlyOnce, enc, makeClient, record, server, waitFor } from './harness.js';

for (const rtc of [false, true]) {
  test(`three sessions of one device share a log: followers append through the leader (${rtc ? 'WebRTC' : 'relay'})`, async () => {
    const srv = await server();
    const storage = new MemoryKeyStorage();
    const first = await makeClient(srv, { rtc, storage });
    await first.client.signup('laptop');
    const { site } = await first.client.createSite('notes');
    const tabs = [first, await makeClient(srv, { rtc, storage }), await makeClient(srv, { rtc, storage })];
    assert.ok(tabs.every((t) => t.client.device === first.client.device), 'one device');

    const logs: Log[] = [];
    for (const t of tabs) {
      const l = t.client.openLog(site, 'notes', { channelTimeoutMs: 15_000 });
      await l.opened;
      logs.push(l);
    }
    const recs = logs.map(record);
    assert.deepEqual(logs.map((l) => l.role), ['leader', 'follower', 'follower']);
    // The server lists the device's other sessions as peers; the SDK's peers are other devices.
    assert.deepEqual(logs.map((l) => l.peers), [[], [], []], 'another session of this device is not a peer');

    const acked = new Map<string, number>();
    const appendAll = async (round: string, which: typeof logs) =>
      Promise.all(
        which.flatMap((l, k) =>
          Array.from({ length: 10 }, async (_, i) => {
            const payload = `${round}-${k}-${i}`;
            const [index] = await l.append([enc(payload)]);
            acked.set(payload, index!);
          }),
        ),
      );
    await appendAll('r1', logs);
    await waitFor('every session has all 30', () => recs.every((r) => r.seen.length === 30));
    assertExactlyOnce(acked, recs);

    // The leading session goes: another session of the same device takes over, and the
    // remaining follower (the same device again) appends through the new leader.
    await logs[0]!.close();
    await waitFor('a new leader among the others', () => logs.slice(1).some((l) => l.role === 'leader'));
    await appendAll('r2', logs.slice(1));
    await waitFor('both have all 50', () => recs.slice(1).every((r) => r.seen.length === 50));
    assertExactlyOnce(acked, recs.slice(1));
    for (const t of tabs) await t.client.close();
  });
}
