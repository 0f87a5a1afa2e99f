import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signToken, newJti } from '../../src/protocol/token.js';
import { loginDevice, post, signupDevice } from '../helpers/auth-client.js';
import { entry, TailClient } from '../helpers/tail-client.js';
import { connect, lease, logName, sleep, world } from './fixture.js';

describe('tail: sessions', async () => {
  const w = await world({ tailLimits: { connectTimeoutMs: 300, maxInFlight: 4 } });

  it('bounds the requests waiting for auth or the store per session', async () => {
    const c = await connect(w, w.owner);
    const prefix = logName('burst');
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.request('lease', { site: w.site, log: `${prefix}-${i}`, lead: false })));
    const limited = replies.filter((r) => r.error?.code === 'RATE_LIMITED').length;
    const leased = replies.filter((r) => r.role === 'follower').length;
    assert.equal(limited + leased, 20);
    assert.ok(limited > 0 && leased >= 4, `${leased} leased, ${limited} refused`);
    assert.equal((await lease(c, w.site, `${prefix}-19`, { lead: false })).role, 'follower', 'fine once the others are done');
    c.close();
  });

  it('refuses an upgrade without the datagrove.v1 subprotocol', async () => {
    await assert.rejects(TailClient.open(w.wsUrl, []), /400/);
    await assert.rejects(TailClient.open(w.wsUrl, 'chat.v2'), /400/);
    const ok = await TailClient.open(w.wsUrl, ['chat.v2', 'datagrove.v1']);
    assert.equal(ok.ws.protocol, 'datagrove.v1');
    ok.close();
  });

  it('answers any op before connect UNAUTHORIZED and keeps the socket for the connect', async () => {
    const c = await TailClient.open(w.wsUrl);
    assert.equal((await c.failure('ping')).code, 'UNAUTHORIZED');
    assert.equal((await c.failure('lease', { site: w.site, log: 'x' })).code, 'UNAUTHORIZED');
    await c.call('connect', { token: w.owner.access });
    assert.deepEqual(await c.call('ping'), { re: 4 });
    c.close();
  });

  it('answers UNAUTHORIZED before connect whatever else is wrong with the request', async () => {
    const c = await TailClient.open(w.wsUrl);
    // Unknown ops, missing or wrong arguments, and a non-string op are all "another op".
    const frames: Record<string, unknown>[] = [
      { op: 'nosuchop' },
      { op: 'read' },
      { op: 'write', handle: 5, at: 'x' },
      { op: 42 },
      {},
    ];
    for (const f of frames) {
      const id = c.freshId();
      c.send({ id, ...f });
      const r = await c.reply(id);
      assert.equal(r.error?.code, 'UNAUTHORIZED', JSON.stringify(f));
    }
    // Frames without an integer id still get re:null BAD_REQUEST.
    c.send({ op: 'ping' });
    assert.equal((await c.nextNullReply()).error?.code, 'BAD_REQUEST');
    // None of them counted as bad frames, and the session still connects.
    for (let i = 0; i < 30; i++) c.send({ id: c.freshId(), op: 'nosuchop' });
    await c.call('connect', { token: w.owner.access });
    assert.equal(c.closeCode, null);
    assert.equal((await c.failure('nosuchop')).code, 'UNKNOWN_OP', 'after connect an unknown op is UNKNOWN_OP');
    c.close();
  });

  it('answers a connect without a usable token UNAUTHORIZED and closes 4401', async () => {
    for (const args of [{}, { token: '' }, { token: 7 }, { token: null }, { token: 'x'.repeat(5000) }]) {
      const c = await TailClient.open(w.wsUrl);
      const err = await c.failure('connect', args);
      assert.equal(err.code, 'UNAUTHORIZED', JSON.stringify(args));
      assert.match(err.message, /^token/);
      assert.equal((await c.closedWith(2000)).code, 4401, JSON.stringify(args));
    }
  });

  it('answers an invalid token UNAUTHORIZED and closes 4401', async () => {
    const lease = signToken(w.srv.server.secrets.ring, {
      typ: 'lease', sub: w.owner.user, dev: w.owner.device, site: w.site, log: 'x', rights: ['read'],
      iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60, jti: newJti(),
    });
    const [head, body, sig] = w.owner.access.split('.') as [string, string, string];
    const tampered = `${head}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), sub: 'someone' })).toString('base64url')}.${sig}`;
    for (const token of ['garbage', `${head}.${body}.AAAA`, tampered, lease]) {
      const c = await TailClient.open(w.wsUrl);
      const err = await c.failure('connect', { token });
      assert.equal(err.code, 'UNAUTHORIZED');
      assert.equal((await c.closedWith()).code, 4401);
    }
  });

  it('closes a socket that does not connect in time with 4401', async () => {
    const c = await TailClient.open(w.wsUrl);
    const t0 = Date.now();
    assert.equal((await c.closedWith(5000)).code, 4401);
    assert.ok(Date.now() - t0 >= 250);
  });

  it('extends a session with a fresh token of the same device, and refuses another device with 4401', async () => {
    const c = await connect(w, w.owner);
    const again = await c.call<{ device: string; session: string }>('connect', { token: w.owner.access });
    assert.equal(again.device, w.owner.device);
    assert.deepEqual(await c.call('ping'), { re: 3 });
    const other = await signupDevice(w.url);
    const err = await c.failure('connect', { token: other.access });
    assert.equal(err.code, 'UNAUTHORIZED');
    assert.equal((await c.closedWith(5000)).code, 4401, 'a refused connect ends the session, as a first one does');
  });

  it('takes tokens of any number of sign-ins of its device, and closes when the newest sign-in ends', async () => {
    const d = await signupDevice(w.url);
    const c = await TailClient.connect(w.wsUrl, d.access);
    const first = await c.call<{ session: string }>('ping');
    assert.ok(first);
    let newest = d.access;
    for (let i = 0; i < 6; i++) {
      const login = await loginDevice(w.url, d);
      assert.equal(login.status, 200, login.text);
      newest = login.body.access;
      const r = await c.call<{ device: string }>('connect', { token: newest });
      assert.equal(r.device, d.device, `sign-in ${i + 2} extends the session`);
    }
    assert.equal((await post(w.url, '/logout', {}, newest)).status, 204);
    assert.equal((await c.closedWith(5000)).code, 4403, 'its newest sign-in ended: the session is closed');
  });
});

