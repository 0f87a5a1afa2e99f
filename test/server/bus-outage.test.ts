/**
 * Stopping while NATS is away: a process told to stop (SIGTERM) while its NATS server is
 * down, or up but answering nothing (a black-holed connection), exits 0 within seconds
 * instead of waiting on the server for its drain until the 15 s shutdown limit (exit 1).
 * And a NATS server that asks for credentials: those written in `--bus` reach it, and a
 * refused connection says why. These tests run NATS servers of their own (never the
 * machine's), and cut them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { NatsBus, type BusLog } from '../../src/bus/nats.js';
import { natsServerSkip, startOwnNats, NATS_SERVER_BIN } from '../helpers/nats-server.js';
import { PG_URL, dropPgSchemas, pgSkip, portOpen } from '../helpers/services.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { freePort, sleep, until, spawnRoles } from './child.js';

const natsSkip = natsServerSkip();
const clusterSkip = natsSkip || (await pgSkip());
const schema = `test_bus_outage_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (clusterSkip) return;
  await dropPgSchemas(schema);
});

function recorder(): { lines: string[]; log: BusLog } {
  const lines: string[] = [];
  const at = (_obj: object, msg: string) => void lines.push(msg);
  return { lines, log: { info: at, warn: at, error: at } };
}

describe('closing the NATS bus while its server is down', { skip: natsSkip }, () => {
  it('closes at once instead of waiting for a server that is not there', async () => {
    const nats = await startOwnNats();
    after(() => nats.stop());
    const { lines, log } = recorder();
    const bus = await NatsBus.connect(nats.url, { log });
    bus.subscribe('outage.one', (m) => m);
    bus.subscribe('outage.two', () => undefined, { queue: 'q' });
    await bus.flush();

    await nats.stop();
    await until('the disconnect', async () => (lines.includes('bus disconnected; reconnecting') ? true : undefined), 5000, 20);
    // Let a reconnect attempt or two fail first, as in an outage of some length.
    await sleep(1500);
    const t0 = Date.now();
    await bus.close();
    const ms = Date.now() - t0;
    assert.ok(ms < 1500, `close() took ${ms} ms with the server down`);
    assert.equal(bus.healthy(), false);
  });
});

describe('SIGTERM while NATS does not answer', { skip: clusterSkip }, () => {
  it('an auth,notify process exits 0 within seconds when its NATS connection is black-holed', { timeout: 60_000 }, async () => {
    const nats = await startOwnNats();
    after(() => nats.stop());
    const proxy = await startProxy(nats.url);
    after(() => proxy.stop());
    const { child, url } = await spawnRoles('auth,notify', proxy.url, PG_URL, schema, 'dg-outage-');

    // The connection stays open and carries nothing: /ready notices it by its own echoes.
    proxy.stall();
    await until('/ready to be 503', async () => ((await fetch(`${url}/ready`)).status === 503 ? true : undefined), 15_000);

    const t0 = Date.now();
    const exit = await child.stop('SIGTERM');
    const ms = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null }, child.output());
    assert.ok(ms < 8000, `exit took ${ms} ms`);
  });
});

/** A NATS server of this test's own that asks for `args` (--user/--pass, or --auth TOKEN). */
async function natsWithAuth(args: string[]): Promise<string> {
  const port = await freePort();
  const child = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  after(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; !(await portOpen('127.0.0.1', port)); i++) {
    if (child.exitCode !== null || i > 100) throw new Error(`nats-server did not start on port ${port}`);
    await sleep(50);
  }
  return `127.0.0.1:${port}`;
}

describe('a NATS server that asks for credentials', { skip: natsSkip }, () => {
  it('is reached with the user and password or the token written in the bus URL', async () => {
    const withUser = await natsWithAuth(['--user', 'dg', '--pass', 'p@ss:word']);
    const withToken = await natsWithAuth(['--auth', 's3cr3t-token']);
    for (const url of [`nats://dg:${encodeURIComponent('p@ss:word')}@${withUser}`, `nats://s3cr3t-token@${withToken}`]) {
      const bus = await NatsBus.connect(url);
      try {
        bus.subscribe('creds.echo', (m) => ({ back: m }));
        await bus.flush();
        assert.deepEqual(await bus.request('creds.echo', 1), { back: 1 });
      } finally {
        await bus.close();
      }
    }
  });

  it('refused, says why without the password', async () => {
    const withUser = await natsWithAuth(['--user', 'dg', '--pass', 'right']);
    await assert.rejects(NatsBus.connect(`nats://dg:wrong-one@${withUser}`), (e: unknown) => {
      const message = (e as Error).message;
      assert.match(message, /^cannot connect to the bus at nats:\/\/\*\*\*@127\.0\.0\.1:\d+: Authorization Violation$/);
      assert.doesNotMatch(message, /wrong-one/);
      return true;
    });
  });
});
