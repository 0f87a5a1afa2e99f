import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/server/config.js';
import { startServer } from '../helpers/server.js';

describe('service endpoints', () => {
  it('answers /health, /ready and /metrics', async () => {
    const { url } = await startServer();
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { ok: true });
    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /datagrove_http_requests_total/);
    // Node's default metrics, the event-loop delay among them, are exported with the prefix.
    assert.match(metrics, /datagrove_nodejs_eventloop_lag_p99_seconds \d/);
  });

  it('serves /metrics only with the metrics token when one is configured', async () => {
    const token = 'metrics-0123456789-abcdef';
    const { url } = await startServer({ metricsToken: token });
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Basic ${token}`, `Bearer ${token}x`, 'Bearer']) {
      const res = await fetch(`${url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
      assert.equal(res.status, 401, String(authorization));
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="metrics"');
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    }
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /datagrove_http_requests_total/);
    // The rest of the service endpoints stay open.
    assert.equal((await fetch(`${url}/health`)).status, 200);
    assert.equal((await fetch(`${url}/ready`)).status, 200);
  });

  it('takes the metrics token from the environment or the flag, and refuses a short or spaced one', () => {
    assert.equal(loadConfig([], { DATAGROVE_METRICS_TOKEN: 'a-long-enough-token' }).metricsToken, 'a-long-enough-token');
    assert.equal(loadConfig(['--metrics-token', 'another-long-token!']).metricsToken, 'another-long-token!');
    assert.equal(loadConfig([], {}).metricsToken, '');
    for (const bad of ['short', 'has a space in it, long', 'x'.repeat(257)]) {
      assert.throws(() => loadConfig([], { DATAGROVE_METRICS_TOKEN: bad }), /--metrics-token must be/);
    }
  });

  it('answers unknown routes with the error shape', async () => {
    const { url } = await startServer();
    const res = await fetch(`${url}/nope`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'NOT_FOUND');
  });

  it('lets a configured origin call the API and read retry-after; another origin gets no CORS headers', async () => {
    const { url } = await startServer({ origins: ['https://app.example'] });
    const pre = await fetch(`${url}/auth/v1/challenge`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
    const res = await fetch(`${url}/auth/v1/shards`, { headers: { origin: 'https://app.example' } });
    assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(res.headers.get('access-control-expose-headers') ?? '', /retry-after/i, 'a browser app can read retry-after');
    const other = await fetch(`${url}/auth/v1/shards`, { headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });

  it('an OPTIONS that is not a preflight of an allowed origin gets the error shape, never plain text', async () => {
    const { url } = await startServer({ origins: ['https://app.example'] });
    for (const headers of [{}, { 'access-control-request-method': 'POST' }, { origin: 'https://evil.example', 'access-control-request-method': 'POST' }] as Record<string, string>[]) {
      for (const path of ['/auth/v1/profile', '/notify/v1/vapid', '/health']) {
        const res = await fetch(`${url}${path}`, { method: 'OPTIONS', headers });
        assert.equal(res.status, 404, `${path} ${JSON.stringify(headers)}`);
        assert.match(res.headers.get('content-type') ?? '', /application\/json/);
        const body = (await res.json()) as { error: { code: string } };
        assert.equal(body.error.code, 'NOT_FOUND');
        assert.equal(res.headers.get('access-control-allow-origin'), null);
      }
    }
    // An allowed origin without Access-Control-Request-Method gets the preflight answer.
    const plain = await fetch(`${url}/auth/v1/profile`, { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    assert.equal(plain.status, 204);
    assert.equal(plain.headers.get('access-control-allow-origin'), 'https://app.example');
  });

  it('creates its secrets with mode 0600 and reuses them on the next start', async () => {
    const first = await startServer();
    const ring = readFileSync(join(first.dataDir, 'hmac-keys.json'), 'utf8');
    assert.equal(statSync(join(first.dataDir, 'hmac-keys.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(first.dataDir, 'attestation-keys.json')).mode & 0o777, 0o600);
    await first.stop();
    const second = await startServer({ dataDir: first.dataDir });
    assert.equal(readFileSync(join(second.dataDir, 'hmac-keys.json'), 'utf8'), ring);
    assert.equal(second.server.secrets.ring.active, first.server.secrets.ring.active);
  });
});
