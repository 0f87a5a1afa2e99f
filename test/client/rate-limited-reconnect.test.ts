/**
 * A node that holds as many sessions of a user as it allows answers the next `connect`
 * RATE_LIMITED and closes the socket with 4429. The connection waits at least 5 s before it
 * tries again (not the short backoff of a dropped socket), and connections refused together
 * do not all come back at the same moment.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryKeyStorage } from '../../src/client/index.js';
import { makeClient, server, waitFor } from './harness.js';

test('a connect refused for too many sessions of the user waits at least 5 s, with jitter, before it tries again', async () => {
  const srv = await server({ tailLimits: { maxSessionsPerUser: 1 } });
  const storage = new MemoryKeyStorage();
  const first = await makeClient(srv, { storage });
  await first.client.signup('one');
  const { site } = await first.client.createSite();
  await (await first.client.connection(site)).ready();

  // Four more clients of the same user (sharing the stored session): the node refuses each.
  const others = await Promise.all(Array.from({ length: 4 }, () => makeClient(srv, { storage })));
  const delays: number[] = [];
  for (const o of others) {
    const conn = await o.client.connection(site);
    void conn.once('retrying').then(({ delayMs }) => delays.push(delayMs));
    conn.start();
  }
  await waitFor('every refused connection to schedule its retry', () => delays.length === others.length);
  for (const d of delays) assert.ok(d >= 5000, `a retry after ${d} ms: 4429 waits at least 5 s`);
  assert.ok(new Set(delays).size > 1, `every retry is due at the same moment (${delays.join(', ')} ms)`);

  await Promise.all([first, ...others].map((c) => c.client.close()));
});
