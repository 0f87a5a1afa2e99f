import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { call, createSite, newDeviceKeys, signupDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { countRows } from './db.js';

type ErrorBody = { error: { code: string; message: string } };

interface Case {
  name: string;
  method?: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  raw?: string;
  contentType?: string;
  auth?: boolean;
  status: number;
  code: string;
  message?: RegExp;
}

describe('bad input at the auth boundary', async () => {
  const { url, dataDir } = await startServer();
  const d = await signupDevice(url);
  const site = await createSite(url, d.access);
  const k = newDeviceKeys();
  const id43 = 'A'.repeat(43);
  const sig = `${'B'.repeat(85)}A`;

  const cases: Case[] = [
    { name: 'challenge without device', path: '/challenge', body: {}, status: 400, code: 'BAD_REQUEST', message: /body: missing device/ },
    { name: 'challenge with a numeric device', path: '/challenge', body: { device: 12345 }, status: 400, code: 'BAD_REQUEST', message: /body\.device/ },
    { name: 'challenge with a short device id', path: '/challenge', body: { device: 'abc' }, status: 400, code: 'BAD_REQUEST', message: /body\.device/ },
    { name: 'challenge with a device id of bad characters', path: '/challenge', body: { device: `${'A'.repeat(42)}=` }, status: 400, code: 'BAD_REQUEST', message: /^body\.device: expected a device id: 32 bytes in base64url without padding \(43 characters\)$/ },
    { name: 'challenge with a device id spelled with unused bits set', path: '/challenge', body: { device: `${'A'.repeat(42)}B` }, status: 400, code: 'BAD_REQUEST', message: /body\.device/ },
    { name: 'challenge with an array body', path: '/challenge', body: [k.device], status: 400, code: 'BAD_REQUEST' },
    { name: 'challenge with null', path: '/challenge', raw: 'null', status: 400, code: 'BAD_REQUEST' },
    { name: 'challenge with non-JSON', path: '/challenge', raw: '{"device":', status: 400, code: 'BAD_REQUEST', message: /JSON/ },
    { name: 'challenge with an empty JSON body', path: '/challenge', raw: '', status: 400, code: 'BAD_REQUEST', message: /body/ },
    { name: 'challenge with a blank JSON body', path: '/challenge', raw: ' \r\n', status: 400, code: 'BAD_REQUEST', message: /body/ },
    { name: 'an envelope deleted with an empty JSON body', method: 'DELETE', path: `/envelopes/${'A'.repeat(22)}`, raw: '', auth: true, status: 404, code: 'NOT_FOUND' },
    { name: 'challenge as text/plain', path: '/challenge', raw: JSON.stringify({ device: k.device }), contentType: 'text/plain', status: 400, code: 'BAD_REQUEST' },
    { name: 'challenge as a form', path: '/challenge', raw: `device=${k.device}`, contentType: 'application/x-www-form-urlencoded', status: 400, code: 'BAD_REQUEST', message: /content-type/ },
    { name: 'challenge over 64 KiB', path: '/challenge', raw: JSON.stringify({ device: k.device, pad: 'x'.repeat(70_000) }), status: 413, code: 'TOO_LARGE' },
    { name: 'signup without boxKey', path: '/signup', body: { device: k.device, nonce: id43, sig }, status: 400, code: 'BAD_REQUEST', message: /missing boxKey/ },
    { name: 'signup with a short sig', path: '/signup', body: { device: k.device, boxKey: k.boxKey, nonce: id43, sig: 'abc' }, status: 400, code: 'BAD_REQUEST', message: /body\.sig/ },
    { name: 'signup with a long name', path: '/signup', body: { device: k.device, boxKey: k.boxKey, nonce: id43, sig, name: 'n'.repeat(129) }, status: 400, code: 'BAD_REQUEST', message: /body\.name/ },
    { name: 'signup with a numeric name', path: '/signup', body: { device: k.device, boxKey: k.boxKey, nonce: id43, sig, name: 7 }, status: 400, code: 'BAD_REQUEST', message: /body\.name/ },
    { name: 'signup with an unissued nonce', path: '/signup', body: { device: k.device, boxKey: k.boxKey, nonce: id43, sig }, status: 401, code: 'UNAUTHORIZED' },
    { name: 'login without nonce', path: '/login', body: { device: k.device, sig }, status: 400, code: 'BAD_REQUEST', message: /missing nonce/ },
    { name: 'login with a base64 (not url) sig', path: '/login', body: { device: k.device, nonce: id43, sig: `${'+'.repeat(86)}` }, status: 400, code: 'BAD_REQUEST', message: /^body\.sig: expected a 64-byte Ed25519 signature/ },
    { name: 'refresh without refresh', path: '/refresh', body: { guid: 'guid-0001' }, status: 400, code: 'BAD_REQUEST', message: /missing refresh/ },
    { name: 'refresh with a numeric token', path: '/refresh', body: { refresh: 1234567890, guid: 'guid-0001' }, status: 400, code: 'BAD_REQUEST', message: /body\.refresh/ },
    { name: 'refresh with an empty guid', path: '/refresh', body: { refresh: id43, guid: '' }, status: 400, code: 'BAD_REQUEST', message: /body\.guid/ },
    { name: 'challenge with a __proto__ key', path: '/challenge', raw: `{"device":"${k.device}","__proto__":{"x":1}}`, status: 400, code: 'BAD_REQUEST', message: /__proto__/ },
    { name: 'sites with a numeric name', path: '/sites', body: { name: 5 }, auth: true, status: 400, code: 'BAD_REQUEST', message: /body\.name/ },
    { name: 'sites without a token', path: '/sites', body: { name: 5 }, status: 401, code: 'UNAUTHORIZED' },
    { name: 'a site id of bad characters', method: 'GET', path: '/sites/bad!id', auth: true, status: 400, code: 'BAD_REQUEST', message: /params\.site/ },
    { name: 'an unknown site', method: 'GET', path: '/sites/nosuchsite', auth: true, status: 404, code: 'NOT_FOUND' },
    { name: 'rotated with a string epoch', path: `/sites/${site}/rotated`, body: { keyEpoch: '2' }, auth: true, status: 400, code: 'BAD_REQUEST', message: /body\.keyEpoch/ },
    { name: 'rotated with a fractional epoch', path: `/sites/${site}/rotated`, body: { keyEpoch: 1.5 }, auth: true, status: 400, code: 'BAD_REQUEST', message: /body\.keyEpoch/ },
    { name: 'rotated on an unknown site', path: '/sites/nosuchsite/rotated', body: { keyEpoch: 2 }, auth: true, status: 404, code: 'NOT_FOUND' },
    { name: 'declare without grant', path: '/declare', body: {}, auth: true, status: 400, code: 'BAD_REQUEST', message: /missing grant/ },
    { name: 'declare with a non-JWS', path: '/declare', body: { grant: 'abc' }, auth: true, status: 400, code: 'BAD_REQUEST', message: /body\.grant/ },
    { name: 'declare with a JWS of garbage', path: '/declare', body: { grant: 'abc.def.ghi' }, auth: true, status: 400, code: 'BAD_REQUEST', message: /grant/ },
    { name: 'declare with an oversized grant', path: '/declare', body: { grant: `${'a'.repeat(9000)}.b.c` }, auth: true, status: 400, code: 'BAD_REQUEST', message: /body\.grant/ },
    { name: 'join without site', path: '/join', body: { grant: id43 }, auth: true, status: 400, code: 'BAD_REQUEST', message: /missing site/ },
    { name: 'join with a bad grant reference', path: '/join', body: { site, grant: `${'!'.repeat(43)}` }, auth: true, status: 400, code: 'BAD_REQUEST', message: /^body\.grant: expected a grant: its hash \(43 base64url characters\) or its compact JWS$/ },
    { name: 'lease with a bad log name', path: '/lease', body: { site, log: 'has space' }, auth: true, status: 400, code: 'BAD_REQUEST', message: /^body\.log: expected a log name \(1 to 128 characters/ },
    { name: 'lease without site', path: '/lease', body: { log: 'chat' }, auth: true, status: 400, code: 'BAD_REQUEST', message: /missing site/ },
    { name: 'revoke with a bad device id', path: '/revoke', body: { device: 'x' }, auth: true, status: 400, code: 'BAD_REQUEST', message: /body\.device/ },
    { name: 'an unknown route', method: 'GET', path: '/nope', status: 404, code: 'NOT_FOUND' },
  ];

  it('answers each bad request with the right code, names the field, and stores nothing', async () => {
    const before = countRows(dataDir);
    for (const c of cases) {
      const r = await call<ErrorBody>(url, c.method ?? 'POST', c.path, {
        body: c.body,
        raw: c.raw,
        contentType: c.contentType,
        token: c.auth === true ? d.access : undefined,
      });
      assert.equal(r.status, c.status, `${c.name}: ${r.text}`);
      assert.equal(r.body.error.code, c.code, c.name);
      if (c.message !== undefined) assert.match(r.body.error.message, c.message, c.name);
      assert.deepEqual(Object.keys(r.body), ['error'], c.name);
    }
    assert.deepEqual(countRows(dataDir), before, 'no bad request stored anything');
    // The server is still healthy and the device still works.
    assert.equal((await call(url, 'GET', '/me', { token: d.access })).status, 200);
    assert.equal((await fetch(`${url}/ready`)).status, 200);
  });

  it('takes an empty body sent with a JSON content-type as no body, where the body is optional', async () => {
    // Many HTTP clients send content-type: application/json on every request.
    const d = await signupDevice(url);
    const site = await call<{ site: string }>(url, 'POST', '/sites', { raw: '', token: d.access });
    assert.equal(site.status, 201, site.text);
    assert.equal(typeof site.body.site, 'string');
    const out = await call(url, 'POST', '/logout', { raw: '\n', token: d.access });
    assert.ok(out.status === 200 || out.status === 204, out.text);
    assert.equal((await call(url, 'GET', '/me', { token: d.access })).status, 401, 'the logout took effect');
  });

  it('refuses strings with lone surrogates, which no store keeps as sent, and takes paired ones', async () => {
    const d = await signupDevice(url);
    const name = (raw: string) => call(url, 'POST', `/devices/${d.device}/name`, { raw: `{"name":"${raw}"}`, token: d.access });
    for (const bad of ['a\\ud800b', '\\udc00x', 'x\\uDBFF']) {
      const r = await name(bad);
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
      assert.match(r.text, /lone UTF-16 surrogate/);
    }
    const envelope = await call(url, 'POST', '/envelopes', { raw: `{"to":"${d.device}","data":"\\udc00x"}`, token: d.access });
    assert.equal(envelope.status, 400, envelope.text);
    assert.match(envelope.text, /lone UTF-16 surrogate/);
    // A pair is one character (U+1F600) and round-trips.
    const ok = await name('smile \\ud83d\\ude00');
    assert.ok(ok.status < 300, ok.text);
    const me = await call<{ devices: { device: string; name: string }[] }>(url, 'GET', '/me', { token: d.access });
    assert.equal(me.body.devices.find((x) => x.device === d.device)?.name, 'smile \u{1F600}');
  });

  it('never leaks internal detail in a message', async () => {
    const r = await call<ErrorBody>(url, 'POST', '/refresh', { body: { refresh: id43, guid: 'guid-0001' } });
    assert.equal(r.status, 401);
    assert.doesNotMatch(r.body.error.message, /sqlite|stack|at \w+ \(|node_modules/i);
  });
});
