/**
 * Rendezvous hashing (PROTOCOL.md "Shards") as the server (protocol/shards.ts) and the client
 * SDK's router (client/shards.ts) apply it, against an implementation written here from the
 * contract alone with node:crypto; and the router's answer to a shard map whose URL it
 * cannot use: a DgError for the sites of that shard, nothing else disturbed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AuthClient, ShardMapInfo } from '../../src/client/auth-client.js';
import { Emitter } from '../../src/client/emitter.js';
import { ShardRouter, tailUrl } from '../../src/client/shards.js';
import type { TailConnection } from '../../src/client/tail-connection.js';
import { DgError } from '../../src/protocol/errors.js';
import { pickShard, shardScore, type Shard } from '../../src/protocol/shards.js';

/** The first 8 bytes, big-endian, of SHA-256 over the UTF-8 of `id + "/" + site`. */
const score = (id: string, site: string): bigint => createHash('sha256').update(Buffer.from(`${id}/${site}`, 'utf8')).digest().readBigUInt64BE(0);

function owner(shards: readonly Shard[], site: string): Shard {
  let best: Shard | undefined;
  let top = -1n;
  for (const s of shards) {
    const v = score(s.id, site);
    if (v > top) [best, top] = [s, v];
  }
  assert.ok(best !== undefined);
  return best;
}

const IDS = ['tail-1', 'tail-2', 'tail-3', 'tail-é', '노드', 'tail-😀', 'a\u0301', '\u00e1', 'x/y', 'tail-\uffff'];
const SHARDS: Shard[] = IDS.map((id, i) => ({ id, url: `wss://n${i}.dg.example/tail` }));

function fakeAuth(map: ShardMapInfo): AuthClient {
  return { shards: async () => map } as unknown as AuthClient;
}

class FakeConnection extends Emitter<{ retrying: { failures: number } }> {
  state = 'connecting';
  retiredWith: DgError | null = null;
  retire(reason: DgError): void {
    this.retiredWith = reason;
    this.state = 'stopped';
  }
  close(): void {
    this.state = 'stopped';
  }
  /** As a TailConnection says a reconnect attempt failed. */
  failing(failures: number): void {
    this.emit('retrying', { failures });
  }
}

describe('rendezvous hashing against the contract', () => {
  it('scores and owners agree for ids and sites beyond ASCII, whatever the order of the map', async () => {
    const router = new ShardRouter({ auth: fakeAuth({ version: 1, shards: [...SHARDS].reverse() }), connect: () => new FakeConnection() as unknown as TailConnection });
    for (let i = 0; i < 2000; i++) {
      const site = i % 2 === 0 ? `site${i}` : `sïte-${i}-ü`;
      for (const id of IDS.slice(0, 3)) assert.equal(shardScore(id, site), score(id, site));
      const want = owner(SHARDS, site);
      assert.equal(pickShard(SHARDS, site)?.id, want.id, site);
      assert.equal(pickShard([...SHARDS].reverse(), site)?.id, want.id, site);
      if (i % 50 === 0) assert.equal(await router.urlFor(site), want.url, site);
    }
    router.close();
  });

  it('gives the example of docs/protocol.md', () => {
    assert.deepEqual(['tail-1', 'tail-2', 'tail-3'].map((id) => score(id, 's1').toString(16)), ['f4b427cd1c7a577d', '632248282e88e695', '7a2872035822dfca']);
    assert.equal(pickShard([{ id: 'tail-3', url: 'c' }, { id: 'tail-2', url: 'b' }, { id: 'tail-1', url: 'a' }], 's1')?.id, 'tail-1');
  });
});

describe('a shard map with a URL the client cannot use', () => {
  const shards: Shard[] = [
    { id: 'good', url: 'ws://127.0.0.1:1/tail' },
    { id: 'broken', url: 'ws://[::1' },
  ];
  const siteOf = (id: string): string => {
    for (let i = 0; ; i++) if (owner(shards, `s${i}`).id === id) return `s${i}`;
  };

  it('tailUrl refuses what is not an http(s) or ws(s) URL with a DgError', () => {
    for (const bad of ['ws://[::1', 'not a url', 'ftp://h/tail', '']) {
      assert.throws(() => tailUrl(bad), (err: unknown) => err instanceof DgError && err.code === 'BAD_REQUEST', bad);
    }
    assert.equal(tailUrl('HTTPS://h'), 'wss://h/tail');
  });

  it('the sites of that shard get a DgError; the others are routed as usual', async () => {
    const router = new ShardRouter({ auth: fakeAuth({ version: 1, shards }), connect: () => new FakeConnection() as unknown as TailConnection });
    await assert.rejects(router.urlFor(siteOf('broken')), (err: unknown) => err instanceof DgError && err.code === 'UNAVAILABLE' && /broken/.test(err.message));
    assert.equal(await router.urlFor(siteOf('good')), 'ws://127.0.0.1:1/tail');
    await assert.rejects(router.redirected(siteOf('good'), 'ws://[::1'), (err: unknown) => err instanceof DgError);
    router.close();
  });

  it('watching a connection that cannot reach its node does not throw out of the router', async () => {
    const conns: FakeConnection[] = [];
    const router = new ShardRouter({
      auth: fakeAuth({ version: 2, shards }),
      connect: () => {
        const c = new FakeConnection();
        conns.push(c);
        return c as unknown as TailConnection;
      },
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => void unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      await router.connectionFor(siteOf('good'));
      conns[0]?.failing(2);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(unhandled, []);
      assert.equal(conns[0]?.retiredWith, null, 'its node is still in the map');
    } finally {
      router.close();
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
