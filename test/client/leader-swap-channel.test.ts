/**
 * A device that led a log and now follows the device that followed it: the data channel
 * between them is made anew, the other way round. The new follower's offer is answered
 * over the signal relay while the link of the old channel still stands on both sides; the
 * answer and candidates of the new link go to the new link (by its id), so its appends
 * travel over a channel, not the relay. The link the new leader opened to the old one
 * (when it followed it) goes once it leads.
 *
 * Real server and SDK clients, werift for WebRTC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Log } from '../../src/client/index.js';
import { blockableSockets, enc, makeClient, server, sharedSite, waitFor } from './harness.js';

/** The addresses of the links `log`'s hub holds. */
function linkCount(log: Log): number {
  return (log as unknown as { hub: { links: Map<string, unknown> } }).hub.links.size;
}

test('after the leader and its follower swap roles, the new follower appends over a new data channel', async () => {
  const srv = await server();
  const net = blockableSockets();
  const a = await makeClient(srv, { rtc: true, socket: net.socket });
  const b = await makeClient(srv, { rtc: true });
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'swap', { channelTimeoutMs: 8000 });
  await la.opened;
  const lb = b.client.openLog(site, 'swap', { channelTimeoutMs: 8000 });
  await lb.opened;
  assert.equal(la.role, 'leader');
  assert.deepEqual(await lb.append([enc('b1')]), [0]);
  assert.equal(lb.leaderPath, 'channel');

  // a is cut off for longer than its grace: b leads; a comes back and follows b. The
  // channel they had stays open all along (it does not go through the server).
  net.blocked = true;
  a.cut();
  await waitFor('b leads', () => lb.role === 'leader' && lb.state === 'ready', 20_000);
  assert.equal((lb as unknown as { hub: { pathTo: (d: string) => unknown } }).hub.pathTo(a.client.device), null, 'b holds no link to the device it followed');
  net.blocked = false;
  await waitFor('a follows b', () => la.role === 'follower' && la.state === 'ready' && la.leader === b.client.device, 20_000);

  const t0 = Date.now();
  assert.deepEqual(await la.append([enc('a1')]), [1]);
  assert.equal(la.leaderPath, 'channel', 'the append went over a data channel');
  assert.ok(Date.now() - t0 < 6000, `took ${Date.now() - t0} ms: it waited out the channel timeout`);
  // The link of the old channel is gone on both sides: one link each, the new one.
  await waitFor('one link each', () => linkCount(la) === 1 && linkCount(lb) === 1, 5000);
  await a.client.close();
  await b.client.close();
});
