/**
 * Per-address rate limits behind a reverse proxy: `X-Forwarded-For` counts only when the
 * peer is a proxy listed in --trust-proxy; otherwise every request is the peer's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/server/config.js';
import { DgError } from '../../src/protocol/errors.js';
import { newDeviceKeys } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';

/** The per-address budget left after one /challenge sent as if from `forwardedFor`. */
async function remainingAfter(url: string, forwardedFor: string): Promise<number> {
  const r = await fetch(`${url}/auth/v1/challenge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
    body: JSON.stringify({ device: newDeviceKeys().device }),
  });
  assert.equal(r.status, 200);
  return Number(r.headers.get('x-ratelimit-remaining'));
}

describe('trust proxy', () => {
  it('limits each forwarded client on its own when the peer is a trusted proxy', async () => {
    const { url } = await startServer({ trustProxy: ['loopback'] });
    const a1 = await remainingAfter(url, '203.0.113.7');
    const a2 = await remainingAfter(url, '203.0.113.7');
    const b1 = await remainingAfter(url, '198.51.100.9');
    assert.equal(a2, a1 - 1, 'the same forwarded client shares one budget');
    assert.equal(b1, a1, 'another forwarded client has its own');
    // A client cannot slip past its proxy: the proxy appends the real peer, which counts.
    const c1 = await remainingAfter(url, '192.0.2.1, 203.0.113.7');
    assert.equal(c1, a2 - 1, 'the address the trusted proxy saw is the one limited');
  });

  it('ignores X-Forwarded-For from peers that are not listed', async () => {
    for (const trustProxy of [[], ['10.0.0.0/8', '192.0.2.5']]) {
      const { url } = await startServer({ trustProxy });
      const a = await remainingAfter(url, '203.0.113.7');
      const b = await remainingAfter(url, '198.51.100.9');
      assert.equal(b, a - 1, `trustProxy ${JSON.stringify(trustProxy)}: both count against the peer's address`);
    }
  });

  it('takes addresses, CIDR ranges and presets, and refuses anything else', () => {
    const ok = loadConfig([], { DATAGROVE_TRUST_PROXY: '10.0.0.1, 10.0.0.0/8,::1,fd00::/8,loopback,uniquelocal,linklocal' });
    assert.deepEqual(ok.trustProxy, ['10.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'loopback', 'uniquelocal', 'linklocal']);
    assert.deepEqual(loadConfig(['--trust-proxy', '127.0.0.1'], {}).trustProxy, ['127.0.0.1']);
    assert.deepEqual(loadConfig([], {}).trustProxy, []);
    for (const bad of ['true', '*', '0.0.0.0/33', '::/129', 'proxy.example', '10.0.0.0/x', '10.0.0']) {
      assert.throws(() => loadConfig([], { DATAGROVE_TRUST_PROXY: bad }), (e: unknown) => e instanceof DgError && e.code === 'BAD_REQUEST' && e.message.includes('--trust-proxy'), bad);
    }
  });
});
