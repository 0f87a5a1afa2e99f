/**
 * The NATS bus against a real NATS server: the shared conformance suite, then what only a
 * network bus has (several connections, foreign payloads, reconnects, draining).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect as natsConnect } from '@nats-io/transport-node';
import { NatsBus } from '../../src/bus/nats.js';
import type { BusLog, NatsBusOptions } from '../../src/bus/nats.js';
import { DgError } from '../../src/protocol/errors.js';
import type { ErrorCode } from '../../src/protocol/errors.js';
import { runBusConformance } from '../conformance/bus.js';
import { NATS_URL, natsSkip } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';

const skip = await natsSkip();

runBusConformance('nats', () => NatsBus.connect(NATS_URL, { name: 'conformance' }), { skip });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const isCode = (code: ErrorCode) => (e: unknown) => e instanceof DgError && e.code === code;

interface Line {
  level: 'info' | 'warn' | 'error';
  msg: string;
  obj: object;
}

function recorder(): { lines: Line[]; log: BusLog } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (obj: object, msg: string) => void lines.push({ level, msg, obj });
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error') } };
}

let n = 0;
const subj = () => `natsbus.${process.pid}.${Date.now()}.${n++}`;

describe('NatsBus', { skip }, () => {
  const open: NatsBus[] = [];
  const bus = async (options: NatsBusOptions = {}, url = NATS_URL) => {
    const b = await NatsBus.connect(url, options);
    open.push(b);
    return b;
  };
  after(async () => {
    await Promise.all(open.map((b) => b.close()));
  });

  it('carries publishes and requests between two connections, in order', async () => {
    const [a, b] = [await bus({ name: 'a' }), await bus({ name: 'b' })];
    const s = subj();
    const got: unknown[] = [];
    b.subscribe(s, (m) => void got.push(m));
    b.subscribe(`${s}.echo`, (m) => ({ from: 'b', m }), { queue: 'svc' });
    a.subscribe(`${s}.echo2`, async (m) => ({ from: 'a', m }));
    await b.flush();
    await a.flush();
    for (let i = 0; i < 200; i++) a.publish(s, { i });
    await waitFor('200 messages', () => got.length === 200);
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => ({ i })));
    assert.deepEqual(await a.request(`${s}.echo`, [1, 'x']), { from: 'b', m: [1, 'x'] });
    assert.deepEqual(await b.request(`${s}.echo2`, null), { from: 'a', m: null });
  });

  it('gives each message to exactly one member of a queue group spread over two connections', async () => {
    const [a, b, c] = [await bus(), await bus(), await bus()];
    const s = subj();
    const seenA: number[] = [];
    const seenB: number[] = [];
    a.subscribe(s, (m) => void seenA.push(m as number), { queue: 'workers' });
    b.subscribe(s, (m) => void seenB.push(m as number), { queue: 'workers' });
    await Promise.all([a.flush(), b.flush()]);
    for (let i = 0; i < 200; i++) c.publish(s, i);
    await waitFor('200 deliveries', () => seenA.length + seenB.length >= 200);
    await sleep(100);
    const all = [...seenA, ...seenB].sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 200 }, (_, i) => i), 'each message exactly once');
    assert.ok(seenA.length > 0 && seenB.length > 0, 'both members get a share');
  });

  it('drops payloads that are not JSON without disturbing the subscriber', async () => {
    const { lines, log } = recorder();
    const b = await bus({ log });
    const s = subj();
    const got: unknown[] = [];
    b.subscribe(s, (m) => void got.push(m));
    b.subscribe(`${s}.req`, (m) => ({ ok: true, m }));
    await b.flush();
    const raw = await natsConnect({ servers: NATS_URL });
    try {
      raw.publish(s, '{"a":1}');
      raw.publish(s, 'not json {');
      raw.publish(s, new Uint8Array([0x22, 0xff, 0xfe, 0x22])); // a JSON string of invalid UTF-8
      raw.publish(s, '');
      raw.publish(s, '"b"');
      await raw.flush();
      await waitFor('the two JSON messages', () => got.length === 2);
      assert.deepEqual(got, [{ a: 1 }, 'b']);
      // Logged once for the three (at most one line per 10 s: anyone on the bus can send them), without a stack.
      const dropped = lines.filter((l) => String(l.msg).startsWith('bus messages that are not JSON dropped'));
      assert.equal(dropped.length, 1);
      assert.ok(dropped.every((l) => l.level === 'warn' && !('err' in l.obj)));
      // A request with a foreign payload is answered at once rather than left to time out.
      const reply = await raw.request(`${s}.req`, 'nope', { timeout: 2000 });
      assert.deepEqual(reply.json(), { ok: false, error: { code: 'BAD_REQUEST', message: 'bus message is not JSON' } });
      // A foreign reply to one of ours is an INTERNAL error, not a crash.
      raw.subscribe(`${s}.bad`, { callback: (_e, m) => void m.respond('<html>') });
      await raw.flush();
      await assert.rejects(b.request(`${s}.bad`, {}), isCode('INTERNAL'));
      assert.deepEqual(await b.request(`${s}.req`, 7), { ok: true, m: 7 });
    } finally {
      await raw.close();
    }
  });

  it('calls handlers in arrival order without waiting for async ones, and replies when each settles', async () => {
    const b = await bus();
    const s = subj();
    const started: number[] = [];
    const finished: number[] = [];
    b.subscribe(s, async (m) => {
      const i = m as number;
      started.push(i);
      await sleep(i % 2 === 0 ? 60 : 5);
      finished.push(i);
    });
    b.subscribe(`${s}.slow`, async (m) => {
      await sleep((m as { ms: number }).ms);
      return m;
    });
    await b.flush();
    for (let i = 0; i < 20; i++) b.publish(s, i);
    await waitFor('20 handler runs', () => finished.length === 20);
    assert.deepEqual(started, Array.from({ length: 20 }, (_, i) => i));
    assert.notDeepEqual(finished, started, 'async handlers overlap');
    const order: string[] = [];
    await Promise.all([
      b.request(`${s}.slow`, { ms: 300 }).then(() => order.push('slow')),
      sleep(20).then(() => b.request(`${s}.slow`, { ms: 1 }).then(() => order.push('fast'))),
    ]);
    assert.deepEqual(order, ['fast', 'slow'], 'a slow request does not hold up the next');
  });

  it('validates subjects and refuses values that are not JSON', async () => {
    const b = await bus();
    for (const bad of ['', 'a b', 'a.*', 'a.>', '>', 'a..b', '.a', 'a.', 'a\tb', 'ü', 'x'.repeat(300)]) {
      assert.throws(() => b.publish(bad, 1), isCode('BAD_REQUEST'), `publish ${JSON.stringify(bad)}`);
      assert.throws(() => b.subscribe(bad, () => {}), isCode('BAD_REQUEST'), `subscribe ${JSON.stringify(bad)}`);
      await assert.rejects(b.request(bad, 1), isCode('BAD_REQUEST'), `request ${JSON.stringify(bad)}`);
    }
    assert.throws(() => b.subscribe(subj(), () => {}, { queue: 'a b' }), isCode('BAD_REQUEST'));
    const s = subj();
    for (const bad of [undefined, new Map(), { a: NaN }, [1, undefined], new Uint8Array(2), 1n, () => 1]) {
      assert.throws(() => b.publish(s, bad), isCode('BAD_REQUEST'));
    }
    await assert.rejects(b.request(s, { d: new Date(0), x: Infinity }), isCode('BAD_REQUEST'));
    await assert.rejects(b.request(s, {}, { timeoutMs: -1 }), isCode('BAD_REQUEST'));
    assert.throws(() => b.publish(s, 'x'.repeat(2 * 1024 * 1024)), isCode('TOO_LARGE'));
  });

  it('answers null for a handler that returns nothing, and an error for a reply that is not JSON', async () => {
    const { lines, log } = recorder();
    const b = await bus({ log });
    const s = subj();
    b.subscribe(s, () => undefined);
    b.subscribe(`${s}.map`, () => new Map());
    await b.flush();
    assert.equal(await b.request(s, {}), null);
    assert.deepEqual(await b.request(`${s}.map`, {}), { ok: false, error: { code: 'INTERNAL', message: 'internal error' } });
    assert.ok(lines.some((l) => l.level === 'error' && l.msg === 'bus reply cannot be sent'));
  });

  it('refuses messages with UNAVAILABLE once 10,000 handler calls are running', async () => {
    const { lines, log } = recorder();
    const b = await bus({ log });
    const s = subj();
    let calls = 0;
    const stuck = b.subscribe(s, () => {
      calls++;
      return new Promise(() => {});
    });
    b.subscribe(`${s}.req`, () => 'fine');
    await b.flush();
    for (let i = 0; i < 10_000; i++) b.publish(s, i);
    await waitFor('10,000 running handlers', () => calls === 10_000);
    b.publish(s, 'one too many');
    assert.deepEqual(await b.request(`${s}.req`, {}), { ok: false, error: { code: 'UNAVAILABLE', message: 'busy' } });
    assert.equal(calls, 10_000);
    assert.equal(lines.filter((l) => l.msg === 'bus handlers overloaded; refusing messages').length, 1, 'logged once per episode');
    stuck.unsubscribe();
  });

  it('lets running handlers reply before close() drains, then refuses everything', async () => {
    const [a, b] = [await bus(), await bus()];
    const s = subj();
    let entered = false;
    b.subscribe(s, async (m) => {
      entered = true;
      await sleep(200);
      return { late: m };
    });
    await b.flush();
    const pending = a.request(s, 1, { timeoutMs: 3000 });
    await waitFor('the handler to start', () => entered);
    assert.equal(b.healthy(), true);
    const closing = b.close();
    assert.equal(b.healthy(), false, 'unhealthy as soon as close() starts');
    assert.deepEqual(await pending, { late: 1 });
    await closing;
    await b.close(); // idempotent
    assert.equal(b.healthy(), false);
    assert.throws(() => b.publish(s, 1), isCode('UNAVAILABLE'));
    assert.throws(() => b.subscribe(s, () => {}), isCode('UNAVAILABLE'));
    await assert.rejects(b.request(s, 1), isCode('UNAVAILABLE'));
    await assert.rejects(a.request(s, 1, { timeoutMs: 500 }), isCode('UNAVAILABLE'), 'its subscriptions are gone');
  });

  it('fails fast with UNAVAILABLE when the first connection cannot be made', async () => {
    const proxy = await startProxy(NATS_URL);
    const url = proxy.url;
    await proxy.stop();
    const t0 = Date.now();
    await assert.rejects(NatsBus.connect(`nats://user:secret@${new URL(url).host}`), (e: unknown) => {
      return isCode('UNAVAILABLE')(e) && !(e as Error).message.includes('secret');
    });
    assert.ok(Date.now() - t0 < 5000);
  });

  it('reconnects after an outage, turning unhealthy while it lasts, and keeps its subscriptions', async () => {
    const proxy = await startProxy(NATS_URL);
    const { lines, log } = recorder();
    const b = await bus({ log, unhealthyAfterMs: 300 }, proxy.url);
    const other = await bus();
    const s = subj();
    const got: unknown[] = [];
    b.subscribe(s, (m) => void got.push(m));
    b.subscribe(`${s}.req`, (m) => m);
    await b.flush();
    assert.equal(b.healthy(), true);

    await proxy.stop();
    await waitFor('the disconnect', () => lines.some((l) => l.msg === 'bus disconnected; reconnecting'));
    assert.equal(b.healthy(), true, 'a short blip is still healthy');
    await waitFor('unhealthy after 300 ms down', () => !b.healthy(), 3000);
    await sleep(700);
    await proxy.restart();
    await waitFor('the reconnect', () => b.healthy(), 10_000);
    const up = lines.find((l) => l.msg === 'bus reconnected');
    assert.ok(up !== undefined && up.level === 'info');

    await b.flush();
    other.publish(s, 'after');
    await waitFor('a message after the reconnect', () => got.includes('after'));
    assert.deepEqual(await other.request(`${s}.req`, { back: true }), { back: true });
    await b.close();
    await proxy.stop();
  });
});

/** A TCP relay in front of the NATS server that a test can cut and restore on the same port. */
