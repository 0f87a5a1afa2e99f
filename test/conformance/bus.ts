/**
 * The bus conformance suite: every Bus implementation runs it (see src/bus/bus.ts for the
 * guarantees it checks).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bus } from '../../src/bus/bus.js';
import { DgError } from '../../src/protocol/errors.js';

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

export function runBusConformance(name: string, open: () => Promise<Bus>, opts: { skip?: string | false } = {}): void {
  describe(`bus conformance: ${name}`, { skip: opts.skip ?? false }, () => {
    let bus: Bus;
    let n = 0;
    const subj = () => `conf.${process.pid}.${Date.now()}.${n++}`;
    before(async () => {
      bus = await open();
    });
    after(async () => {
      await bus.close();
    });

    it('is healthy while open', () => {
      assert.equal(bus.healthy(), true);
    });

    it('delivers publishes to every plain subscriber, in order, asynchronously', async () => {
      const s = subj();
      const a: unknown[] = [];
      const b: unknown[] = [];
      const sa = bus.subscribe(s, (m) => void a.push(m));
      const sb = bus.subscribe(s, (m) => void b.push(m));
      await tick();
      for (let i = 0; i < 50; i++) bus.publish(s, { i });
      assert.equal(a.length, 0, 'publish must not run handlers synchronously');
      await tick(200);
      assert.deepEqual(a, Array.from({ length: 50 }, (_, i) => ({ i })));
      assert.deepEqual(b, a);
      sa.unsubscribe();
      sb.unsubscribe();
    });

    it('gives each message to exactly one member of a queue group', async () => {
      const s = subj();
      const seen: string[] = [];
      const plain: unknown[] = [];
      const subs = [
        bus.subscribe(s, () => void seen.push('x'), { queue: 'q' }),
        bus.subscribe(s, () => void seen.push('y'), { queue: 'q' }),
        bus.subscribe(s, (m) => void plain.push(m)),
      ];
      await tick();
      for (let i = 0; i < 20; i++) bus.publish(s, i);
      await tick(200);
      assert.equal(seen.length, 20);
      assert.equal(plain.length, 20);
      for (const x of subs) x.unsubscribe();
    });

    it('stops delivering after unsubscribe', async () => {
      const s = subj();
      const got: unknown[] = [];
      const sub = bus.subscribe(s, (m) => void got.push(m));
      await tick();
      bus.publish(s, 1);
      await tick(100);
      sub.unsubscribe();
      await tick();
      bus.publish(s, 2);
      await tick(100);
      assert.deepEqual(got, [1]);
    });

    it('answers requests with the handler result, sync or async', async () => {
      const s = subj();
      const sub = bus.subscribe(s, async (m) => ({ echo: m, ok: true }), { queue: 'svc' });
      await tick();
      const r = await bus.request<{ echo: unknown }>(s, { hello: 'world' });
      assert.deepEqual(r, { echo: { hello: 'world' }, ok: true });
      sub.unsubscribe();
    });

    it('rejects a request with UNAVAILABLE when nobody answers', async () => {
      await assert.rejects(bus.request(subj(), {}, { timeoutMs: 300 }), (e: unknown) => e instanceof DgError && e.code === 'UNAVAILABLE');
    });

    it('rejects a request with UNAVAILABLE on timeout', async () => {
      const s = subj();
      const sub = bus.subscribe(s, () => new Promise(() => {}));
      await tick();
      const t0 = Date.now();
      await assert.rejects(bus.request(s, {}, { timeoutMs: 150 }), (e: unknown) => e instanceof DgError && e.code === 'UNAVAILABLE');
      assert.ok(Date.now() - t0 >= 140);
      sub.unsubscribe();
    });

    it('turns a throwing handler into an error reply, keeping DgError codes', async () => {
      const s = subj();
      const t = subj();
      const s1 = bus.subscribe(s, () => {
        throw new DgError('FORBIDDEN', 'no');
      });
      const s2 = bus.subscribe(t, () => {
        throw new Error('secret internal detail');
      });
      await tick();
      assert.deepEqual(await bus.request(s, {}), { ok: false, error: { code: 'FORBIDDEN', message: 'no' } });
      assert.deepEqual(await bus.request(t, {}), { ok: false, error: { code: 'INTERNAL', message: 'internal error' } });
      s1.unsubscribe();
      s2.unsubscribe();
    });

    it('survives a throwing publish handler', async () => {
      const s = subj();
      const got: unknown[] = [];
      const s1 = bus.subscribe(s, () => {
        throw new Error('boom');
      });
      const s2 = bus.subscribe(s, (m) => void got.push(m));
      await tick();
      bus.publish(s, 'a');
      bus.publish(s, 'b');
      await tick(100);
      assert.deepEqual(got, ['a', 'b']);
      s1.unsubscribe();
      s2.unsubscribe();
    });

    it('carries JSON values intact', async () => {
      const s = subj();
      const value = { a: [1, 2, { b: 'ü€😀' }], n: null, t: true, x: 1.5 };
      const sub = bus.subscribe(s, (m) => m);
      await tick();
      assert.deepEqual(await bus.request(s, value), value);
      sub.unsubscribe();
    });
  });
}
