/**
 * Glare: two devices each open a link to the other at the same moment (each takes the
 * other for the leader for a while, as when leadership passes between them). Each side
 * then holds two links with the other, the one it opened and the one it answered: the
 * answer and candidates to each offer go to the link of that offer (by its id), so both
 * channels open and each message arrives once.
 *
 * Two PeerHubs with werift peer connections; the signal relay is played by the test, with
 * the `from` and `peer` the server would stamp.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RTCPeerConnection } from 'werift';
import type { LinkMessage } from '../../src/client/link-messages.js';
import { PeerHub } from '../../src/client/peer-link.js';
import type { RtcPeerConnectionConstructor } from '../../src/client/rtc-types.js';
import type { SignalKind } from '../../src/client/tail-types.js';
import { waitFor } from './harness.js';

interface Side {
  device: string;
  peer: string;
  hub: PeerHub;
  got: { from: string; msg: LinkMessage }[];
}

test('two hubs offering to each other at once both get a data channel', async () => {
  const sides: Side[] = [];
  const make = (device: string, peer: string): Side => {
    const got: Side['got'] = [];
    const hub = new PeerHub({
      RTCPeerConnection: RTCPeerConnection as unknown as RtcPeerConnectionConstructor,
      rtcConfig: { iceServers: [] },
      channelTimeoutMs: 10_000,
      signal: async (to: string, kind: SignalKind, data: unknown) => {
        const other = sides.find((s) => s.device === to || s.peer === to)!;
        setTimeout(() => other.hub.handleSignal(device, kind, structuredClone(data), peer), 1);
      },
      onMessage: (from, msg) => got.push({ from, msg }),
    });
    return { device, peer, hub, got };
  };
  const a = make('A'.repeat(43), 'pAAAAAAAAAAAA');
  const b = make('B'.repeat(43), 'pBBBBBBBBBBBB');
  sides.push(a, b);

  a.hub.sendTo(b.device, { t: 'stale', epoch: 1 });
  b.hub.sendTo(a.device, { t: 'stale', epoch: 2 });
  await waitFor('both channels open', () => a.hub.pathTo(b.device) === 'channel' && b.hub.pathTo(a.device) === 'channel', 8000);
  await waitFor('each message arrives', () => a.got.length === 1 && b.got.length === 1, 3000);
  assert.deepEqual(b.got, [{ from: a.device, msg: { t: 'stale', epoch: 1 } }]);
  assert.deepEqual(a.got, [{ from: b.device, msg: { t: 'stale', epoch: 2 } }]);
  a.hub.close();
  b.hub.close();
});
