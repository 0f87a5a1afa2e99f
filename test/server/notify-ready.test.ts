/**
 * A process running only the notify role hears the bus the way a tail node does: when its
 * NATS connection is black-holed (open, carrying nothing) `/ready` turns 503 within
 * seconds, not once NATS's own pings time out (about 30 s), and 200 again once the
 * connection carries messages. A load balancer then stops sending it subscriptions and
 * pushes it cannot judge (presence and publishes come over the bus). The test runs a NATS
 * server of its own, behind a proxy it stalls (never the machine's NATS).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { natsServerSkip, startOwnNats } from '../helpers/nats-server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { until, spawnRoles } from './child.js';

const skip = natsServerSkip() || (await pgSkip());
const schema = `test_notify_ready_${randomBytes(4).toString('hex')}`;
/** Well under NATS's own ping timeout (3 pings 10 s apart), above the echo's 5 s. */
const NOTICE_MS = 10_000;

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

/** `/ready`'s status and body (a refused or hung request counts as status 0). */
async function ready(url: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

describe('/ready of a notify-only process whose NATS connection is black-holed', { skip }, () => {
  it('turns 503 within seconds, and 200 again once the connection carries messages', { timeout: 90_000 }, async () => {
    const nats = await startOwnNats();
    after(() => nats.stop());
    const proxy = await startProxy(nats.url);
    after(() => proxy.stop());
    const { child, url } = await spawnRoles('notify', proxy.url, PG_URL, schema, 'dg-notify-ready-');

    proxy.stall();
    const down = await until(`/ready to be 503 within ${NOTICE_MS} ms`, async () => {
      const r = await ready(url);
      return r.status === 503 ? r : undefined;
    }, NOTICE_MS, 200).catch((err: unknown) => {
      throw new Error(`${String(err)}; /ready stayed 200 with the bus black-holed\n${child.output()}`);
    });
    assert.match(down.body, /bus carries no messages/, down.body);

    proxy.resume();
    await until('/ready to be 200 again', async () => ((await ready(url)).status === 200 ? true : undefined), NOTICE_MS, 200);
    const exit = await child.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, child.output());
  });
});
