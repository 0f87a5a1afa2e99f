/**
 * A member refused the write right learns it from the auth service, and the SDK keeps
 * that answer a while (log-write-right.ts). Joining a grant that gives `write` changes
 * the answer: the next append on a log already open is not refused from the kept one.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { DgError } from '../../src/client/index.js';
import { enc, makeClient, record, server, waitFor } from './harness.js';

const forbidden = (e: unknown) => e instanceof DgError && e.code === 'FORBIDDEN';

test('after client.join of a grant with write, the next append of a refused member lands, without waiting for the kept answer to age', async () => {
  const srv = await server();
  const owner = await makeClient(srv);
  const member = await makeClient(srv);
  after(async () => {
    await member.client.close();
    await owner.client.close();
  });
  await owner.client.signup('owner');
  const { site } = await owner.client.createSite('join later');
  const { user } = await member.client.signup('member');
  const read = owner.client.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights: ['read'] });
  await owner.client.declare(read);
  await member.client.join(site, read);

  const lo = owner.client.openLog(site, 'notes');
  const seen = record(lo);
  await lo.opened;
  const lm = member.client.openLog(site, 'notes');
  await lm.opened;
  assert.equal(lm.role, 'follower');
  await assert.rejects(lm.append([enc('refused')]), forbidden);

  const write = owner.client.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights: ['read', 'write'] });
  await owner.client.declare(write);
  await member.client.join(site, write);
  const t0 = Date.now();
  const [index] = await lm.append([enc('allowed')]);
  assert.equal(index, 0);
  // The kept "no" lasts 5 s; the leader's refusals alone would fail the append after 3 s.
  assert.ok(Date.now() - t0 < 2500, `landed after ${Date.now() - t0} ms`);
  await waitFor('the owner sees it', () => seen.seen.length === 1);
  assert.deepEqual(seen.text(), ['0:allowed']);
});
