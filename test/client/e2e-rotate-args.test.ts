/**
 * The site arguments of `rotateSite` and `rotateSites` as plain JavaScript may pass them:
 * BAD_REQUEST naming the argument, before anything is asked of the server. A string given
 * for the list of sites is not taken character by character.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DgError } from '../../src/client/index.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail } from './e2e-world.js';

const badRequest = (re: RegExp) => (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && re.test(e.message);

describe('rotation arguments', () => {
  it('refuses what is not a site id, or not a list of them', async () => {
    const srv = await startServer({ devIdp: true, leaseGraceMs: 300 });
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const { site } = await alice.keys.createSite('notes');
    const keys = alice.keys as unknown as { rotateSite(s: unknown): Promise<unknown>; rotateSites(s: unknown): Promise<unknown> };
    await assert.rejects(keys.rotateSite(42), badRequest(/^site: /));
    await assert.rejects(keys.rotateSite(undefined), badRequest(/^site: /));
    await assert.rejects(keys.rotateSites(null), badRequest(/^sites: /));
    await assert.rejects(keys.rotateSites(site), badRequest(/^sites: /));
    await assert.rejects(keys.rotateSites([site, 7]), badRequest(/^sites: /));
    assert.deepEqual(await alice.keys.rotateSites([site]), { rotated: [], left: [site] }, 'a site that requires no rotation is left');
    await closeAll(alice);
  });
});
