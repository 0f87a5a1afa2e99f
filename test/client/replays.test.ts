/**
 * A replayed entry (an old entry appended again, by the server or by a member who copied
 * its bytes) is refused by every SDK reader: it keeps its index, but comes with a CONFLICT
 * error and no payload, even though its bytes are genuine and would open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TailClient } from '../helpers/tail-client.js';
import { ReplayGuard } from '../../src/client/log-replays.js';
import { enc, makeClient, record, server, sharedSite, waitFor } from './harness.js';

test('readers refuse an entry that repeats a writer stream seq', async () => {
  const srv = await server();
  const a = await makeClient(srv);
  const b = await makeClient(srv);
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'chat');
  await la.opened;
  await la.append([enc('one'), enc('two')]);
  await la.close(); // releases leadership

  // Member b, with a raw client, leads and appends a copy of entry 0 at index 2.
  const raw = await TailClient.connect(srv.wsUrl, await b.client.session.accessToken());
  const l = await raw.call<{ handle: string; role: string; length: number }>('lease', { site, log: 'chat' });
  assert.equal(l.role, 'leader');
  const read = await raw.call<{ entries: string[] }>('read', { handle: l.handle, from: 0 });
  assert.equal(read.entries.length, 2);
  await raw.call('write', { handle: l.handle, at: 2, entries: [read.entries[0]] });
  raw.close();

  const reader = b.client.openLog(site, 'chat', { lead: false });
  const seen = record(reader);
  await reader.opened;
  await waitFor('three entries', () => seen.seen.length === 3);
  assert.deepEqual(seen.text().slice(0, 2), ['0:one', '1:two']);
  const replay = seen.seen[2]!;
  assert.equal(replay.index, 2);
  assert.equal(replay.payload.length, 0);
  assert.equal(replay.error?.code, 'CONFLICT');
  assert.equal(replay.origin?.device, a.client.device, 'the replay still says whose entry it copied');
  await reader.close();
  for (const c of [a, b]) await c.client.close();
});

test('the replay guard remembers the highest seq per stream, and forgets the oldest streams first', () => {
  const g = new ReplayGuard(2);
  const o = (stream: string, seq: number) => ({ device: 'd', stream, seq });
  assert.equal(g.repeats(o('s1', 1)), false);
  assert.equal(g.repeats(o('s1', 3)), false, 'a gap is not a replay');
  assert.equal(g.repeats(o('s1', 2)), true);
  assert.equal(g.repeats(o('s1', 3)), true);
  assert.equal(g.repeats(o('s2', 1)), false);
  assert.equal(g.repeats(o('s3', 1)), false);
  assert.equal(g.repeats(o('s1', 1)), false, 's1 was the least recently used: forgotten');
  assert.equal(g.repeats(o('s3', 1)), true);
});
