/**
 * The configured OpenID Connect providers, each discovered lazily on first use (openid-client
 * 6) and cached. A failed discovery is not cached: the next login tries again, and the caller
 * gets UNAVAILABLE meanwhile. Client authentication at the token endpoint is
 * client_secret_post, or client_secret_basic when the provider only offers that.
 */
import * as client from 'openid-client';
import type { FastifyBaseLogger } from 'fastify';
import { DgError } from '../../protocol/errors.js';
import { isLoopbackHttp, type OidcProviderConfig } from './config.js';

/** Seconds a discovery or token request may take. */
const HTTP_TIMEOUT_SEC = 10;

interface Cached {
  /** The provider's settings when it was discovered; a change (new issuer, secret) rediscovers. */
  key: string;
  config: Promise<client.Configuration>;
}

export class OidcProviders {
  readonly #list: () => readonly OidcProviderConfig[];
  readonly #log: FastifyBaseLogger;
  readonly #cache = new Map<string, Cached>();

  constructor(list: () => readonly OidcProviderConfig[], log: FastifyBaseLogger) {
    this.#list = list;
    this.#log = log;
  }

  /** The provider with this id, or NOT_FOUND. */
  spec(id: string): OidcProviderConfig {
    const p = this.#list().find((x) => x.id === id);
    if (p === undefined) throw new DgError('NOT_FOUND', `provider: no provider '${id}' is configured`);
    return p;
  }

  /** The discovered configuration of `p`, or UNAVAILABLE when its issuer cannot be reached. */
  async configuration(p: OidcProviderConfig): Promise<client.Configuration> {
    const key = JSON.stringify([p.issuer, p.clientId, p.clientSecret]);
    let c = this.#cache.get(p.id);
    if (c === undefined || c.key !== key) {
      c = { key, config: this.#discover(p) };
      this.#cache.set(p.id, c);
    }
    const cached = c;
    try {
      return await cached.config;
    } catch (err) {
      if (this.#cache.get(p.id) === cached) this.#cache.delete(p.id);
      this.#log.warn({ err, provider: p.id, issuer: p.issuer }, 'OIDC discovery failed');
      throw new DgError('UNAVAILABLE', `provider '${p.id}' is unreachable (discovery failed); retry later`, { cause: err, retryAfter: 30 });
    }
  }

  async #discover(p: OidcProviderConfig): Promise<client.Configuration> {
    const insecure = isLoopbackHttp(p.issuer);
    const execute = insecure ? [client.allowInsecureRequests] : [];
    const found = await client.discovery(new URL(p.issuer), p.clientId, p.clientSecret, client.ClientSecretPost(p.clientSecret), {
      execute,
      timeout: HTTP_TIMEOUT_SEC,
    });
    const methods = found.serverMetadata().token_endpoint_auth_methods_supported;
    if (methods === undefined || methods.includes('client_secret_post') || !methods.includes('client_secret_basic')) return found;
    const basic = new client.Configuration(found.serverMetadata(), p.clientId, p.clientSecret, client.ClientSecretBasic(p.clientSecret));
    basic.timeout = HTTP_TIMEOUT_SEC;
    for (const f of execute) f(basic);
    return basic;
  }
}
