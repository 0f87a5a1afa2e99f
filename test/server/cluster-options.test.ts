/**
 * The cluster options of `datagrove serve` (--node-id, --tail-url, --node-ttl-ms,
 * --db-schema): environment and flags, refusals, and the monolith's one-shard map.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/server/config.js';
import { createSite, get, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';

describe('cluster options', () => {
  it('read the environment, and a flag wins', () => {
    const env = { DATAGROVE_NODE_ID: 'env-node', DATAGROVE_TAIL_URL: 'wss://t.example/tail', DATAGROVE_NODE_TTL_MS: '4000', DATAGROVE_DB_SCHEMA: 'dg_env' };
    const c = loadConfig([], env);
    assert.deepEqual([c.nodeId, c.tailUrl, c.nodeTtlMs, c.dbSchema], ['env-node', 'wss://t.example/tail', 4000, 'dg_env']);
    const f = loadConfig(['--node-id', 'flag-node', '--tail-url=ws://10.0.0.1:9/tail', '--node-ttl-ms', '900', '--db-schema', 'dg_flag'], env);
    assert.deepEqual([f.nodeId, f.tailUrl, f.nodeTtlMs, f.dbSchema], ['flag-node', 'ws://10.0.0.1:9/tail', 900, 'dg_flag']);
    const d = loadConfig([], {});
    assert.deepEqual([d.nodeId, d.tailUrl, d.nodeTtlMs, d.dbSchema], ['', '', 10000, 'public']);
  });

  it('refuse bad values with the option named', () => {
    const cases: [string[], RegExp][] = [
      [['--node-id', 'has space'], /--node-id/],
      [['--node-id', 'x'.repeat(129)], /--node-id/],
      [['--tail-url', 'http://t.example/tail'], /--tail-url must be a ws:\/\/ or wss:\/\/ URL/],
      [['--node-ttl-ms', '99'], /--node-ttl-ms must be between 100 and 600000/],
      [['--node-ttl-ms', '600001'], /--node-ttl-ms/],
      [['--db-schema', 'Bad-Schema'], /--db-schema must be a lower-case SQL identifier/],
      [['--db-schema', 'x; DROP TABLE y'], /--db-schema/],
    ];
    for (const [argv, message] of cases) assert.throws(() => loadConfig(argv, {}), message, argv.join(' '));
  });

  it('the monolith lists itself as its one shard, at its bound URL, and never redirects', async () => {
    const srv = await startServer();
    const r = await get<{ version: number; shards: { id: string; url: string }[] }>(srv.url, '/shards');
    assert.deepEqual(r.body, { version: 1, shards: [{ id: 'tail-1', url: srv.wsUrl }] });
    const named = await startServer({ nodeId: 'solo', tailUrl: 'wss://tail.example/tail' });
    const n = await get<{ shards: { id: string; url: string }[] }>(named.url, '/shards');
    assert.deepEqual(n.body.shards, [{ id: 'solo', url: 'wss://tail.example/tail' }]);
    // With one node every site is local: a lease is answered, not redirected.
    const dev = await signupDevice(srv.url);
    const site = await createSite(srv.url, dev.access);
    const c = await TailClient.connect(srv.wsUrl, dev.access);
    const l = await c.call<{ role: string; redirect?: string }>('lease', { site, log: 'x' });
    assert.equal(l.role, 'leader');
    assert.equal(l.redirect, undefined);
    c.close();
  });
});
