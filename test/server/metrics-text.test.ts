/**
 * /metrics under repetition: concurrent scrapes share one rendering of the registry, and
 * every scrape still sees everything counted before it was asked for.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gauge } from 'prom-client';
import { createMetrics } from '../../src/server/metrics.js';

describe('metrics text', () => {
  it('renders once for the scrapes waiting together, at most twice for any number of concurrent ones', async () => {
    const m = createMetrics();
    let renders = 0;
    new Gauge({
      name: 'test_renders',
      help: 'renders so far',
      registers: [m.registry],
      collect() {
        this.set(++renders);
      },
    });
    const texts = await Promise.all(Array.from({ length: 200 }, () => m.text()));
    assert.ok(renders <= 2, `${renders} renders for 200 concurrent scrapes`);
    assert.ok(texts.every((t) => /^test_renders [12]$/m.test(t)));
    await m.text();
    assert.equal(renders, 3, 'a scrape after the others renders again');
  });

  it('answers a scrape that came during a render with a render of its own, started after it', async () => {
    const m = createMetrics();
    let renders = 0;
    let open = (): void => {};
    const gate = new Promise<void>((r) => (open = r));
    new Gauge({
      name: 'test_renders',
      help: 'renders so far',
      registers: [m.registry],
      async collect() {
        const n = ++renders;
        if (n === 1) await gate;
        this.set(n);
      },
    });
    const first = m.text();
    await new Promise((r) => setImmediate(r));
    const second = m.text();
    assert.equal(renders, 1, 'the second scrape waits for the render that runs');
    open();
    assert.match(await first, /^test_renders 1$/m);
    assert.match(await second, /^test_renders 2$/m);
  });

  it('renders again after a render failed', async () => {
    const m = createMetrics();
    let fail = true;
    new Gauge({
      name: 'test_flaky',
      help: 'fails once',
      registers: [m.registry],
      collect() {
        if (fail) {
          fail = false;
          throw new Error('collect failed');
        }
        this.set(1);
      },
    });
    const [a, b] = await Promise.allSettled([m.text(), m.text()]);
    assert.equal(a.status, 'rejected');
    assert.equal(b.status, 'fulfilled');
    assert.match(await m.text(), /^test_flaky 1$/m);
  });
});
