/**
 * The signed-in sessions of a user over HTTP: POST /logout ends the caller's own, GET
 * /sessions lists the live ones, DELETE /sessions/:id ends one of them; each ending closes
 * the session's live tail connections (4403) and leaves the user's other sessions alone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { SessionsReply } from '../../src/protocol/auth-schemas.js';
import { call, get, loginDevice, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';
import { addDevice } from './db.js';

type Err = { error: { code: string; message: string } };

/** The refresh family an access token belongs to (its `fam` claim). */
const familyOf = (access: string): string => (JSON.parse(Buffer.from(access.split('.')[1] ?? '', 'base64url').toString('utf8')) as { fam: string }).fam;

describe('signed-in sessions', async () => {
  const { url, wsUrl, dataDir } = await startServer();

  const logout = (token: string) => call<Err>(url, 'POST', '/logout', { token });
  const end = (token: string, id: string) => call<Err>(url, 'DELETE', `/sessions/${id}`, { token });
  const refresh = (token: string, guid = `guid-${Math.random().toString(36).slice(2, 12)}`) => post<Err & { access: string; refresh: string }>(url, '/refresh', { refresh: token, guid });
  const sessions = async (token: string) => {
    const r = await get<SessionsReply>(url, '/sessions', token);
    assert.equal(r.status, 200, r.text);
    assert.ok(Value.Check(SessionsReply, r.body), r.text);
    return r.body.sessions;
  };

  /** Another sign-in of the same device: a second family. */
  async function signInAgain(d: SignedUpDevice): Promise<SignedUpDevice> {
    const r = await loginDevice(url, d);
    assert.equal(r.status, 200, r.text);
    return { ...d, access: r.body.access, refresh: r.body.refresh };
  }

  async function otherDevice(of: SignedUpDevice): Promise<SignedUpDevice> {
    const keys = addDevice(dataDir, of.user, 'tablet');
    const r = await loginDevice(url, keys);
    assert.equal(r.status, 200, r.text);
    return { ...keys, user: r.body.user, access: r.body.access, refresh: r.body.refresh, expiresIn: r.body.expiresIn };
  }

  it('logout ends the caller’s session only: its tail connection closes with 4403 and its refresh token is refused, while another sign-in of the device goes on', async () => {
    const first = await signupDevice(url);
    const second = await signInAgain(first);
    const tail = await TailClient.connect(wsUrl, first.access);
    const otherTail = await TailClient.connect(wsUrl, second.access);

    const r = await logout(first.access);
    assert.deepEqual([r.status, r.text], [204, '']);
    assert.deepEqual(await tail.nextEvent('revoke'), { ev: 'revoke', reason: 'family' });
    assert.equal((await tail.closedWith()).code, 4403);
    const refused = await refresh(first.refresh);
    assert.deepEqual([refused.status, refused.body.error.code], [401, 'UNAUTHORIZED']);
    assert.equal((await get(url, '/me', first.access)).status, 401);
    assert.equal((await logout(first.access)).status, 401, 'an ended session has no token to log out with');

    const next = await refresh(second.refresh);
    assert.equal(next.status, 200, next.text);
    assert.equal((await get(url, '/me', next.body.access)).status, 200);
    assert.deepEqual(await otherTail.call('ping'), { re: 2 });
    assert.ok(otherTail.open);
    otherTail.close();
    assert.equal((await post(url, '/logout', {})).status, 401, 'without a token');
  });

  it('lists the user’s live sessions across its devices, newest first, with the caller’s marked current', async () => {
    // A few ms apart, so that the order by creation time is the order of the sign-ins.
    const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
    const first = await signupDevice(url);
    await tick();
    const second = await signInAgain(first);
    await tick();
    const tablet = await otherDevice(first);
    const stranger = await signupDevice(url);
    const [f1, f2, f3] = [first, second, tablet].map((d) => familyOf(d.access));

    const listed = await sessions(first.access);
    assert.deepEqual(listed.map((x) => [x.id, x.device, x.current]), [
      [f3, tablet.device, false],
      [f2, first.device, false],
      [f1, first.device, true],
    ]);
    for (const x of listed) assert.ok(Math.abs(x.createdAt - Date.now()) < 60_000);
    assert.deepEqual((await sessions(tablet.access)).map((x) => [x.id, x.current]), [[f3, true], [f2, false], [f1, false]]);
    assert.deepEqual((await sessions(stranger.access)).map((x) => x.id), [familyOf(stranger.access)], 'never another user’s');

    assert.equal((await logout(second.access)).status, 204);
    assert.deepEqual((await sessions(first.access)).map((x) => x.id), [f3, f1], 'an ended session is not listed');
    assert.equal((await post(url, '/revoke', { device: tablet.device }, first.access)).status, 200);
    assert.deepEqual((await sessions(first.access)).map((x) => x.id), [f1], 'nor the sessions of a revoked device');
    assert.equal((await get(url, '/sessions')).status, 401);
  });

  it('ends one session of the user on any of its devices; another user’s session, or one already ended, is 404', async () => {
    const phone = await signupDevice(url);
    const tablet = await otherDevice(phone);
    const stranger = await signupDevice(url);
    const tail = await TailClient.connect(wsUrl, tablet.access);

    const r = await end(phone.access, familyOf(tablet.access));
    assert.deepEqual([r.status, r.text], [204, '']);
    assert.deepEqual(await tail.nextEvent('revoke'), { ev: 'revoke', reason: 'family' });
    assert.equal((await tail.closedWith()).code, 4403);
    assert.equal((await refresh(tablet.refresh)).status, 401);
    assert.equal((await get(url, '/me', phone.access)).status, 200, 'the caller’s own session goes on');

    const again = await end(phone.access, familyOf(tablet.access));
    assert.deepEqual([again.status, again.body.error.code], [404, 'NOT_FOUND']);
    const theirs = await end(phone.access, familyOf(stranger.access));
    assert.deepEqual([theirs.status, theirs.body.error.code], [404, 'NOT_FOUND']);
    assert.deepEqual(theirs.body.error.message, again.body.error.message, 'another user’s session looks like no session');
    assert.equal((await get(url, '/me', stranger.access)).status, 200);
    assert.equal((await refresh(stranger.refresh)).status, 200, 'the stranger’s session is untouched');
    assert.equal((await end(phone.access, 'not!an!id')).status, 400);

    const own = await end(phone.access, familyOf(phone.access));
    assert.equal(own.status, 204, 'ending its own session is a logout');
    assert.equal((await get(url, '/me', phone.access)).status, 401);
  });
});
