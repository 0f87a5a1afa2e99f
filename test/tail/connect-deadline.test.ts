/**
 * `connect` must come within `connectTimeoutMs` (10 s) of opening the socket. One that comes
 * later is refused (UNAUTHORIZED, close 4401) like a socket that never sent one, also when it
 * arrives before the once-a-second sweep has closed the socket.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TailClient } from '../helpers/tail-client.js';
import { sleep, world } from './fixture.js';

describe('tail: the connect deadline', async () => {
  const w = await world({ tailLimits: { connectTimeoutMs: 50 } });

  it('refuses a connect that comes after it and closes 4401', async () => {
    for (let i = 0; i < 3; i++) {
      const c = await TailClient.open(w.wsUrl);
      await sleep(120);
      if (c.open) {
        const r = await c.request('connect', { token: w.owner.access }).catch(() => null);
        // The sweep may have closed it meanwhile (no reply then); a reply must be a refusal.
        if (r !== null) assert.equal(r.error?.code, 'UNAUTHORIZED', JSON.stringify(r));
      }
      assert.equal((await c.closedWith(3000)).code, 4401);
    }
  });

  it('takes a connect within it', async () => {
    const c = await TailClient.open(w.wsUrl);
    await c.call('connect', { token: w.owner.access });
    await sleep(120);
    assert.deepEqual(await c.call('ping'), { re: 2 });
    c.close();
  });
});
