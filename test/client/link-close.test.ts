/**
 * A data channel closed on one side closes on the other: a follower whose Log closes and
 * opens again (a page reloaded) leaves the leader no link standing on a dead peer
 * connection. The leader cannot count on hearing that the device left: it comes back
 * within the while a leader keeps the links of a device that left (its socket may be
 * reconnecting), so only the channel's own close tells.
 *
 * Real server and SDK clients, werift for WebRTC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Log } from '../../src/client/index.js';
import { enc, makeClient, server, sharedSite, waitFor } from './harness.js';

function links(log: Log): Map<string, { dc: { readyState: string } | null }> {
  return (log as unknown as { hub: { links: Map<string, { dc: { readyState: string } | null }> } }).hub.links;
}

test("a follower's Log that closes takes its data channel with it, on the leader's side too", async () => {
  const srv = await server();
  const a = await makeClient(srv, { rtc: true });
  const b = await makeClient(srv, { rtc: true });
  const site = await sharedSite(a, [b]);
  const la = a.client.openLog(site, 'reopen', { channelTimeoutMs: 8000 });
  await la.opened;
  for (let i = 0; i < 3; i++) {
    const lb = b.client.openLog(site, 'reopen', { channelTimeoutMs: 8000 });
    await lb.opened;
    await lb.append([enc(`b${i}`)]);
    assert.equal(lb.leaderPath, 'channel');
    assert.equal(links(la).size, 1, 'the leader has a link with the follower');
    await lb.close();
    await waitFor('the leader drops the closed channel', () => links(la).size === 0, 5000);
  }
  await a.client.close();
  await b.client.close();
});
