import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sign } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { JoinReplyBody, LeaseReply, SiteReply } from '../../src/protocol/auth-schemas.js';
import { verifyToken, type LeaseClaims } from '../../src/protocol/token.js';
import { createSite, declareGrant, get, newDeviceKeys, post, signGrant, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

type ErrorBody = { error: { code: string; message: string } };
const nowSec = () => Math.floor(Date.now() / 1000);

describe('grants, join and lease', async () => {
  const { url, server } = await startServer();
  const owner = await signupDevice(url, { name: 'owner' });
  const site = await createSite(url, owner.access);

  const lease = (d: SignedUpDevice, log: string, s = site) => post<LeaseReply & ErrorBody>(url, '/lease', { site: s, log }, d.access);
  const declare = (d: SignedUpDevice, jws: string) => post<{ hash: string } & ErrorBody>(url, '/declare', { grant: jws }, d.access);
  const join = (d: SignedUpDevice, grant: string, s = site) => post<JoinReplyBody & ErrorBody>(url, '/join', { site: s, grant }, d.access);

  it('gives the owner every right: site view and leases on any log, with the shard', async () => {
    const r = await get<SiteReply>(url, `/sites/${site}`, owner.access);
    assert.equal(r.status, 200);
    assert.ok(Value.Check(SiteReply, r.body));
    assert.deepEqual(r.body, { site, owner: owner.user, rights: ['read', 'write', 'admin'], keyEpoch: 1, rotationRequired: false });
    const l = await lease(owner, 'any.log:1');
    assert.equal(l.status, 200, l.text);
    assert.ok(Value.Check(LeaseReply, l.body));
    assert.equal(l.body.shard.id, 'tail-1', 'the monolith has one shard');
    const v = verifyToken<LeaseClaims>(server.secrets.ring, l.body.token, 'lease');
    assert.ok(v.ok);
    assert.deepEqual([v.claims.sub, v.claims.dev, v.claims.site, v.claims.log, v.claims.rights], [owner.user, owner.device, site, 'any.log:1', ['read', 'write', 'admin']]);
    assert.equal(v.claims.exp - v.claims.iat, l.body.expiresIn);
  });

  it('refuses a lease without access (403) and on an unknown site (404)', async () => {
    const stranger = await signupDevice(url);
    const r = await lease(stranger, 'chat');
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'FORBIDDEN');
    assert.equal((await get<ErrorBody>(url, `/sites/${site}`, stranger.access)).status, 403);
    const unknown = await lease(owner, 'chat', 'no-such-site');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'NOT_FOUND');
  });

  it('follows a chain: owner root → delegated admin → attenuated grant to a device', async () => {
    const admin = await signupDevice(url, { name: 'admin' });
    const member = await signupDevice(url, { name: 'member' });
    const root = await declareGrant(url, owner, { sub: `user:${admin.user}`, site, logs: ['*'], rights: ['admin'] });
    const j1 = await join(admin, root.jws);
    assert.equal(j1.status, 200, j1.text);
    assert.deepEqual(j1.body, { site, logs: ['*'], rights: ['read', 'write', 'admin'], expiresAt: null });

    const exp = nowSec() + 3600;
    const child = signGrant(admin.privateKey, { iss: admin.device, sub: `device:${member.device}`, site, logs: ['chat'], rights: ['read'], exp, prf: root.hash });
    const d = await declare(admin, child.jws);
    assert.equal(d.status, 201, d.text);
    assert.equal(d.body.hash, child.hash);
    const j2 = await join(member, child.hash);
    assert.equal(j2.status, 200, j2.text);
    assert.ok(Value.Check(JoinReplyBody, j2.body));
    assert.deepEqual(j2.body, { site, logs: ['chat'], rights: ['read'], expiresAt: exp * 1000 });

    const l = await lease(member, 'chat');
    assert.equal(l.status, 200);
    const v = verifyToken<LeaseClaims>(server.secrets.ring, l.body.token, 'lease');
    assert.ok(v.ok);
    assert.deepEqual(v.claims.rights, ['read']);
    assert.equal((await lease(member, 'secret')).status, 403, 'the grant covers chat only');
    const view = await get<SiteReply>(url, `/sites/${site}`, member.access);
    assert.deepEqual(view.body.rights, ['read']);

    // The member cannot re-grant: its grant gives no admin.
    const third = await signupDevice(url);
    const regrant = signGrant(member.privateKey, { iss: member.device, sub: `user:${third.user}`, site, logs: ['chat'], rights: ['read'], exp, prf: child.hash });
    const r = await declare(member, regrant.jws);
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /admin/);
  });

  it('refuses grants wider than their proof (logs, rights, expiry)', async () => {
    const admin = await signupDevice(url);
    const exp = nowSec() + 1000;
    const proof = await declareGrant(url, owner, { sub: `user:${admin.user}`, site, logs: ['chat', 'docs'], rights: ['admin'], exp });
    const readOnly = await declareGrant(url, owner, { sub: `user:${admin.user}`, site, logs: ['*'], rights: ['read', 'write'] });
    const cases: [string, Parameters<typeof signGrant>[1], RegExp][] = [
      ['logs', { iss: admin.device, sub: 'user:x', site, logs: ['chat', 'secret'], rights: ['read'], exp, prf: proof.hash }, /logs wider/],
      ['all logs', { iss: admin.device, sub: 'user:x', site, logs: ['*'], rights: ['read'], exp, prf: proof.hash }, /logs wider/],
      ['no expiry', { iss: admin.device, sub: 'user:x', site, logs: ['chat'], rights: ['read'], prf: proof.hash }, /expiry/],
      ['later expiry', { iss: admin.device, sub: 'user:x', site, logs: ['chat'], rights: ['read'], exp: exp + 1, prf: proof.hash }, /expiry/],
      ['rights without admin', { iss: admin.device, sub: 'user:x', site, logs: ['chat'], rights: ['read'], prf: readOnly.hash }, /admin/],
    ];
    for (const [what, claims, message] of cases) {
      const r = await declare(admin, signGrant(admin.privateKey, claims).jws);
      assert.equal(r.status, 403, what);
      assert.equal(r.body.error.code, 'FORBIDDEN', what);
      assert.match(r.body.error.message, message, what);
    }
    const ok = await declare(admin, signGrant(admin.privateKey, { iss: admin.device, sub: 'user:x', site, logs: ['docs'], rights: ['write'], exp, prf: proof.hash }).jws);
    assert.equal(ok.status, 201, 'an attenuated grant passes');
  });

  it('refuses forged signatures, tampered payloads, non-owner roots and undeclared proofs', async () => {
    const mallory = await signupDevice(url);
    const forged = signGrant(newDeviceKeys().privateKey, { iss: owner.device, sub: `user:${mallory.user}`, site, logs: ['*'], rights: ['admin'] });
    const r1 = await declare(mallory, forged.jws);
    assert.equal(r1.status, 400);
    assert.match(r1.body.error.message, /signature/);
    assert.equal((await join(mallory, forged.jws)).status, 400);

    const honest = signGrant(owner.privateKey, { iss: owner.device, sub: `user:${mallory.user}`, site, logs: ['chat'], rights: ['read'] });
    const [h, , s] = honest.jws.split('.');
    const widened = Buffer.from(JSON.stringify({ iss: owner.device, sub: `user:${mallory.user}`, site, logs: ['*'], rights: ['admin'], iat: nowSec() })).toString('base64url');
    assert.equal((await declare(mallory, `${h}.${widened}.${s}`)).status, 400);

    const selfRoot = signGrant(mallory.privateKey, { iss: mallory.device, sub: `user:${mallory.user}`, site, logs: ['*'], rights: ['admin'] });
    const r3 = await declare(mallory, selfRoot.jws);
    assert.equal(r3.status, 403);
    assert.match(r3.body.error.message, /own the site/);

    const noProof = signGrant(mallory.privateKey, { iss: mallory.device, sub: `user:${mallory.user}`, site, logs: ['*'], rights: ['read'], prf: 'A'.repeat(43) });
    const unknownProof = await declare(mallory, noProof.jws);
    assert.equal(unknownProof.status, 404, 'a proof that is not a declared grant is unknown');
    assert.match(unknownProof.body.error.message, /proof is not a declared grant/);
    assert.equal((await join(mallory, noProof.jws)).status, 404);
    const wrongHeader = signGrant(owner.privateKey, { iss: owner.device, sub: `user:${mallory.user}`, site, logs: ['*'], rights: ['read'] }, { alg: 'none', typ: 'dg-grant+jwt' });
    assert.equal((await declare(mallory, wrongHeader.jws)).status, 400);
    const unknownSite = signGrant(owner.privateKey, { iss: owner.device, sub: `user:${mallory.user}`, site: 'nope', logs: ['*'], rights: ['read'] });
    assert.equal((await declare(owner, unknownSite.jws)).status, 404);
    assert.equal((await lease(mallory, 'chat')).status, 403, 'nothing above gave access');
  });

  it('refuses a signed grant whose payload or header gives a key twice, which readers would take differently', async () => {
    const member = await signupDevice(url);
    const signed = (header: string, payload: string) => {
      const input = `${Buffer.from(header).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
      return `${input}.${sign(null, Buffer.from(input, 'ascii'), owner.privateKey).toString('base64url')}`;
    };
    const header = JSON.stringify({ alg: 'EdDSA', typ: 'dg-grant+jwt' });
    const body = `"iss":${JSON.stringify(owner.device)},"sub":"user:${member.user}","site":"${site}","logs":["*"],"iat":${nowSec()}`;
    // The last "rights" wins in JavaScript, the first in some other readers.
    const twice = signed(header, `{${body},"rights":["read"],"rights":["admin"]}`);
    const r = await declare(owner, twice);
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /grant\.payload: the key "rights" is given twice/);
    assert.equal((await join(member, twice)).status, 400);
    // The same key spelled with an escape is the same key.
    const escaped = signed(header, `{${body},"rights":["read"],"\\u0072ights":["admin"]}`);
    assert.equal((await declare(owner, escaped)).status, 400);
    const headerTwice = signed('{"alg":"EdDSA","typ":"dg-grant+jwt","alg":"EdDSA"}', `{${body},"rights":["read"]}`);
    const rh = await declare(owner, headerTwice);
    assert.equal(rh.status, 400);
    assert.match(rh.body.error.message, /grant\.header: the key "alg" is given twice/);
    // Written once, the same grant is fine.
    assert.equal((await declare(owner, signed(header, `{${body},"rights":["read"]}`))).status, 201);
  });

  it('refuses a join by a caller the grant does not name, and a join for another site', async () => {
    const named = await signupDevice(url);
    const other = await signupDevice(url);
    const g = await declareGrant(url, owner, { sub: `user:${named.user}`, site, logs: ['*'], rights: ['read'] });
    const r = await join(other, g.hash);
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /does not name the caller/);
    const site2 = await createSite(url, owner.access);
    assert.equal((await join(named, g.hash, site2)).status, 400);
    const noSite = await join(named, g.hash, 'A'.repeat(22));
    assert.equal(noSite.status, 404, 'an unknown site is NOT_FOUND before the grant is considered');
    assert.match(noSite.body.error.message, /no such site/);
    assert.equal((await join(named, `${'B'.repeat(42)}A`)).status, 404, 'an undeclared hash');
    assert.equal((await join(named, g.hash)).status, 200);
  });

  it('refuses chains deeper than 8', async () => {
    const users: SignedUpDevice[] = [];
    for (let i = 0; i < 9; i++) users.push(await signupDevice(url));
    let prev = await declareGrant(url, owner, { sub: `user:${users[0]!.user}`, site, logs: ['*'], rights: ['admin'] });
    for (let i = 1; i < 8; i++) {
      prev = await declareGrant(url, users[i - 1]!, { sub: `user:${users[i]!.user}`, site, logs: ['*'], rights: ['admin'], prf: prev.hash });
    }
    // 8 grants deep so far: the 8th user holds a valid chain.
    assert.equal((await join(users[7]!, prev.hash)).status, 200);
    const ninth = signGrant(users[7]!.privateKey, { iss: users[7]!.device, sub: `user:${users[8]!.user}`, site, logs: ['*'], rights: ['read'], prf: prev.hash });
    const r = await declare(users[7]!, ninth.jws);
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /deeper than 8/);
  });

  it('lets an admin report a key rotation at exactly the next epoch', async () => {
    const s = await createSite(url, owner.access);
    const reader = await signupDevice(url);
    const g = await declareGrant(url, owner, { sub: `user:${reader.user}`, site: s, logs: ['*'], rights: ['read'] });
    assert.equal((await join(reader, g.hash, s)).status, 200);
    assert.equal((await post(url, `/sites/${s}/rotated`, { keyEpoch: 2 }, reader.access)).status, 403);
    const wrong = await post<ErrorBody>(url, `/sites/${s}/rotated`, { keyEpoch: 3 }, owner.access);
    assert.equal(wrong.status, 409);
    assert.equal(wrong.body.error.code, 'CONFLICT');
    const ok = await post<SiteReply>(url, `/sites/${s}/rotated`, { keyEpoch: 2 }, owner.access);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.keyEpoch, 2);
    assert.equal(ok.body.rotationRequired, false);
    assert.equal((await get<SiteReply>(url, `/sites/${s}`, reader.access)).body.keyEpoch, 2);
  });

  it('publishes the server keys and the shard map', async () => {
    const keys = await get<{ keys: { kid: string; publicKey: string; status: string }[] }>(url, '/server-keys');
    assert.equal(keys.status, 200);
    assert.deepEqual(keys.body.keys, server.secrets.attestation.map((k) => ({ kid: k.kid, publicKey: k.publicKey, status: k.status })));
    const shards = await get<{ version: number; shards: { id: string; url: string }[] }>(url, '/shards');
    assert.equal(shards.status, 200);
    assert.equal(shards.body.version, 1);
    assert.deepEqual(shards.body.shards.map((s) => s.id), ['tail-1']);
  });
});
