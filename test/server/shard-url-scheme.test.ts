/**
 * The monolith's one shard is served at the public URL with `ws`/`wss` and the path `/tail`
 * (docs/protocol.md "GET /auth/v1/shards"), however the operator spelled the URL: URL
 * schemes and host names are case-insensitive, and a WebSocket client refuses `https:`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/server.js';

interface ShardsReply {
  version: number;
  shards: { id: string; url: string }[];
}

describe('the shard URL of the monolith', () => {
  const cases: [string, string][] = [
    ['https://dg.example.com', 'wss://dg.example.com/tail'],
    ['http://dg.example.com:8080/', 'ws://dg.example.com:8080/tail'],
    ['https://dg.example.com/base/', 'wss://dg.example.com/base/tail'],
    ['HTTPS://DG.Example.com', 'wss://dg.example.com/tail'],
    ['Http://dg.example.com:8080', 'ws://dg.example.com:8080/tail'],
  ];
  for (const [publicUrl, want] of cases) {
    it(`${publicUrl} → ${want}`, async () => {
      const { url } = await startServer({ publicUrl });
      const res = await fetch(`${url}/auth/v1/shards`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as ShardsReply;
      assert.deepEqual(body, { version: 1, shards: [{ id: 'tail-1', url: want }] });
    });
  }
});
