/**
 * Calls of one client made with the same access token, each refused UNAUTHORIZED (the token
 * expired in flight) at a different moment: they share one refresh. A refusal that comes
 * after the refresh is answered by running the call again with the token it gave, not by
 * rotating the refresh token once more.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatagroveClient, MemoryKeyStorage, type FetchLike } from '../../src/client/index.js';
import { server } from './harness.js';

test('calls refused for one access token at different moments share one refresh', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  let refused: string | null = null;
  let refusals = 0;
  let refreshes = 0;
  const f: FetchLike = async (input, init) => {
    if (input.endsWith('/refresh')) refreshes++;
    if (refused !== null && init?.headers?.authorization === `Bearer ${refused}`) {
      // The server refuses the token; its answers reach the calls 40 ms apart.
      await new Promise((r) => setTimeout(r, 40 * refusals++));
      return { status: 401, headers: { get: () => null }, text: async () => JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'token expired' } }) };
    }
    return (await fetch(input, init)) as unknown as Awaited<ReturnType<FetchLike>>;
  };
  let authErrors = 0;
  const c = await DatagroveClient.create({ url: srv.url, storage, fetch: f, onAuthError: () => authErrors++ });
  await c.signup();
  refused = ((await storage.load(`datagrove.session:${srv.url}/auth/v1`)) as { access: string }).access;
  const results = await Promise.all(Array.from({ length: 8 }, () => c.me()));
  for (const me of results) assert.equal(me.device, c.device);
  assert.equal(refusals, 8, 'every call was refused once');
  assert.equal(refreshes, 1, `${refreshes} refreshes for one refused token`);
  assert.equal(authErrors, 0);
  await c.close();
});
