/**
 * The `leader` event and `log.epoch` agree: a handler of the event reads the epoch the new
 * leader leads in, on every device, not the one before it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeClient, server, sharedSite, waitFor } from './harness.js';

test("a follower's leader event comes with log.epoch already at the new leader's epoch", async () => {
  const srv = await server();
  const cs = await Promise.all([0, 1, 2].map(() => makeClient(srv)));
  after(async () => {
    for (const c of cs) await c.client.close();
  });
  const site = await sharedSite(cs[0]!, cs.slice(1));
  const first = cs[0]!.client.openLog(site, 'epochs');
  await first.opened;
  assert.equal(first.role, 'leader');
  const rest = cs.slice(1).map((c) => c.client.openLog(site, 'epochs'));
  await Promise.all(rest.map((l) => l.opened));
  const before = first.epoch;
  assert.ok(rest.every((l) => l.epoch === before && l.role === 'follower'));

  const heard: { log: number; leader: string | null; epoch: number }[] = [];
  rest.forEach((l, i) => l.on('leader', (leader) => heard.push({ log: i, leader, epoch: l.epoch })));
  await first.close(); // leadership ends at once: another device takes it, at a new epoch
  await waitFor('a new leader on both', () => rest.some((l) => l.role === 'leader') && rest.every((l) => l.leader !== null && l.leader !== cs[0]!.client.device));
  const next = rest.find((l) => l.role === 'leader')!;
  assert.ok(next.epoch > before, 'a new epoch');
  const follower = rest.indexOf(rest.find((l) => l !== next)!);
  const told = heard.filter((h) => h.log === follower && h.leader !== null);
  assert.ok(told.length >= 1, 'the follower heard of the new leader');
  for (const h of told) assert.equal(h.epoch, next.epoch, `the follower's leader event read epoch ${h.epoch}, the leader leads in ${next.epoch}`);
});