describe('tail: expired tokens', async () => {
  const w = await world({ accessTtlSec: 2, tailLimits: { expiredCloseMs: 300 } });

  it('closes a session whose token expired (past the allowance) with 4401, unless refreshed by connect', async () => {
    const dev = await signupDevice(w.url);
    const stale = await TailClient.connect(w.wsUrl, dev.access);
    const fresh = await TailClient.connect(w.wsUrl, dev.access);
    await sleep(1100);
    const r = await post<{ access: string }>(w.url, '/refresh', { refresh: dev.refresh, guid: 'guid-refresh-1' });
    assert.equal(r.status, 200, r.text);
    await fresh.call('connect', { token: r.body.access });
    assert.equal((await stale.closedWith(5000)).code, 4401);
    assert.equal(fresh.open, true, 'the refreshed session lives on');
    const late = await TailClient.open(w.wsUrl);
    assert.equal((await late.failure('connect', { token: dev.access })).code, 'UNAUTHORIZED');
    assert.equal((await fresh.closedWith(5000)).code, 4401);
  });
});

describe('tail: graceful shutdown', async () => {
  it('commits what it acknowledged and closes sessions with 1001', async () => {
    const w = await world();
    const c = await connect(w, w.owner);
    const log = logName();
    const l = await lease(c, w.site, log);
    const acked: number[] = [];
    const refused: string[] = [];
    let unanswered = 0;
    const write = (i: number) =>
      c.request('write', { handle: l.handle, at: i, entries: [entry(String(i))] }).then(
        (r) => {
          if (r.error !== undefined) refused.push(r.error.code);
          else if (typeof r.length === 'number') acked.push(r.length);
        },
        () => void unanswered++,
      );
    // One write acknowledged for certain, then a stream of pipelined writes that goes on
    // while the server stops.
    await write(0);
    const writes: Promise<void>[] = [];
    let streaming = true;
    const stream = (async () => {
      for (let i = 1; streaming && i < 20_000; i++) {
        writes.push(write(i));
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await sleep(30);
    const stopping = w.srv.stop();
    assert.equal((await c.closedWith()).code, 1001);
    streaming = false;
    await stream;
    await stopping;
    await Promise.all(writes);
    await assert.rejects(TailClient.open(w.wsUrl));
    const again = await world({ dataDir: w.srv.dataDir });
    const c2 = await TailClient.connect(again.wsUrl, w.owner.access);
    const l2 = await lease(c2, w.site, log);
    assert.ok(acked.length > 0, "writes that arrived before the drain were acknowledged");
    // Every write the server read was answered before the close: acknowledged once committed,
    // or refused UNAVAILABLE once the drain began; none was stored without its ack.
    assert.ok(refused.every((code) => code === 'UNAVAILABLE' || code === 'NACK'), refused.join());
    assert.equal(l2.length, Math.max(0, ...acked), `the log holds exactly the acknowledged writes (${l2.length}; ${acked.length} acked, ${refused.length} refused, ${unanswered} unanswered)`);
    assert.ok(l2.epoch > l.epoch);
    c2.close();
  });
});
