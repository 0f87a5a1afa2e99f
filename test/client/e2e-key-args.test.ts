/**
 * The key manager's entry points check their arguments as plain JavaScript may pass them:
 * a bad one is a DgError BAD_REQUEST naming it, before anything reaches the server; a
 * share to a user that does not exist is NOT_FOUND, and neither declares a grant.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { DgError } from '../../src/protocol/errors.js';
import { KeyManager, type KeyManagerOptions } from '../../src/client/keys/key-manager.js';
import type { ShareSpec } from '../../src/client/keys/site-key-flows.js';
import { startServer } from '../helpers/server.js';
import { closeAll, device, newEmail } from './e2e-world.js';

const badRequest = (what: RegExp) => (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && what.test(e.message);

describe('key manager arguments', () => {
  it('refuses malformed shares, and shares to unknown users, before declaring a grant', async () => {
    const srv = await startServer({ devIdp: true });
    const bobEmail = newEmail('bob');
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const bob = await device(srv, bobEmail, 'bob laptop');
    const { site } = await alice.keys.createSite('notes');
    const read: ShareSpec = { rights: ['read'] };
    // Plain-JS callers: the types are bypassed on purpose.
    const share = (to: unknown, ...spec: unknown[]) => alice.keys.share(site, to as { email: string }, (spec.length === 0 ? read : spec[0]) as ShareSpec);

    await assert.rejects(share(null), badRequest(/^to: /));
    await assert.rejects(share(undefined), badRequest(/^to: /));
    await assert.rejects(share('bob@example.com'), badRequest(/^to: /));
    await assert.rejects(share({}), badRequest(/^to: .*exactly one of email and user/));
    await assert.rejects(share({ email: bobEmail, user: bob.client.user }), badRequest(/^to: .*exactly one of email and user/));
    await assert.rejects(share({ email: 42 }), badRequest(/^to\.email: /));
    await assert.rejects(share({ email: 'not-an-email' }), badRequest(/^to\.email: /));
    await assert.rejects(share({ user: 'not a user id!' }), badRequest(/^to\.user: /));
    await assert.rejects(share({ user: undefined }), badRequest(/^to\.user: /));
    await assert.rejects(share({ email: bobEmail }, undefined), badRequest(/^spec: /));
    await assert.rejects(share({ email: bobEmail }, null), badRequest(/^spec: /));
    await assert.rejects(share({ email: bobEmail }, {}), badRequest(/^spec\.rights: /));
    await assert.rejects(share({ email: bobEmail }, { rights: 'read' }), badRequest(/^spec\.rights: /));
    await assert.rejects(share({ email: bobEmail }, { rights: [] }), badRequest(/^spec\.rights: /));
    await assert.rejects(share({ email: bobEmail }, { rights: ['bogus'] }), badRequest(/^spec\.rights: /));
    await assert.rejects(share({ email: bobEmail }, { rights: ['read'], logs: 'main' }), badRequest(/^spec\.logs: /));
    await assert.rejects(share({ email: bobEmail }, { rights: ['read'], exp: 'tomorrow' }), badRequest(/^spec\.exp: /));
    await assert.rejects(alice.keys.share(42 as unknown as string, { email: bobEmail }, read), badRequest(/^site: /));
    // A well-formed user id that names nobody.
    await assert.rejects(share({ user: 'AAAAAAAAAAAAAAAAAAAAAA' }), (e: unknown) => e instanceof DgError && e.code === 'NOT_FOUND');

    const grants = () => {
      const db = new BetterSqlite3(join(srv.dataDir, 'auth.db'), { readonly: true, fileMustExist: true });
      try {
        return db.prepare('SELECT subject FROM grants WHERE site = ?').pluck().all(site) as string[];
      } finally {
        db.close();
      }
    };
    assert.deepEqual(grants(), [], 'no grant was declared');

    // Well-formed shares still work; an email target with no device yet is declared all the same.
    const toBob = await share({ user: bob.client.user });
    assert.deepEqual(toBob.devices, [bob.client.device]);
    const nobodyYet = newEmail('carol');
    const toCarol = await share({ email: nobodyYet.toUpperCase() });
    assert.deepEqual(toCarol.devices, []);
    assert.deepEqual(new Set(grants()), new Set([`user:${bob.client.user}`, `email:${nobodyYet}`]));
    await closeAll(alice, bob);
  });

  it('refuses a missing storage and words that are not a string', async () => {
    const srv = await startServer({ devIdp: true });
    const alice = await device(srv, newEmail('alice'), 'alice laptop');
    const open = (opts: unknown) => KeyManager.open(alice.client, opts as KeyManagerOptions);
    await assert.rejects(open(undefined), badRequest(/^options: /));
    await assert.rejects(open(null), badRequest(/^options: /));
    await assert.rejects(open({}), badRequest(/^options\.storage: /));
    await assert.rejects(open({ storage: {} }), badRequest(/^options\.storage: /));
    await assert.rejects(open({ storage: alice.storage, localKeyStorage: 'x' }), badRequest(/^options\.localKeyStorage: /));
    await assert.rejects(alice.keys.importWords(123 as unknown as string), badRequest(/^words: /));
    await assert.rejects(alice.keys.importQrPayload({} as unknown as string), badRequest(/^payload: /));
    await closeAll(alice);
  });
});
