/** Envelopes over HTTP: send, list, delete, limits, the envelope event, and revocation. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { EnvelopesReply } from '../../src/protocol/auth-schemas.js';
import { SUBJECTS, type UserEvent } from '../../src/protocol/bus-messages.js';
import { MAX_ENVELOPES_FROM_OTHER_USERS, MAX_ENVELOPES_PER_DEVICE, MAX_ENVELOPES_PER_SENDER } from '../../src/auth/routes/envelopes.js';
import { call, get, loginDevice, newDeviceKeys, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';
import { addDevice } from './db.js';

type Err = { error: { code: string; message: string } };
const data = (n = 32) => randomBytes(n).toString('base64url');

describe('envelopes', async () => {
  const { url, wsUrl, server, dataDir } = await startServer();
  const events: UserEvent[] = [];
  server.bus.subscribe(SUBJECTS.tailUser, (m) => void events.push(m as UserEvent));

  const send = (from: SignedUpDevice, to: string, d: string) => post<{ id: string } & Err>(url, '/envelopes', { to, data: d }, from.access);
  const list = async (d: SignedUpDevice) => {
    const r = await get<EnvelopesReply>(url, '/envelopes', d.access);
    assert.equal(r.status, 200);
    assert.ok(Value.Check(EnvelopesReply, r.body), r.text);
    return r.body;
  };
  const del = (d: SignedUpDevice, id: string) => call<Err>(url, 'DELETE', `/envelopes/${id}`, { token: d.access });

  async function secondDevice(of: SignedUpDevice): Promise<SignedUpDevice> {
    const keys = addDevice(dataDir, of.user, 'new phone');
    const r = await loginDevice(url, keys);
    return { ...keys, user: r.body.user, access: r.body.access, refresh: r.body.refresh, expiresIn: r.body.expiresIn };
  }

  it('delivers to the recipient device only, with an envelope event, until it deletes it', async () => {
    const alice = await signupDevice(url);
    const bob = await signupDevice(url);
    const bobSession = await TailClient.connect(wsUrl, bob.access);
    const payload = data(100);
    const seen = events.length;
    const sent = await send(alice, bob.device, payload);
    assert.equal(sent.status, 201, sent.text);
    const id = sent.body.id;
    const ev = await bobSession.nextEvent('envelope');
    assert.deepEqual(ev, { ev: 'envelope', id, from: alice.device });
    assert.deepEqual(events.slice(seen), [{ user: bob.user, device: bob.device, event: { ev: 'envelope', id, from: alice.device } }]);
    bobSession.close();

    const got = await list(bob);
    assert.equal(got.more, false);
    assert.deepEqual(got.envelopes.map((e) => [e.id, e.from, e.data]), [[id, alice.device, payload]]);
    assert.ok(Math.abs((got.envelopes[0]?.at ?? 0) - Date.now()) < 60_000);
    assert.deepEqual((await list(alice)).envelopes, []);
    const bobsOther = await secondDevice(bob);
    assert.deepEqual((await list(bobsOther)).envelopes, [], 'per device, not per user');

    assert.equal((await del(alice, id)).status, 404, 'only the recipient deletes');
    const d = await del(bob, id);
    assert.deepEqual([d.status, d.text], [204, '']);
    assert.equal((await del(bob, id)).status, 404);
    assert.deepEqual((await list(bob)).envelopes, []);
  });

  it('refuses unknown or revoked recipients, bad data, and sizes over 64 KiB', async () => {
    const alice = await signupDevice(url);
    const bob = await signupDevice(url);
    assert.equal((await send(alice, newDeviceKeys().device, data())).body.error.code, 'NOT_FOUND');
    assert.equal((await send(alice, bob.device, '')).status, 400);
    assert.equal((await send(alice, bob.device, 'a\u0000b')).status, 400, 'U+0000, which PostgreSQL text cannot hold');
    assert.equal((await send(alice, bob.device, data(64 * 1024))).status, 201, 'exactly 64 KiB');
    const over = await send(alice, bob.device, data(64 * 1024 + 1));
    assert.equal(over.status, 413);
    // Opaque: any other string comes back as it was sent, bounded by its UTF-8 bytes.
    for (const text of ['not base64!', 'A', '{"kind":"hello","n":1}', 'é'.repeat(100)]) {
      const sent = await send(alice, bob.device, text);
      assert.equal(sent.status, 201, text);
      assert.ok((await list(bob)).envelopes.some((e) => e.id === sent.body.id && e.data === text), text);
    }
    assert.equal((await send(alice, bob.device, 'é'.repeat(32 * 1024 + 1))).status, 413, 'over 64 KiB of UTF-8');
    assert.equal((await post(url, '/envelopes', { to: bob.device, data: data() })).status, 401);
    assert.equal((await call(url, 'DELETE', '/envelopes/short', { token: bob.access })).status, 400);
    await post(url, '/revoke', { device: bob.device }, bob.access);
    assert.equal((await send(alice, bob.device, data())).body.error.code, 'NOT_FOUND');
  });

  it('caps what one sending device leaves at a device: 429 with retry-after, until the recipient reads some', async () => {
    const alice = await signupDevice(url);
    const bob = await signupDevice(url);
    const carol = await signupDevice(url);
    for (let i = 0; i < MAX_ENVELOPES_PER_SENDER; i++) assert.equal((await send(alice, bob.device, data(8))).status, 201, `envelope ${i}`);
    const capped = await send(alice, bob.device, data(8));
    assert.deepEqual([capped.status, capped.body.error.code], [429, 'RATE_LIMITED']);
    assert.match(capped.body.error.message, new RegExp(`^to: .*${MAX_ENVELOPES_PER_SENDER} envelopes from this device`));
    assert.ok(Number(capped.headers.get('retry-after')) > 0);
    assert.equal((await send(carol, bob.device, data(8))).status, 201, 'other senders still deliver');
    assert.equal((await send(alice, carol.device, data(8))).status, 201, 'and the capped sender reaches other devices');
    const read = (await list(bob)).envelopes.find((e) => e.from === alice.device);
    assert.equal((await del(bob, read?.id ?? '')).status, 204);
    assert.equal((await send(alice, bob.device, data(8))).status, 201, 'room again once one was read');
  });

  it('keeps room for the recipient’s own devices however many other users fill its mailbox, and pages long lists', async () => {
    const bob = await signupDevice(url);
    // Other users fill their share, each sender up to its own cap.
    const senders = MAX_ENVELOPES_FROM_OTHER_USERS / MAX_ENVELOPES_PER_SENDER;
    assert.ok(Number.isInteger(senders) && senders > 1);
    const strangers = await Promise.all(Array.from({ length: senders + 1 }, () => signupDevice(url)));
    for (const [n, stranger] of strangers.slice(0, senders).entries()) {
      for (let i = 0; i < MAX_ENVELOPES_PER_SENDER; i++) assert.equal((await send(stranger, bob.device, data(8))).status, 201, `stranger ${n}, envelope ${i}`);
    }
    const late = strangers[senders] as SignedUpDevice;
    const full = await send(late, bob.device, data(8));
    assert.deepEqual([full.status, full.body.error.code], [429, 'RATE_LIMITED']);
    assert.match(full.body.error.message, /^to: the device's mailbox is full/);
    assert.ok(Number(full.headers.get('retry-after')) > 0);

    // Bob's other devices still deliver (a sealed user key for a new device, say): the rest is theirs.
    const reserved = MAX_ENVELOPES_PER_DEVICE - MAX_ENVELOPES_FROM_OTHER_USERS;
    const own = await Promise.all(Array.from({ length: 2 }, () => secondDevice(bob)));
    for (let i = 0; i < reserved; i++) assert.equal((await send(own[i % 2] as SignedUpDevice, bob.device, data(8))).status, 201, `own envelope ${i}`);
    const brim = await send(own[0] as SignedUpDevice, bob.device, data(8));
    assert.deepEqual([brim.status, brim.body.error.code], [429, 'RATE_LIMITED'], `the mailbox holds ${MAX_ENVELOPES_PER_DEVICE} at most`);

    const page = await list(bob);
    assert.equal(page.envelopes.length, 64);
    assert.equal(page.more, true);
    for (const e of page.envelopes) assert.equal((await del(bob, e.id)).status, 204);
    assert.equal((await send(late, bob.device, data(8))).status, 201, 'room again');
  });

  it('deletes the envelopes of a revoked device', async () => {
    const alice = await signupDevice(url);
    const bob = await signupDevice(url);
    const tablet = await secondDevice(bob);
    assert.equal((await send(alice, tablet.device, data())).status, 201);
    assert.equal((await list(tablet)).envelopes.length, 1);
    assert.equal((await post(url, '/revoke', { device: tablet.device }, bob.access)).status, 200);
    assert.equal((await get(url, '/envelopes', tablet.access)).status, 401);
    const db = (await import('better-sqlite3')).default(`${dataDir}/auth.db`, { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT count(*) AS n FROM envelopes WHERE to_device = ?').get(tablet.device), { n: 0 });
    } finally {
      db.close();
    }
  });
});
