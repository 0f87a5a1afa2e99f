/**
 * PostgreSQL goes away under running auth and notify processes (cut at a proxy in front of
 * it): /ready turns 503 within a few seconds even while nobody asks the store anything,
 * requests that need the database are answered 503 UNAVAILABLE (retry), never 500
 * INTERNAL, and both recover once the database is reachable again.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { newDeviceKeys } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';

const skip = await pgSkip();
const schema = `test_away_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

async function until(what: string, check: () => Promise<boolean>, withinMs = 10_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('PostgreSQL going away under auth and notify', { skip }, () => {
  for (const roles of [['auth'], ['notify']] as const) {
    it(`${roles[0]}: /ready turns 503 and back, and requests get UNAVAILABLE meanwhile`, async () => {
      const proxy = await startProxy(PG_URL);
      after(() => proxy.stop());
      const { url } = await startServer({ db: proxy.url, dbSchema: schema, roles: [...roles] });
      const ready = async () => (await fetch(`${url}/ready`)).status;
      assert.equal(await ready(), 200);

      await proxy.stop();
      await until('/ready is 503', async () => (await ready()) === 503);
      if (roles[0] === 'auth') {
        // /challenge counts against shared rate limits and stores a nonce: both need the database.
        const r = await fetch(`${url}/auth/v1/challenge`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ device: newDeviceKeys().device }),
        });
        const body = (await r.json()) as { error: { code: string } };
        assert.deepEqual([r.status, body.error.code], [503, 'UNAVAILABLE']);
      }

      await proxy.restart();
      await until('/ready is 200 again', async () => (await ready()) === 200);
      if (roles[0] === 'auth') {
        await until('a challenge is answered again', async () => {
          const r = await fetch(`${url}/auth/v1/challenge`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ device: newDeviceKeys().device }),
          });
          return r.status === 200;
        });
      }
    });
  }
});
