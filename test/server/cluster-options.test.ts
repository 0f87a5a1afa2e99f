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
      // A SQLite file is one process's: a cluster node with one would lose what it acknowledged.
      [['--bus', 'nats://127.0.0.1:4222'], /--bus nats:\/\/ needs --db postgres:\/\//],
      [['--bus', 'nats://127.0.0.1:4222', '--db', 'sqlite'], /needs --db postgres/],
      [['--public-url', 'notaurl'], /--public-url must be an http:\/\/ or https:\/\/ URL/],
      [['--public-url', 'ftp://x.example'], /--public-url/],
      [['--public-url', 'https://x.example/?a=1'], /--public-url/],
      [['--public-url', 'https://user:pw@x.example'], /--public-url/],
      [['--origins', 'not an origin'], /--origins: 'not an origin' is not an origin/],
      [['--origins', 'https://app.example/'], /--origins/],
      [['--origins', 'https://App.example'], /--origins/],
      [['--origins', 'https://app.example/path'], /--origins/],
      [['--push-hosts', 'http://x/y'], /--push-hosts: 'http:\/\/x\/y' is not a host/],
      [['--push-hosts', 'push.example:99999'], /--push-hosts/],
      [['--push-hosts', 'a b'], /--push-hosts/],
      [['--push-hosts', ','], /--push-hosts: no host given/],
      [['--vapid-subject', 'mailto:'], /--vapid-subject must be a mailto: URL with an address/],
      [['--vapid-subject', 'https:'], /--vapid-subject/],
      [['--vapid-subject', 'http://x.example'], /--vapid-subject/],
      [['--lease-grace-ms', '99999999999999'], /--lease-grace-ms must be at most 600000/],
      [['--push-interval-ms', '99999999999'], /--push-interval-ms must be at most 86400000/],
      [['--log-level', 'loud'], /--log-level must be one of fatal, error, warn, info, debug, trace, silent/],
    ];
    for (const [argv, message] of cases) assert.throws(() => loadConfig(argv, {}), message, argv.join(' '));
  });

  it('accept the well-formed values of the options they check', () => {
    const c = loadConfig(
      [
        '--bus', 'nats://127.0.0.1:4222', '--db', 'postgres://u@db/x',
        '--public-url', 'https://api.example.com/dg',
        '--origins', 'https://app.example,http://localhost:5173,*',
        '--push-hosts', 'push.example,push.example:8443,*.push.example,[::1]:9443',
        '--lease-grace-ms', '600000', '--push-interval-ms', '86400000', '--log-level', 'silent',
      ],
      {},
    );
    assert.equal(c.publicUrl, 'https://api.example.com/dg');
    assert.deepEqual(c.origins, ['https://app.example', 'http://localhost:5173', '*']);
    assert.equal(c.pushHosts.length, 4);
    assert.equal(c.leaseGraceMs, 600000);
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
