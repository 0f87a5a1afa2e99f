/**
 * Signing out through the SDK against the real server: the session ends on the server too
 * (its tokens are refused, its tail connections close) without an auth error, and it is
 * forgotten on the device even when the server cannot be reached or has ended it already.
 * The user's sessions are listed and ended one by one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { AuthClient, DatagroveClient, DEVICE_KEYS_NAME, DeviceKeys, DgError, MemoryKeyStorage, Session, type FetchLike, type WebSocketConstructor } from '../../src/client/index.js';
import { server, waitFor } from './harness.js';

const sessionName = (url: string) => `datagrove.session:${url}/auth/v1`;
const refused = (code: string) => (e: unknown) => e instanceof DgError && e.code === code;

test('signOut ends the session on the server: its tokens are refused and its tail connection closes, with no auth error', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  const errors: DgError[] = [];
  const c = await DatagroveClient.create({ url: srv.url, storage, WebSocket: WebSocket as unknown as WebSocketConstructor, shardUrl: () => srv.wsUrl, onAuthError: (e) => errors.push(e) });
  await c.signup('laptop');
  const { site } = await c.createSite();
  await c.openLog(site, 'l').opened;
  const conn = await c.connection(site);
  const stored = (await storage.load(sessionName(srv.url))) as { access: string; refresh: string };

  await c.session.signOut();
  assert.equal(c.signedIn, false);
  assert.equal(await storage.load(sessionName(srv.url)), null, 'forgotten on the device');
  const auth = new AuthClient({ url: srv.url });
  await assert.rejects(auth.refresh(stored.refresh, 'guid-after-sign-out'), refused('UNAUTHORIZED'));
  await assert.rejects(auth.me(stored.access), refused('UNAUTHORIZED'));
  await waitFor('the tail connection to stop', () => conn.state === 'stopped');
  assert.equal(errors.length, 0, 'a sign-out is not an auth error');
  await c.close();

  // The device signs in again, and DatagroveClient.signOut does the same after closing its logs.
  const again = await DatagroveClient.create({ url: srv.url, storage, onAuthError: (e) => errors.push(e) });
  await again.login();
  const token = await again.session.accessToken();
  await again.signOut();
  await assert.rejects(auth.me(token), refused('UNAUTHORIZED'));
  assert.equal(errors.length, 0);
});

test('signOut forgets the session even when the server cannot be reached, answers 401, or never answers', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  const keys = await DeviceKeys.loadOrCreate(storage);
  let mode: 'down' | 'hang' | 'up' = 'up';
  const logouts: string[] = [];
  const flaky: FetchLike = async (input, init) => {
    if (input.endsWith('/logout')) {
      logouts.push(mode);
      if (mode === 'down') throw new TypeError('network down');
      if (mode === 'hang') return new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    }
    return (await fetch(input, init)) as unknown as Awaited<ReturnType<FetchLike>>;
  };
  const session = new Session(new AuthClient({ url: srv.url, fetch: flaky, timeoutMs: 500 }), keys, storage);
  const auth = new AuthClient({ url: srv.url });

  await session.signup();
  const unreachable = (await storage.load(sessionName(srv.url))) as { refresh: string };
  mode = 'down';
  await session.signOut();
  assert.equal(session.signedIn, false);
  assert.equal(await storage.load(sessionName(srv.url)), null);
  const live = await auth.refresh(unreachable.refresh, 'guid-still-live');
  assert.ok(live.access.length > 0, 'the server never heard of it: the session lives on there');

  mode = 'hang';
  await session.login();
  const started = Date.now();
  await session.signOut();
  assert.ok(Date.now() - started < 5000, 'bounded by the request timeout');
  assert.equal(await storage.load(sessionName(srv.url)), null);

  mode = 'up';
  await session.login();
  const current = (await storage.load(sessionName(srv.url))) as { access: string };
  await auth.logout(current.access); // ended elsewhere first: the sign-out's logout gets 401
  await session.signOut();
  assert.equal(session.signedIn, false);
  assert.equal(await storage.load(sessionName(srv.url)), null);
  assert.deepEqual(logouts, ['down', 'hang', 'up']);
});

test('signOut of a session whose access token expired refreshes once to end it on the server', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  let clock = Date.now();
  // Every refresh token the session is given, so the newest can be tried after sign-out.
  const auth = new AuthClient({ url: srv.url });
  const given: string[] = [];
  const refresh = auth.refresh.bind(auth);
  auth.refresh = async (token, guid) => {
    const r = await refresh(token, guid);
    given.push(r.refresh);
    return r;
  };
  const session = new Session(auth, await DeviceKeys.loadOrCreate(storage), storage, { now: () => clock });
  await session.signup();
  const before = (await storage.load(sessionName(srv.url))) as { refresh: string };
  clock += 3600_000; // the session's clock says the access token expired
  await session.signOut();
  assert.equal(given.length, 1, 'signOut refreshed once');
  await assert.rejects(new AuthClient({ url: srv.url }).refresh(given[0]!, 'guid-after-expiry'), refused('UNAUTHORIZED'), 'the family was ended on the server');
  await assert.rejects(new AuthClient({ url: srv.url }).refresh(before.refresh, 'guid-after-expiry'), refused('REFRESH_REUSED'), 'the first token was rotated');
});

test('the user’s sessions are listed with the current one marked, and one ended from another sign-in', async () => {
  const srv = await server();
  const laptopStorage = new MemoryKeyStorage();
  const errors: DgError[] = [];
  const laptop = await DatagroveClient.create({ url: srv.url, storage: laptopStorage });
  await laptop.signup('laptop');
  // A second sign-in of the same device (another app on it, sharing its keys but not its session).
  const otherStorage = new MemoryKeyStorage();
  await otherStorage.save(DEVICE_KEYS_NAME, (await laptopStorage.load(DEVICE_KEYS_NAME))!);
  const other = await DatagroveClient.create({ url: srv.url, storage: otherStorage, onAuthError: (e) => errors.push(e) });
  await other.login();

  const list = await laptop.sessions();
  assert.equal(list.length, 2);
  assert.deepEqual(list.map((s) => [s.device, s.current]).sort(), [[laptop.device, false], [laptop.device, true]]);
  const theirs = list.find((s) => !s.current)!;
  assert.deepEqual((await other.sessions()).find((s) => s.current)?.id, theirs.id);

  await laptop.endSession(theirs.id);
  await assert.rejects(other.me(), refused('UNAUTHORIZED'));
  assert.equal(other.signedIn, false);
  assert.equal(errors.length, 1, 'the ended sign-in learns it from the server');
  await assert.rejects(laptop.endSession(theirs.id), refused('NOT_FOUND'));
  assert.deepEqual((await laptop.sessions()).map((s) => s.current), [true]);
});

test('a closed client refuses every call with UNAVAILABLE, not only openLog', async () => {
  const srv = await server();
  const client = await DatagroveClient.create({ url: srv.url, storage: new MemoryKeyStorage() });
  await client.signup('laptop');
  await client.close();
  for (const call of [() => client.me(), () => client.createSite('x'), () => client.sessions()]) {
    await assert.rejects(call(), (e: unknown) => e instanceof DgError && e.code === 'UNAVAILABLE' && /closed/.test(e.message));
  }
});

test('a log whose session was ended elsewhere fails with UNAUTHORIZED, as onAuthError hears it', async () => {
  const srv = await server();
  const laptopStorage = new MemoryKeyStorage();
  const laptop = await DatagroveClient.create({ url: srv.url, storage: laptopStorage, WebSocket: WebSocket as unknown as WebSocketConstructor, shardUrl: () => srv.wsUrl });
  await laptop.signup('laptop');
  const otherStorage = new MemoryKeyStorage();
  await otherStorage.save(DEVICE_KEYS_NAME, (await laptopStorage.load(DEVICE_KEYS_NAME))!);
  const authErrors: string[] = [];
  const authMessages: string[] = [];
  const other = await DatagroveClient.create({
    url: srv.url,
    storage: otherStorage,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    shardUrl: () => srv.wsUrl,
    onAuthError: (e) => {
      authErrors.push((e as DgError).code);
      authMessages.push(e.message);
    },
  });
  await other.login();
  const { site } = await other.createSite('s');
  const log = other.openLog(site, 'main');
  const logErrors: string[] = [];
  const logMessages: string[] = [];
  log.on('error', (e) => {
    logErrors.push(e.code);
    logMessages.push(e.message);
  });
  await log.opened;
  const theirs = (await laptop.sessions()).find((s) => !s.current)!;
  await laptop.endSession(theirs.id);
  await waitFor('the log failed', () => logErrors.length > 0 && authErrors.length > 0);
  assert.deepEqual([logErrors[0], authErrors[0]], ['UNAUTHORIZED', 'UNAUTHORIZED']);
  // Both name the reason the server gave: the sign-in (refresh family) ended.
  assert.match(logMessages[0]!, /\bfamily\b/);
  assert.match(authMessages[0]!, /\bfamily\b/);
  await laptop.close();
  await other.close();
});
