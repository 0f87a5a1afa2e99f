/**
 * The PeerHub's addressing, with the signal relay played by the test: a leader answers each
 * session of a device at the `peer` address of its signals, keeps one link per session, and
 * drops a session's link when the server says that address is gone (NOT_FOUND), so links
 * of sessions that came and went do not pile up while their device stays on the log.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DgError } from '../../src/client/index.js';
import type { LinkMessage } from '../../src/client/link-messages.js';
import { PeerHub } from '../../src/client/peer-link.js';

test('a leader replies to each session of a device at its peer address, and forgets gone ones', async () => {
  const sent: { to: string; data: unknown }[] = [];
  const live = new Set(['pAAAAAAAAAAAA', 'pBBBBBBBBBBBB']);
  const got: { from: string; msg: LinkMessage }[] = [];
  const hub = new PeerHub({
    signal: async (to, _kind, data) => {
      sent.push({ to, data });
      if (!live.has(to)) throw new DgError('NOT_FOUND', `no peer '${to}' on this log`);
    },
    onMessage: (from, msg, reply) => {
      got.push({ from, msg });
      reply({ t: 'stale', epoch: 9 });
    },
  });
  const device = 'E'.repeat(43);
  hub.handleSignal(device, 'data', { t: 'stale', epoch: 1 }, 'pAAAAAAAAAAAA');
  hub.handleSignal(device, 'data', { t: 'stale', epoch: 2 }, 'pBBBBBBBBBBBB');
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got.map((g) => g.from), [device, device], 'both from the device');
  assert.deepEqual(sent.map((s) => s.to), ['pAAAAAAAAAAAA', 'pBBBBBBBBBBBB'], 'each answered at its own address');

  // The first session is gone: the reply to it fails NOT_FOUND and its link goes.
  live.delete('pAAAAAAAAAAAA');
  hub.handleSignal(device, 'data', { t: 'stale', epoch: 3 }, 'pAAAAAAAAAAAA');
  await new Promise((r) => setTimeout(r, 10));
  assert.equal((hub as unknown as { links: Map<string, unknown> }).links.has('pAAAAAAAAAAAA'), false);
  assert.equal((hub as unknown as { links: Map<string, unknown> }).links.has('pBBBBBBBBBBBB'), true);

  // Without a peer address (an older server), the device id is the address, as before.
  hub.handleSignal(device, 'data', { t: 'stale', epoch: 4 }, undefined);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(sent.at(-1)?.to, device);
  hub.close();
});
