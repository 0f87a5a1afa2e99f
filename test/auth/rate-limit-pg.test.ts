/**
 * Auth processes sharing a PostgreSQL database share their rate limits: two servers on one
 * schema count every request together, per route, so a cluster allows each limit once and
 * not once per process.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { newDeviceKeys } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';

const skip = await pgSkip();
const schema = `test_limits_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

async function post(url: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${url}/auth/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('rate limits shared through PostgreSQL', { skip }, () => {
  it('counts the requests of every auth process together, per device and per route', async () => {
    const servers = await Promise.all([0, 1].map(() => startServer({ db: PG_URL, dbSchema: schema, roles: ['auth'] })));
    const [one, two] = servers.map((s) => s.url) as [string, string];
    // The per-device limit of /challenge is 20 a minute: alternate between the processes.
    const device = newDeviceKeys().device;
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await post(i % 2 === 0 ? one : two, '/challenge', { device })).status);
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(200), 'twenty in all pass');
    assert.deepEqual(statuses.slice(20), [429, 429], 'then both processes refuse');
    // The per-address limit counts on both too, and each route apart.
    const before = Number((await post(one, '/challenge', { device: newDeviceKeys().device })).headers.get('x-ratelimit-remaining'));
    const after = Number((await post(two, '/challenge', { device: newDeviceKeys().device })).headers.get('x-ratelimit-remaining'));
    assert.equal(after, before - 1, 'the other process saw the same address count');
    const refresh = await post(two, '/refresh', { refresh: 'not-a-token', guid: 'g' });
    assert.equal(Number(refresh.headers.get('x-ratelimit-remaining')), Number(refresh.headers.get('x-ratelimit-limit')) - 1, '/refresh counts on its own');
  });
});
