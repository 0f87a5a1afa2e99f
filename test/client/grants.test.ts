/**
 * Grants through the SDK against the real server: signed by the device key, declared,
 * joined, and attested automatically when a lease answers `needproof`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DgError, grantHash, readGrant } from '../../src/client/index.js';
import { enc, makeClient, record, server, waitFor } from './harness.js';

test('a lease that needs proof is attested with the grant the app supplied', async () => {
  const srv = await server();
  const owner = await makeClient(srv);
  const guest = await makeClient(srv);
  const stranger = await makeClient(srv);
  await owner.client.signup('owner');
  const { user: guestUser } = await guest.client.signup('guest');
  await stranger.client.signup('stranger');
  const { site } = await owner.client.createSite('shared');

  const grant = owner.client.signGrant({ sub: `user:${guestUser}`, site, logs: ['notes'], rights: ['read', 'write'] });
  assert.equal(readGrant(grant)?.iss, owner.client.device);
  assert.equal(await owner.client.declare(grant), grantHash(grant));

  // Without a grant: the lease answers needproof and the log fails with FORBIDDEN.
  const denied = stranger.client.openLog(site, 'notes');
  await assert.rejects(denied.opened, (e: DgError) => e.code === 'FORBIDDEN');
  assert.equal(denied.state, 'closed');

  const lo = owner.client.openLog(site, 'notes');
  const ro = record(lo);
  await lo.opened;
  // The guest never called /join: the SDK attests the grant when the lease asks for proof.
  guest.client.useGrant(site, grant);
  const lg = guest.client.openLog(site, 'notes');
  await lg.opened;
  assert.equal(lg.role, 'follower');
  const [i] = await lg.append([enc('from the guest')]);
  await waitFor('owner sees it', () => ro.seen.length === 1);
  assert.equal(ro.seen[0]!.index, i);
  assert.equal(ro.seen[0]!.origin?.device, guest.client.device);

  // The grant names one log: another log of the site stays closed to the guest.
  const other = guest.client.openLog(site, 'other');
  await assert.rejects(other.opened, (e: DgError) => e.code === 'FORBIDDEN');
  for (const c of [owner, guest, stranger]) await c.client.close();
});
