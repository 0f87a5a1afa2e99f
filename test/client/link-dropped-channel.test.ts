/**
 * A link the hub closed holds nothing more. A writer that keeps sending refused pieces over
 * its data channel has its link closed, but pieces it sent right after are still delivered
 * by the channel while it closes: they must not be held for a link that is gone (nothing
 * would ever drop them, and they would count against what every link of the log may hold
 * unfinished, so honest followers' large appends would be refused for good).
 *
 * Real server and SDK leader; the writer is a raw tail client with its own werift peer
 * connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RTCPeerConnection } from 'werift';
import { TailClient, type TailEventFrame } from '../helpers/tail-client.js';
import type { Log } from '../../src/client/index.js';
import { enc, makeClient, server, sharedSite, waitFor } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hubOf(log: Log): { links: Map<string, unknown>; pool: { used: number } } {
  return (log as unknown as { hub: { links: Map<string, unknown>; pool: { used: number } } }).hub;
}

test('pieces that come over a channel after its link was closed are not held', async () => {
  const srv = await server();
  const [a, w, b] = await Promise.all([makeClient(srv, { rtc: true }), makeClient(srv), makeClient(srv, { rtc: true })]);
  const site = await sharedSite(a!, [w!, b!]);
  const la = a!.client.openLog(site, 'main');
  await la.opened;
  assert.equal(la.role, 'leader');

  // The writer opens a data channel with the leader, as the SDK's followers do.
  const raw = await TailClient.connect(srv.wsUrl, await w!.client.session.accessToken());
  const { handle } = await raw.call<{ handle: string }>('lease', { site, log: 'main', lead: false });
  const pc = new RTCPeerConnection({ iceServers: [] });
  const dc = pc.createDataChannel('datagrove', { ordered: true });
  const opened = new Promise<void>((resolve) => dc.stateChanged.subscribe((s) => s === 'open' && resolve()));
  await pc.setLocalDescription(await pc.createOffer());
  await raw.call('signal', { handle, to: 'leader', kind: 'offer', data: { link: 'L1', type: 'offer', sdp: pc.localDescription!.sdp } });
  const answer = await raw.event((e: TailEventFrame) => e.ev === 'signal' && e.kind === 'answer');
  await pc.setRemoteDescription({ type: 'answer', sdp: (answer.data as { sdp: string }).sdp });
  await opened;
  await waitFor('the leader has the link', () => hubOf(la).links.size === 1);

  // 64 refused pieces (more parts than any message has) close the link; what follows at
  // once, the first pieces of 8 long messages, arrives while its channel closes.
  for (let i = 0; i < 64; i++) dc.send(JSON.stringify({ t: 'frag', id: `bad${i}`, i: 0, n: 100_000, d: '' }));
  for (let k = 0; k < 8; k++) dc.send(JSON.stringify({ t: 'frag', id: `held${k}`, i: 0, n: 100, d: 'x'.repeat(1000) }));
  await waitFor('the link is closed', () => hubOf(la).links.size === 0);
  await sleep(500);
  assert.equal(hubOf(la).pool.used, 0, 'nothing is held for the closed link');

  // An honest follower's large append (in pieces) still goes through.
  const lb = b!.client.openLog(site, 'main');
  await lb.opened;
  assert.deepEqual(await lb.append([new Uint8Array(100_000).fill(7), enc('small')]), [0, 1]);
  await pc.close();
  raw.close();
  for (const c of [a!, w!, b!]) await c.client.close();
});
