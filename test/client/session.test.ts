/**
 * Sessions and tail connections through the SDK against the real server: stored sessions,
 * the refresh guid rule, reuse detection, reconnects after drops, 4401 and 4403 handling,
 * and re-`connect` before the access token expires.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import net from 'node:net';
import { AuthClient, DatagroveClient, DeviceKeys, DgError, MemoryKeyStorage, Session, ShardRouter, TailConnection, verifyBoxSig, type FetchLike, type WebSocketConstructor } from '../../src/client/index.js';
import { makeClient, server, waitFor } from './harness.js';

test('a stored session survives a restart; login works with the stored device key', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  const first = await DatagroveClient.create({ url: srv.url, storage });
  const { user } = await first.signup('laptop');
  const again = await DatagroveClient.create({ url: srv.url, storage });
  assert.ok(again.signedIn);
  assert.equal(again.device, first.device);
  const me = await again.me();
  assert.equal(me.user, user);
  assert.ok(me.devices[0]?.boxSig !== undefined && verifyBoxSig(first.device, me.devices[0].boxKey, me.devices[0].boxSig), 'signup registers a signed box key');
  await again.session.signOut();
  const third = await DatagroveClient.create({ url: srv.url, storage });
  assert.equal(third.signedIn, false);
  assert.deepEqual(await third.login(), { user, device: first.device });
  assert.equal((await third.me()).devices[0]?.device, first.device);
});

test('a refresh whose answer is lost is retried with the same guid and never trips reuse detection', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  const guids: string[] = [];
  let loseNext = true;
  let storedDuringCall: unknown = null;
  const lossy: FetchLike = async (input, init) => {
    if (input.endsWith('/refresh')) {
      guids.push((JSON.parse(init!.body!) as { guid: string }).guid);
      storedDuringCall = await storage.load(`datagrove.session:${srv.url}/auth/v1`);
    }
    const res = await fetch(input, init);
    if (input.endsWith('/refresh') && loseNext) {
      loseNext = false;
      await res.text();
      throw new TypeError('network error after the server answered');
    }
    return res as unknown as Awaited<ReturnType<FetchLike>>;
  };
  let authErrors = 0;
  const c = await DatagroveClient.create({ url: srv.url, storage, fetch: lossy, onAuthError: () => authErrors++ });
  await c.signup();
  const t1 = await c.session.refresh();
  assert.equal(guids.length, 2, 'the lost answer was retried');
  assert.equal(guids[0], guids[1], 'with the same guid');
  assert.equal((storedDuringCall as { pendingGuid: string }).pendingGuid, guids[1], 'the guid was stored before sending');
  const t2 = await c.session.refresh();
  assert.notEqual(t1, t2);
  assert.notEqual(guids[2], guids[1], 'a new refresh gets a new guid');
  assert.equal((await c.me()).device, c.device);
  assert.equal(authErrors, 0);
  const stored = (await storage.load(`datagrove.session:${srv.url}/auth/v1`)) as { pendingGuid: string | null };
  assert.equal(stored.pendingGuid, null);
});

test('refresh reuse ends the session: onAuthError is called and the tail connection stops', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  const errors: DgError[] = [];
  const c = await DatagroveClient.create({ url: srv.url, storage, WebSocket: WebSocket as unknown as WebSocketConstructor, shardUrl: () => srv.wsUrl, onAuthError: (e) => errors.push(e) });
  await c.signup();
  const { site } = await c.createSite();
  const log = c.openLog(site, 'l');
  await log.opened;
  const logError = new Promise<DgError>((resolve) => log.on('error', resolve));
  const old = ((await storage.load(`datagrove.session:${srv.url}/auth/v1`)) as { refresh: string }).refresh;
  await c.session.refresh(); // rotates `old`
  // Someone replays the rotated token: the server revokes the whole family.
  await assert.rejects(new AuthClient({ url: srv.url }).refresh(old, 'another-guid-123'), (e: DgError) => e.code === 'REFRESH_REUSED');
  assert.match((await logError).code, /^(FORBIDDEN|UNAUTHORIZED)$/);
  await assert.rejects(c.session.refresh(), (e: DgError) => e.code === 'UNAUTHORIZED' || e.code === 'REFRESH_REUSED');
  await waitFor('onAuthError', () => errors.length === 1);
  assert.equal(c.signedIn, false);
  assert.equal(await storage.load(`datagrove.session:${srv.url}/auth/v1`), null, 'the dead refresh token is forgotten');
  await c.close();
});

test('tail connection: reconnects after a drop, resends idempotent requests, fails the others', async () => {
  const srv = await server();
  const t = await makeClient(srv);
  await t.client.signup();
  const { site } = await t.client.createSite();
  const conn = await t.client.connection(site);
  const first = await conn.ready();
  const lease = await conn.request('lease', { site, log: 'x' });
  assert.ok('handle' in lease);
  const opens: boolean[] = [];
  conn.on('open', ({ reconnect }) => opens.push(reconnect));
  const ping = conn.request('ping', {});
  const signal = assert.rejects(conn.request('signal', { handle: lease.handle, to: 'leader', kind: 'data', data: {} }), (e: DgError) => e.code === 'UNAVAILABLE' && /connection lost/.test(e.message));
  t.cut();
  await ping; // resent on the new socket
  await signal; // not idempotent: failed
  assert.deepEqual(opens, [true]);
  assert.notEqual(conn.info!.session, first.session, 'a new session');
  // Resends wait for the reconnect hooks: one re-leases, and the read's arguments (a
  // function) then name the new handle.
  let handle = lease.handle;
  let releases = 0;
  const off = conn.beforeResend(async () => {
    releases++;
    const r = await conn.request('lease', { site, log: 'x' });
    if ('handle' in r) handle = r.handle;
  });
  let built = 0;
  const read = conn.request('read', () => {
    built++;
    return { handle, from: 0 };
  });
  t.cut();
  assert.equal((await read).length, 0);
  assert.equal(releases, 1);
  assert.equal(built, 2, 'built once per send');
  off();
  await t.client.close();
  assert.equal(conn.state, 'stopped');
});

test('tail connection: a refused token (4401) is refreshed and the connection comes back', async () => {
  const srv = await server();
  const t = await makeClient(srv);
  await t.client.signup();
  const calls: boolean[] = [];
  const closes: number[] = [];
  const conn = new TailConnection({
    url: srv.wsUrl,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    token: async (fresh) => {
      calls.push(fresh);
      return calls.length === 1 ? 'not-a-token' : t.client.session.accessToken();
    },
  });
  conn.on('close', ({ code }) => closes.push(code));
  const info = await conn.ready();
  assert.equal(info.device, t.client.device);
  assert.deepEqual(calls, [false, true], 'the second attempt asked for a fresh token');
  conn.close();
});

test('tail connection: a node that is full (upgrade refused with 503) is tried again with backoff until it has room', async () => {
  const srv = await server({ tailLimits: { maxSessions: 1 } });
  const t = await makeClient(srv);
  await t.client.signup();
  // Another client holds the node's only place.
  const holder = new WebSocket(srv.wsUrl, 'datagrove.v1');
  await new Promise((resolve, reject) => {
    holder.once('open', resolve);
    holder.once('error', reject);
  });
  let attempts = 0;
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      attempts++;
    }
  }
  const conn = new TailConnection({
    url: srv.wsUrl,
    WebSocket: Counting as unknown as WebSocketConstructor,
    token: () => t.client.session.accessToken(),
    backoff: { baseMs: 50, maxMs: 200 },
  });
  conn.start();
  await waitFor('three refused attempts', () => attempts >= 3, 5000);
  assert.notEqual(conn.state, 'open');
  holder.close();
  const info = await conn.ready();
  assert.equal(info.device, t.client.device);
  await conn.request('ping', {});
  conn.close();
});

test('tail connection: revocation (4403) stops it for good', async () => {
  const srv = await server();
  const t = await makeClient(srv);
  await t.client.signup();
  const { site } = await t.client.createSite();
  const conn = await t.client.connection(site);
  await conn.ready();
  const stopped = new Promise<DgError>((resolve) => conn.on('stopped', resolve));
  await t.client.revoke({ device: t.client.device });
  const err = await stopped;
  assert.match(err.code, /^(FORBIDDEN|UNAUTHORIZED)$/);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(t.sockets.size, 0, 'no reconnect after 4403');
  assert.equal(conn.state, 'stopped');
  assert.equal(t.client.signedIn, false, 'the session ended');
  await assert.rejects(t.client.login(), (e: DgError) => e.code === 'UNAUTHORIZED' || e.code === 'FORBIDDEN');
});

test('tail connection: the error it stops with names the reason of the revoke event, not only the close', async () => {
  const srv = await server();
  const t = await makeClient(srv);
  await t.client.signup();
  const reasons: string[] = [];
  const conn = new TailConnection({
    url: srv.wsUrl,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    token: () => t.client.session.accessToken(),
    onRevoked: (reason) => void reasons.push(reason),
  });
  await conn.ready();
  const stopped = new Promise<DgError>((resolve) => conn.on('stopped', resolve));
  await t.client.revoke({ device: t.client.device });
  const err = await stopped;
  assert.equal(err.code, 'UNAUTHORIZED');
  assert.equal(err.message, 'session revoked: device');
  assert.deepEqual(reasons, ['device', 'device']);
});

test('tail connection: connect is sent again with a fresh token before the access token expires', async () => {
  const srv = await server({ accessTtlSec: 3 });
  const t = await makeClient(srv);
  await t.client.signup();
  const sent: string[] = [];
  class Spy extends WebSocket {
    override send(data: string): void {
      const op = (JSON.parse(data) as { op: string }).op;
      sent.push(op);
      super.send(data);
    }
  }
  const opens: boolean[] = [];
  const conn = new TailConnection({
    url: srv.wsUrl,
    WebSocket: Spy as unknown as WebSocketConstructor,
    token: (fresh) => (fresh ? t.client.session.refresh() : t.client.session.accessToken()),
    tokenExpiresAt: () => t.client.session.accessExpiresAt,
  });
  conn.on('open', ({ reconnect }) => opens.push(reconnect));
  await conn.ready();
  const expires = t.client.session.accessExpiresAt;
  await new Promise((r) => setTimeout(r, 4500));
  assert.ok(sent.filter((op) => op === 'connect').length >= 3, `connect re-sent on the same socket (${sent.join(',')})`);
  assert.ok(t.client.session.accessExpiresAt > expires, 'the token was refreshed');
  await conn.request('ping', {});
  assert.deepEqual(opens, [false], 'never reconnected');
  conn.close();
});

test('shard routing: the map comes from /auth/v1/shards, one connection per shard, a redirect re-routes the site', async () => {
  const srv = await server();
  const other = await server();
  const t = await makeClient(srv);
  await t.client.signup();
  const { site } = await t.client.createSite();
  const map = await t.client.auth.shards();
  assert.equal(map.shards.length, 1, 'the monolith has one shard');
  let fetches = 0;
  const counting: FetchLike = async (input, init) => {
    if (input.endsWith('/shards')) fetches++;
    return (await fetch(input, init)) as unknown as Awaited<ReturnType<FetchLike>>;
  };
  const made: string[] = [];
  const router = new ShardRouter({
    auth: new AuthClient({ url: srv.url, fetch: counting }),
    connect: (url) => {
      made.push(url);
      return new TailConnection({ url, WebSocket: WebSocket as unknown as WebSocketConstructor, token: () => t.client.session.accessToken() });
    },
    mapUrl: (u) => (u.includes(':0/') ? srv.wsUrl : u),
  });
  const a = await router.connectionFor(site);
  assert.equal(await router.connectionFor(site), a, 'one connection per shard');
  assert.equal(a.url, srv.wsUrl);
  await a.request('ping', {});
  // A node answered `redirect`: the map is fetched again and the site goes to that node.
  const b = await router.redirected(site, other.url);
  assert.equal(b.url, other.wsUrl);
  assert.equal(fetches, 2);
  assert.equal(await router.connectionFor(site), b);
  assert.deepEqual(made, [srv.wsUrl, other.wsUrl]);
  router.close();
  assert.equal(a.state, 'stopped');
});

test('the access token is refreshed a fifth of its life before it expires (at most 60 s), not at the last second', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  let clock = Date.now();
  const auth = new AuthClient({ url: srv.url });
  const session = new Session(auth, await DeviceKeys.loadOrCreate(storage), storage, { now: () => clock });
  await session.signup('laptop');
  const life = session.accessExpiresAt - clock; // the server's default: 900 s
  assert.ok(life > 120_000, `a long-lived token (${life} ms)`);
  const first = await session.accessToken();
  clock = session.accessExpiresAt - 61_000;
  assert.equal(await session.accessToken(), first, 'over 60 s left: the same token');
  clock = session.accessExpiresAt - 59_000;
  const second = await session.accessToken();
  assert.notEqual(second, first, 'under 60 s left: refreshed');
  assert.ok(session.accessExpiresAt - clock > 120_000, 'the new token has its whole life ahead');
});

test('two clients of one device sharing a storage (two tabs) take each other\'s rotated refresh tokens instead of reusing them', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  let authErrors = 0;
  const a = await DatagroveClient.create({ url: srv.url, storage, onAuthError: () => authErrors++ });
  await a.signup('tab');
  const b = await DatagroveClient.create({ url: srv.url, storage, onAuthError: () => authErrors++ });
  assert.ok(b.signedIn);
  for (let i = 0; i < 3; i++) {
    await a.session.refresh();
    await b.session.refresh();
    await b.session.refresh();
    assert.equal((await a.me()).device, a.device);
    assert.equal((await b.me()).device, a.device);
  }
  assert.equal(authErrors, 0, 'no refresh token was reused');
});

test('tail connection: reconnectNow skips the backoff wait once the node has room again', async () => {
  const srv = await server({ tailLimits: { maxSessions: 1 } });
  const t = await makeClient(srv);
  await t.client.signup();
  const holder = new WebSocket(srv.wsUrl, 'datagrove.v1');
  await new Promise((resolve, reject) => {
    holder.once('open', resolve);
    holder.once('error', reject);
  });
  let attempts = 0;
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      attempts++;
    }
  }
  // A backoff of at least 30 s: without reconnectNow the next attempt would come much later.
  const conn = new TailConnection({
    url: srv.wsUrl,
    WebSocket: Counting as unknown as WebSocketConstructor,
    token: () => t.client.session.accessToken(),
    backoff: { baseMs: 60_000, maxMs: 60_000 },
  });
  conn.start();
  await waitFor('the first refused attempt', () => conn.state === 'waiting', 5000);
  assert.equal(attempts, 1);
  holder.close();
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  conn.reconnectNow();
  const info = await conn.ready();
  assert.equal(info.device, t.client.device);
  assert.ok(Date.now() - started < 5000, `connected ${Date.now() - started} ms after reconnectNow`);
  assert.equal(attempts, 2);
  // On an open connection it only checks the link.
  conn.reconnectNow();
  await conn.request('ping', {});
  assert.equal(attempts, 2);
  conn.close();
});

test('tail connection: a socket that never opens is given up after the request timeout and tried again', async () => {
  // Accepts TCP connections and never answers the upgrade.
  const held = new Set<net.Socket>();
  const silent = net.createServer((s) => held.add(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  let attempts = 0;
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      attempts++;
    }
  }
  const conn = new TailConnection({
    url: `ws://127.0.0.1:${port}/tail`,
    WebSocket: Counting as unknown as WebSocketConstructor,
    token: () => Promise.resolve('unused'),
    requestTimeoutMs: 300,
    backoff: { baseMs: 50, maxMs: 100 },
  });
  try {
    conn.start();
    await waitFor('a second attempt after the first hung', () => attempts >= 2, 5000);
    assert.equal(conn.state === 'open', false);
  } finally {
    conn.close();
    for (const s of held) s.destroy();
    silent.close();
  }
});
