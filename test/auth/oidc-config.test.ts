/** OIDC provider configuration (--oidc / DATAGROVE_OIDC) and the dev IdP's production guard. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { parseOidcProviders, scopesOf } from '../../src/auth/oidc/config.js';
import { createDevIdp } from '../../src/devidp/index.js';
import { DgError } from '../../src/protocol/errors.js';
import { loadConfig } from '../../src/server/config.js';

const google = { id: 'google', issuer: 'https://accounts.google.com', clientId: 'cid', clientSecret: 'secret' };

describe('OIDC configuration', () => {
  it('parses providers from the flag or the environment', () => {
    assert.deepEqual(loadConfig(['--oidc', JSON.stringify([google])], {}).oidc, [google]);
    assert.deepEqual(loadConfig([], { DATAGROVE_OIDC: JSON.stringify([{ ...google, scopes: ['profile'] }]) }).oidc, [{ ...google, scopes: ['profile'] }]);
    assert.deepEqual(loadConfig([], {}).oidc, []);
    assert.equal(scopesOf({ ...google, scopes: ['profile', 'email'] }), 'openid email profile');
  });

  it('refuses malformed providers with a clear message', () => {
    const bad: [unknown, RegExp][] = [
      ['not json', /JSON array/],
      [JSON.stringify({}), /oidc/],
      [JSON.stringify([{ ...google, id: 'Bad Id' }]), /id/],
      [JSON.stringify([{ ...google, issuer: 'http://accounts.google.com' }]), /https:/],
      [JSON.stringify([{ ...google, issuer: 'nope' }]), /not a URL/],
      [JSON.stringify([google, google]), /twice/],
      [JSON.stringify([{ ...google, extra: 1 }]), /oidc/],
      [JSON.stringify([{ id: 'x', issuer: 'https://x' }]), /clientId/],
    ];
    for (const [text, message] of bad) {
      assert.throws(() => parseOidcProviders(String(text)), (err: unknown) => err instanceof DgError && err.code === 'BAD_REQUEST' && message.test(err.message), String(text));
    }
    assert.equal(parseOidcProviders(JSON.stringify([{ ...google, issuer: 'http://127.0.0.1:9000/idp' }])).length, 1, 'http on loopback');
  });

  it('refuses the dev IdP with NODE_ENV=production', () => {
    const log = pino({ level: 'silent' });
    assert.throws(
      () => createDevIdp({ publicUrl: () => 'http://localhost:8080', log, env: { NODE_ENV: 'production' } }),
      (err: unknown) => err instanceof DgError && /NODE_ENV=production/.test(err.message),
    );
    assert.equal(createDevIdp({ publicUrl: () => 'http://localhost:8080', log, env: {} }).provider().issuer, 'http://localhost:8080/dev-idp');
  });
});
