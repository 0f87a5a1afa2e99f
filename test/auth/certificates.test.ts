/**
 * The key directory over HTTP (docs/protocol.md "Additions: user keys, device certificates
 * and site members"): user key versions (first writer wins, each signed by the one before),
 * device certificates (checked before they are stored), their lookup by user and by email,
 * rotationRequired once a certified device is revoked, and the member list of a site.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { CertificatesReply, MembersReply, userKeyStatement } from '../../src/protocol/key-schemas.js';
import { createSite, declareGrant, get, loginDevice, newDeviceKeys, oidcLogin, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { addDevice, fillUserKeys } from './db.js';

type Err = { error: { code: string; message: string } };

interface UserKey {
  publicKey: string;
  privateKey: KeyObject;
}

function newUserKey(): UserKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: String(publicKey.export({ format: 'jwk' }).x), privateKey };
}

const sig = (k: KeyObject, text: string) => sign(null, Buffer.from(text, 'utf8'), k).toString('base64url');
const b64json = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');

function certificate(k: UserKey, claims: Record<string, unknown>, header: Record<string, unknown> = { alg: 'EdDSA', typ: 'dg-device+jwt' }): string {
  const input = `${b64json(header)}.${b64json({ iat: Math.floor(Date.now() / 1000), ...claims })}`;
  return `${input}.${sign(null, Buffer.from(input, 'ascii'), k.privateKey).toString('base64url')}`;
}

describe('user keys, device certificates and site members', async () => {
  const { url, dataDir } = await startServer({ devIdp: true });

  const setKey = (d: SignedUpDevice, k: UserKey, version: number, prev?: UserKey, over: Record<string, unknown> = {}) => {
    const statement = userKeyStatement(d.user, version, k.publicKey);
    return post<{ user: string; version: number; publicKey: string } & Err>(
      url,
      '/user-key',
      { publicKey: k.publicKey, version, sig: sig(k.privateKey, statement), ...(prev === undefined ? {} : { prevSig: sig(prev.privateKey, statement) }), ...over },
      d.access,
    );
  };
  const certify = (d: SignedUpDevice, c: string) => post<{ device: string; keyVersion: number } & Err>(url, '/certificates', { certificate: c }, d.access);
  const lookup = async (d: SignedUpDevice, query: string) => {
    const r = await get<CertificatesReply & Err>(url, `/certificates?${query}`, d.access);
    if (r.status === 200) assert.ok(Value.Check(CertificatesReply, r.body), r.text);
    return r;
  };
  async function secondDevice(of: SignedUpDevice): Promise<SignedUpDevice> {
    const keys = addDevice(dataDir, of.user, 'second');
    const r = await loginDevice(url, keys);
    return { ...keys, user: r.body.user, access: r.body.access, refresh: r.body.refresh, expiresIn: r.body.expiresIn };
  }

  it('sets a user key once (first writer wins) and rotates it only with the previous key’s signature', async () => {
    const d = await signupDevice(url);
    const k1 = newUserKey();
    const first = await setKey(d, k1, 1);
    assert.equal(first.status, 201, first.text);
    assert.deepEqual(first.body, { user: d.user, version: 1, publicKey: k1.publicKey });
    assert.equal((await setKey(d, k1, 1)).status, 200, 'a retry of the same write succeeds');
    const other = await setKey(d, newUserKey(), 1);
    assert.deepEqual([other.status, other.body.error.code], [409, 'CONFLICT'], 'first writer wins');

    const k2 = newUserKey();
    const noPrev = await setKey(d, k2, 2);
    assert.deepEqual([noPrev.status, noPrev.body.error.message], [400, 'prevSig: required from version 2 on']);
    const wrongPrev = await setKey(d, k2, 2, newUserKey());
    assert.deepEqual([wrongPrev.status, wrongPrev.body.error.message], [400, 'prevSig: does not verify with the previous user key']);
    const badSig = await setKey(d, k2, 2, k1, { sig: sig(k1.privateKey, 'something else') });
    assert.equal(badSig.status, 400, 'the new key must sign too');
    assert.equal((await setKey(d, k2, 3, k1)).status, 409, 'no holes');
    assert.equal((await setKey(d, k2, 2, k1)).status, 201);
    assert.equal((await post(url, '/user-key', { publicKey: k2.publicKey, version: 3, sig: 'x' }, d.access)).status, 400);
    assert.equal((await post(url, '/user-key', { publicKey: k2.publicKey, version: 3, sig: 'x'.repeat(86) })).status, 401, 'Bearer');

    const r = await lookup(d, `user=${d.user}`);
    assert.deepEqual(r.body.userKeys.map((k) => [k.version, k.publicKey, k.prevSig === null]), [[1, k1.publicKey, true], [2, k2.publicKey, false]]);
  });

  it('keeps at most 64 versions of a user key: the 65th is refused with TOO_LARGE', async () => {
    const d = await signupDevice(url);
    fillUserKeys(dataDir, d.user, 64);
    const over = await setKey(d, newUserKey(), 65, newUserKey());
    assert.deepEqual([over.status, over.body.error.code], [413, 'TOO_LARGE'], over.text);
  });

  it('stores only certificates of the caller’s live devices, signed by the newest user key over the right box key', async () => {
    const d = await signupDevice(url);
    const stranger = await signupDevice(url);
    const k1 = newUserKey();
    const claims = (over: Record<string, unknown> = {}) => ({ sub: d.device, box: d.boxKey, user: d.user, ukv: 1, ...over });
    const early = await certify(d, certificate(k1, claims()));
    assert.deepEqual([early.status, early.body.error.message], [400, 'certificate.ukv: no such user key version']);
    assert.equal((await setKey(d, k1, 1)).status, 201);

    const cases: [string, string, number, string][] = [
      ['not a JWS', 'abc', 400, 'BAD_REQUEST'],
      ['wrong typ', certificate(k1, claims(), { alg: 'EdDSA', typ: 'dg-grant+jwt' }), 400, 'BAD_REQUEST'],
      ['missing box', certificate(k1, { sub: d.device, user: d.user, ukv: 1 }), 400, 'BAD_REQUEST'],
      ['another user', certificate(k1, claims({ user: stranger.user })), 403, 'FORBIDDEN'],
      ["another user's device", certificate(k1, claims({ sub: stranger.device, box: stranger.boxKey })), 403, 'FORBIDDEN'],
      ['unknown device', certificate(k1, claims({ sub: randomBytes(32).toString('base64url') })), 404, 'NOT_FOUND'],
      ['wrong box key', certificate(k1, claims({ box: randomBytes(32).toString('base64url') })), 400, 'BAD_REQUEST'],
      ['signed by another key', certificate(newUserKey(), claims()), 400, 'BAD_REQUEST'],
    ];
    for (const [what, c, status, code] of cases) {
      const r = await certify(d, c);
      assert.deepEqual([r.status, r.body.error?.code], [status, code], what);
    }
    const good = certificate(k1, claims());
    const ok = await certify(d, good);
    assert.equal(ok.status, 201, ok.text);
    assert.deepEqual(ok.body, { device: d.device, keyVersion: 1 });

    // A second device certified by the first (any device of the user may post it).
    const d2 = await secondDevice(d);
    assert.equal((await certify(d, certificate(k1, { sub: d2.device, box: d2.boxKey, user: d.user, ukv: 1 }))).status, 201);
    let r = await lookup(stranger, `user=${d.user}`);
    assert.equal(r.status, 200, 'any signed-in caller may look a user up');
    assert.deepEqual(r.body.certificates.map((c) => [c.device, c.boxKey, c.keyVersion]), [[d.device, d.boxKey, 1], [d2.device, d2.boxKey, 1]]);
    assert.equal(r.body.certificates[0]?.certificate, good);
    assert.equal(r.body.rotationRequired, false);

    // Revoking a device that held the newest user key: it leaves the list, rotation is required.
    assert.equal((await post(url, '/revoke', { device: d2.device }, d.access)).status, 200);
    r = await lookup(d, `user=${d.user}`);
    assert.deepEqual(r.body.certificates.map((c) => c.device), [d.device]);
    assert.equal(r.body.rotationRequired, true);
    const k2 = newUserKey();
    assert.equal((await setKey(d, k2, 2, k1)).status, 201);
    const stale = await certify(d, certificate(k1, claims()));
    assert.deepEqual([stale.status, stale.body.error.code], [409, 'CONFLICT'], 'certificates under an older version are refused');
    assert.equal((await certify(d, certificate(k2, claims({ ukv: 2 })))).status, 201);
    r = await lookup(d, `user=${d.user}`);
    assert.deepEqual([r.body.rotationRequired, r.body.certificates[0]?.keyVersion], [false, 2]);
  });

  it('looks users up by email (the attestation carries the box key), and refuses bad queries', async () => {
    const email = `k-${randomBytes(4).toString('hex')}@example.com`;
    const keys = newDeviceKeys();
    const o = await oidcLogin(url, keys, email);
    const attested = JSON.parse(Buffer.from(o.identity.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub: string; box?: string };
    assert.deepEqual([attested.sub, attested.box], [keys.device, keys.boxKey], 'the identity attestation carries the box key');
    const d: SignedUpDevice = { ...keys, user: o.user, access: o.access, refresh: o.refresh, expiresIn: o.expiresIn };
    const k = newUserKey();
    assert.equal((await setKey(d, k, 1)).status, 201);
    const asker = await signupDevice(url);
    const r = await lookup(asker, `email=${encodeURIComponent(email.toUpperCase())}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.user, r.body.userKeys[0]?.publicKey, r.body.certificates], [o.user, k.publicKey, []]);
    const padded = await lookup(asker, `email=${encodeURIComponent(` ${email}\t`)}`);
    assert.equal(padded.status, 200, `emails compare trimmed: ${padded.text}`);
    assert.equal(padded.body.user, o.user);
    assert.equal((await lookup(asker, `email=nobody-${randomBytes(3).toString('hex')}@example.com`)).status, 404);
    assert.equal((await lookup(asker, `user=${randomBytes(8).toString('base64url')}`)).status, 404);
    assert.equal((await lookup(asker, '')).status, 400, 'neither');
    assert.equal((await lookup(asker, `user=${o.user}&email=${encodeURIComponent(email)}`)).status, 400, 'both');
    assert.equal((await get(url, `/certificates?user=${o.user}`)).status, 401, 'Bearer');
  });

  it('lists the members of a site: owner, joined users, live grant subjects and emails; never a revoked grant’s', async () => {
    const owner = await signupDevice(url);
    const bob = await signupDevice(url);
    const carol = await signupDevice(url);
    const dave = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const toBob = await declareGrant(url, owner, { sub: `user:${bob.user}`, site, logs: ['*'], rights: ['read', 'write'] });
    assert.equal((await post(url, '/join', { site, grant: toBob.jws }, bob.access)).status, 200);
    await declareGrant(url, owner, { sub: `device:${carol.device}`, site, logs: ['notes'], rights: ['read'] });
    await declareGrant(url, owner, { sub: 'email:Erin@Example.com', site, logs: ['*'], rights: ['admin'] });
    const toDave = await declareGrant(url, owner, { sub: `user:${dave.user}`, site, logs: ['*'], rights: ['read'] });
    assert.equal((await post(url, '/revoke', { grant: toDave.hash }, owner.access)).status, 200);

    const r = await get<MembersReply & Err>(url, `/sites/${site}/members`, bob.access);
    assert.equal(r.status, 200, r.text);
    assert.ok(Value.Check(MembersReply, r.body), r.text);
    const members = new Map(r.body.members.map((m) => [m.user, m.rights]));
    assert.deepEqual(members.get(owner.user), ['read', 'write', 'admin']);
    assert.deepEqual(members.get(bob.user), ['read', 'write']);
    assert.deepEqual(members.get(carol.user), ['read']);
    assert.equal(members.has(dave.user), false, 'a revoked grant adds nobody');
    assert.equal(members.size, 3);
    assert.deepEqual(r.body.emails, [{ email: 'erin@example.com', rights: ['read', 'write', 'admin'] }]);
    assert.deepEqual([r.body.site, r.body.owner, r.body.more], [site, owner.user, false]);

    // Revoking Carol's device kills the device grant's subject.
    assert.equal((await post(url, '/revoke', { device: carol.device }, carol.access)).status, 200);
    const after = await get<MembersReply>(url, `/sites/${site}/members`, owner.access);
    assert.equal(after.body.members.some((m) => m.user === carol.user), false);

    assert.equal((await get<Err>(url, `/sites/${site}/members`, dave.access)).status, 403, 'not a member');
    assert.equal((await get<Err>(url, '/sites/nosuchsite/members', owner.access)).status, 404);
  });
});
