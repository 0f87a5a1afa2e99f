/**
 * Configuration of the OpenID Connect providers (`DATAGROVE_OIDC` / `--oidc`): a JSON array
 * `[{id, issuer, clientId, clientSecret, scopes?, prompt?}]`. Google works by configuration
 * alone (`issuer: "https://accounts.google.com"`). Issuers must be https:, except on a
 * loopback host (a local or development provider).
 */
import { Type, type Static } from '@sinclair/typebox';
import { PROVIDER_ID_PATTERN } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { describeError } from '../validation.js';

export const MAX_OIDC_PROVIDERS = 32;

export const OidcProviderSchema = Type.Object(
  {
    id: Type.String({ pattern: PROVIDER_ID_PATTERN }),
    issuer: Type.String({ minLength: 1, maxLength: 2048 }),
    clientId: Type.String({ minLength: 1, maxLength: 1024 }),
    clientSecret: Type.String({ minLength: 1, maxLength: 4096 }),
    /** Added to `openid email`, which are always asked for. */
    scopes: Type.Optional(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,128}$' }), { maxItems: 32 })),
    /** OIDC `prompt` sent with every authorization request (e.g. `select_account`, `login`). */
    prompt: Type.Optional(Type.String({ pattern: '^[a-z_ ]{1,64}$' })),
  },
  { additionalProperties: false },
);
export type OidcProviderConfig = Static<typeof OidcProviderSchema>;

const OidcProvidersSchema = Type.Array(OidcProviderSchema, { maxItems: MAX_OIDC_PROVIDERS });

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether requests to this issuer may use plain http (loopback hosts only). */
export function isLoopbackHttp(issuer: string): boolean {
  try {
    const u = new URL(issuer);
    return u.protocol === 'http:' && LOOPBACK.has(u.hostname);
  } catch {
    return false;
  }
}

/** Checks a list of providers; throws BAD_REQUEST naming the problem. */
export function checkOidcProviders(list: unknown): OidcProviderConfig[] {
  const problem = describeError('oidc', OidcProvidersSchema, list);
  if (problem !== null) throw new DgError('BAD_REQUEST', `--oidc (DATAGROVE_OIDC): ${problem}`);
  const providers = list as OidcProviderConfig[];
  const seen = new Set<string>();
  for (const p of providers) {
    if (seen.has(p.id)) throw new DgError('BAD_REQUEST', `--oidc (DATAGROVE_OIDC): provider id '${p.id}' appears twice`);
    seen.add(p.id);
    let url: URL;
    try {
      url = new URL(p.issuer);
    } catch {
      throw new DgError('BAD_REQUEST', `--oidc (DATAGROVE_OIDC): provider '${p.id}': issuer is not a URL`);
    }
    if (url.protocol !== 'https:' && !isLoopbackHttp(p.issuer)) {
      throw new DgError('BAD_REQUEST', `--oidc (DATAGROVE_OIDC): provider '${p.id}': issuer must be https: (http: only on a loopback host)`);
    }
  }
  return providers;
}

/** Parses the JSON text of `DATAGROVE_OIDC` / `--oidc`. */
export function parseOidcProviders(text: string): OidcProviderConfig[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new DgError('BAD_REQUEST', '--oidc (DATAGROVE_OIDC) must be a JSON array of {id, issuer, clientId, clientSecret, scopes?}');
  }
  return checkOidcProviders(value);
}

/** The scopes of an authorization request: `openid email` and the configured extras. */
export function scopesOf(p: OidcProviderConfig): string {
  return [...new Set(['openid', 'email', ...(p.scopes ?? [])])].join(' ');
}
