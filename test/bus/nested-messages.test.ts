/**
 * Deeply nested JSON on the NATS bus: anyone who can reach NATS can send it. It is refused
 * before it is parsed (BAD_REQUEST to a request, dropped as a publish), never reaches a
 * handler, and does not hold the process up; a reply nested that deeply fails its request.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connect as natsConnect } from '@nats-io/transport-node';
import { NatsBus } from '../../src/bus/nats.js';
import { DgError } from '../../src/protocol/errors.js';
import { MAX_JSON_DEPTH } from '../../src/protocol/json-depth.js';
import { NATS_URL, natsSkip } from '../helpers/services.js';

const skip = await natsSkip();

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const subject = (what: string) => `nested.${process.pid}.${Date.now()}.${what}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('deeply nested bus messages', { skip }, () => {
  const open: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const c of open.reverse()) await c.close();
  });

  it('are refused BAD_REQUEST without reaching the handler, while the allowed depth still passes', async () => {
    const bus = await NatsBus.connect(NATS_URL, { name: 'nested' });
    open.push(bus);
    const s = subject('req');
    const seen: unknown[] = [];
    bus.subscribe(s, (m) => {
      seen.push(m);
      return { ok: true };
    });
    await bus.flush();
    const raw = await natsConnect({ servers: NATS_URL });
    open.push(raw);

    const deep = await raw.request(s, `{"user":${nested(MAX_JSON_DEPTH)}}`, { timeout: 2000 });
    assert.equal(deep.json<{ ok: boolean; error?: { code: string } }>().error?.code, 'BAD_REQUEST');
    const allowed = await raw.request(s, nested(MAX_JSON_DEPTH), { timeout: 2000 });
    assert.deepEqual(allowed.json(), { ok: true });
    assert.equal(seen.length, 1, 'only the message within the depth reached the handler');
  });

  it('are dropped without holding up the process, so a flood of them does not stall it', async () => {
    const bus = await NatsBus.connect(NATS_URL, { name: 'nested-flood' });
    open.push(bus);
    const s = subject('pub');
    let calls = 0;
    bus.subscribe(s, () => void calls++);
    await bus.flush();
    const raw = await natsConnect({ servers: NATS_URL });
    open.push(raw);
    // Messages of about 1 MB, one at a time (sending them costs this process too): parsed,
    // each held the event loop for about 200 ms.
    const payload = nested(Math.floor((raw.info?.max_payload ?? 1_048_576) / 2) - 10);
    let worstLagMs = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      worstLagMs = Math.max(worstLagMs, now - last);
      last = now;
    }, 5);
    try {
      for (let i = 0; i < 10; i++) {
        raw.publish(s, payload);
        await raw.flush();
        await bus.flush();
        await sleep(20);
      }
      raw.publish(s, '{"done":true}');
      await raw.flush();
      const t0 = Date.now();
      while (calls === 0 && Date.now() - t0 < 10_000) await sleep(5);
    } finally {
      clearInterval(timer);
    }
    assert.equal(calls, 1, 'only the flat message reached the handler');
    assert.ok(worstLagMs < 100, `the event loop stalled for ${Math.round(worstLagMs)} ms`);
  });

  it('fail a request whose reply nests that deeply, with INTERNAL', async () => {
    const bus = await NatsBus.connect(NATS_URL, { name: 'nested-reply' });
    open.push(bus);
    const raw = await natsConnect({ servers: NATS_URL });
    open.push(raw);
    const s = subject('answer');
    raw.subscribe(s, { callback: (_e, m) => void m.respond(`{"ok":true,"rights":${nested(10_000)}}`) });
    await raw.flush();
    await assert.rejects(bus.request(s, {}), (e: unknown) => e instanceof DgError && e.code === 'INTERNAL');
  });
});
