/**
 * The Auth API over HTTP (PROTOCOL.md "Auth API", under /auth/v1): one method per endpoint
 * the SDK needs. Stateless: methods that need a Bearer token take it as an argument (the
 * Session supplies fresh ones). `fetch` is injected or the global one.
 *
 * Errors: every failure is a DgError with a registry code: the server's `{error:{code}}`,
 * UNAVAILABLE for network failures and timeouts, INTERNAL for a malformed reply.
 */
import { DgError } from '../protocol/errors.js';
import type { Right } from '../protocol/ids.js';
import { asObj, bool, int, optStr, str, strArray, wireError, type Obj } from './reply-shape.js';

export type FetchLike = (input: string, init?: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export interface SessionTokens {
  user: string;
  device: string;
  access: string;
  refresh: string;
  /** Seconds the access token lives. */
  expiresIn: number;
}
/** What an OpenID Connect sign-in gives beyond a login's tokens. */
export interface OidcSignedIn extends SessionTokens {
  /** The server's identity attestation: this device key signed in as a verified email. */
  identity: string;
  /** This sign-in added the device to the user (another device of the user may approve it). */
  newDevice: boolean;
}

export interface RefreshedTokens {
  access: string;
  refresh: string;
  expiresIn: number;
}
export interface MeInfo {
  user: string;
  device: string;
  /** `boxSig`: the device's signature of its box key, when it sent one (checked by whoever seals to the box key). */
  devices: { device: string; boxKey: string; boxSig?: string; name: string; createdAt: number; revoked: boolean }[];
  identities: { email: string; provider: string }[];
}
/** A signed-in session of the user: one sign-in (signup, login, OpenID Connect login) of one device. */
export interface SessionInfo {
  id: string;
  device: string;
  /** ms since the epoch. */
  createdAt: number;
  /** true for the session of the token that asked. */
  current: boolean;
}
export interface SiteInfo {
  site: string;
  owner: string;
  rights: Right[];
  keyEpoch: number;
  rotationRequired: boolean;
}
export interface JoinInfo {
  site: string;
  logs: string[];
  rights: Right[];
  expiresAt: number | null;
}
export interface HttpLease {
  token: string;
  expiresIn: number;
  shard: { id: string; url: string };
}
export interface ShardMapInfo {
  version: number;
  shards: { id: string; url: string }[];
}

export interface AuthClientOptions {
  /** The server's base URL, e.g. "https://example.com" (the API is under /auth/v1). */
  url: string;
  fetch?: FetchLike;
  /** Per-request timeout, ms (default 15000). */
  timeoutMs?: number;
}

/**
 * HTTP client of the Auth API.
 *
 * @example
 * ```ts
 * import { AuthClient } from 'datagrove/client';
 * const auth = new AuthClient({ url: 'http://localhost:8080' });
 * const { shards } = await auth.shards();
 * ```
 */
function parses(url: string): boolean {
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}

export class AuthClient {
  readonly base: string;
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;

  constructor(opts: AuthClientOptions) {
    const url = typeof opts.url === 'string' ? opts.url : '';
    if (!/^https?:\/\/[^/]/i.test(url) || !parses(url)) {
      throw new DgError('BAD_REQUEST', `url: expected the server's http:// or https:// URL (e.g. http://localhost:8080), got ${JSON.stringify(String(opts.url)).slice(0, 80)}`);
    }
    this.base = `${url.replace(/\/+$/, '')}/auth/v1`;
    const global = globalThis.fetch as unknown as FetchLike | undefined;
    // The browser's fetch must be called with the global as `this` ("Illegal invocation").
    const f = opts.fetch ?? global?.bind(globalThis);
    if (f === undefined) throw new DgError('BAD_REQUEST', 'fetch: no fetch implementation available');
    this.fetchFn = f;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  /** Sends one request; returns the parsed JSON body of a 2xx reply (null for 204). */
  async call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, token?: string): Promise<Obj | null> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const res = await this.fetchFn(this.base + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: ctl.signal,
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      text = await res.text();
    } catch (err) {
      // A page cannot tell a request its origin may not make (CORS) from a network failure.
      throw new DgError('UNAVAILABLE', `auth server unreachable (${method} ${path})${crossOrigin(this.base) ? `: no network, or this page's origin is not among the server's allowed origins (DATAGROVE_ORIGINS)` : ''}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    let parsed: unknown = null;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (status >= 200 && status < 300) throw new DgError('INTERNAL', 'malformed reply: not JSON');
      }
    }
    if (status < 200 || status >= 300) {
      const ra = retryAfter === null ? undefined : Number(retryAfter);
      const errObj = parsed !== null && typeof parsed === 'object' ? (parsed as Obj).error : undefined;
      if (errObj === undefined) {
        const code = status === 429 ? 'RATE_LIMITED' : status >= 500 ? 'UNAVAILABLE' : status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'FORBIDDEN' : status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST';
        throw new DgError(code, `HTTP ${status} from ${method} ${path}`, ra !== undefined && Number.isFinite(ra) ? { retryAfter: ra } : undefined);
      }
      throw wireError(errObj, `HTTP ${status}`, ra !== undefined && Number.isFinite(ra) ? ra : undefined);
    }
    return parsed === null ? null : asObj(parsed);
  }

  private async post(path: string, body: unknown, token?: string): Promise<Obj> {
    return asObj(await this.call('POST', path, body, token));
  }

  private async get(path: string, token?: string): Promise<Obj> {
    return asObj(await this.call('GET', path, undefined, token));
  }

  /** POST /challenge: a single-use nonce for `device`. */
  async challenge(device: string): Promise<{ nonce: string; expiresIn: number }> {
    const r = await this.post('/challenge', { device });
    return { nonce: str(r, 'nonce'), expiresIn: int(r, 'expiresIn') };
  }

  /** POST /signup: a new user whose first device this is (`boxSig`: `DeviceKeys.boxSig`). */
  async signup(body: { device: string; boxKey: string; boxSig?: string; nonce: string; sig: string; name?: string }): Promise<SessionTokens> {
    return sessionTokens(await this.post('/signup', body));
  }

  /** POST /login: a session for an existing, live device. */
  async login(body: { device: string; nonce: string; sig: string }): Promise<SessionTokens> {
    return sessionTokens(await this.post('/login', body));
  }

  /** POST /oidc/start: an OpenID Connect sign-in to open in a browser (`url`), named by `state`. */
  async oidcStart(body: {
    provider: string;
    device: string;
    boxKey: string;
    boxSig?: string;
    name?: string;
    nonce: string;
    sig: string;
    redirect?: string;
  }): Promise<{ url: string; state: string }> {
    const r = await this.post('/oidc/start', body);
    return { url: str(r, 'url'), state: str(r, 'state') };
  }

  /** POST /oidc/complete: collects the sign-in `state` with the confirmation code its browser got. */
  async oidcComplete(body: { state: string; code: string; nonce: string; sig: string }): Promise<OidcSignedIn> {
    const r = await this.post('/oidc/complete', body);
    return { ...sessionTokens(r), identity: str(r, 'identity'), newDevice: bool(r, 'newDevice') };
  }

  /** POST /refresh: rotates the refresh token; the same (refresh, guid) again gets the same answer. */
  async refresh(refresh: string, guid: string): Promise<RefreshedTokens> {
    const r = await this.post('/refresh', { refresh, guid });
    return { access: str(r, 'access'), refresh: str(r, 'refresh'), expiresIn: int(r, 'expiresIn') };
  }

  /** POST /logout: ends the session of `token` on the server (its refresh and access tokens stop working). */
  async logout(token: string): Promise<void> {
    await this.call('POST', '/logout', undefined, token);
  }

  /** GET /sessions: the user's live sessions on its live devices, newest first (at most 100). */
  async sessions(token: string): Promise<SessionInfo[]> {
    const r = await this.get('/sessions', token);
    if (!Array.isArray(r.sessions)) throw new DgError('INTERNAL', 'malformed reply: sessions');
    return r.sessions.map((x) => {
      const o = asObj(x, 'sessions');
      return { id: str(o, 'id'), device: str(o, 'device'), createdAt: int(o, 'createdAt'), current: bool(o, 'current') };
    });
  }

  /** DELETE /sessions/:id: ends one session of the user, on any of its devices. */
  async endSession(token: string, id: string): Promise<void> {
    await this.call('DELETE', `/sessions/${encodeURIComponent(id)}`, undefined, token);
  }

  /** GET /me. */
  async me(token: string): Promise<MeInfo> {
    const r = await this.get('/me', token);
    const devices = Array.isArray(r.devices) ? r.devices.map((d) => asObj(d, 'devices')) : [];
    const identities = Array.isArray(r.identities) ? r.identities.map((d) => asObj(d, 'identities')) : [];
    return {
      user: str(r, 'user'),
      device: str(r, 'device'),
      devices: devices.map((d) => {
        const boxSig = optStr(d, 'boxSig');
        return {
          device: str(d, 'device'),
          boxKey: str(d, 'boxKey'),
          ...(boxSig === undefined ? {} : { boxSig }),
          name: optStr(d, 'name') ?? '',
          createdAt: typeof d.createdAt === 'number' ? d.createdAt : 0,
          revoked: d.revoked === true,
        };
      }),
      identities: identities.map((i) => ({ email: str(i, 'email'), provider: str(i, 'provider') })),
    };
  }

  /** POST /sites: a new site owned by the caller. */
  async createSite(token: string, name?: string): Promise<{ site: string; owner: string }> {
    const r = await this.post('/sites', name === undefined ? {} : { name }, token);
    return { site: str(r, 'site'), owner: str(r, 'owner') };
  }

  /** GET /sites/:site. */
  async site(token: string, site: string): Promise<SiteInfo> {
    const r = await this.get(`/sites/${encodeURIComponent(site)}`, token);
    return {
      site: str(r, 'site'),
      owner: str(r, 'owner'),
      rights: strArray(r, 'rights') as Right[],
      keyEpoch: int(r, 'keyEpoch'),
      rotationRequired: r.rotationRequired === true,
    };
  }

  /** POST /declare: registers a signed grant; returns its hash. */
  async declare(token: string, grant: string): Promise<{ hash: string }> {
    const r = await this.post('/declare', { grant }, token);
    return { hash: str(r, 'hash') };
  }

  /** POST /join: records the caller's access to a site through a grant (JWS or hash). */
  async join(token: string, site: string, grant: string): Promise<JoinInfo> {
    const r = await this.post('/join', { site, grant }, token);
    return {
      site: str(r, 'site'),
      logs: strArray(r, 'logs'),
      rights: strArray(r, 'rights') as Right[],
      expiresAt: typeof r.expiresAt === 'number' ? r.expiresAt : null,
    };
  }

  /** POST /lease: a lease token for (site, log) and the shard that serves the site. */
  async lease(token: string, site: string, log: string): Promise<HttpLease> {
    const r = await this.post('/lease', { site, log }, token);
    const shard = asObj(r.shard, 'shard');
    return { token: str(r, 'token'), expiresIn: int(r, 'expiresIn'), shard: { id: str(shard, 'id'), url: str(shard, 'url') } };
  }

  /** POST /revoke: a device (this one or another of the user's) or a grant by hash. */
  async revoke(token: string, what: { device: string } | { grant: string }): Promise<{ rotate: string[] }> {
    const r = await this.post('/revoke', what, token);
    return { rotate: strArray(r, 'rotate') };
  }

  /** GET /shards: the tail nodes. */
  async shards(): Promise<ShardMapInfo> {
    const r = await this.get('/shards');
    const list = Array.isArray(r.shards) ? r.shards.map((s) => asObj(s, 'shards')) : [];
    return { version: int(r, 'version'), shards: list.map((s) => ({ id: str(s, 'id'), url: str(s, 'url') })) };
  }
}

function sessionTokens(r: Obj): SessionTokens {
  return {
    user: str(r, 'user'),
    device: str(r, 'device'),
    access: str(r, 'access'),
    refresh: str(r, 'refresh'),
    expiresIn: int(r, 'expiresIn'),
  };
}

/** Whether requests to `base` leave this page's origin (false outside a browser page). */
function crossOrigin(base: string): boolean {
  const here = (globalThis as { location?: { origin?: unknown } }).location?.origin;
  if (typeof here !== 'string') return false;
  if (here === 'null') return true;
  try {
    return new URL(base).origin !== here;
  } catch {
    return false;
  }
}
