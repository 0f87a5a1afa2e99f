/**
 * A small auth client for tests, speaking HTTP to /auth/v1 as a real client would, with real
 * Ed25519 device keys (node:crypto). Reusable by any test that needs signed-up devices,
 * sites and grants.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { boxKeyStatement } from '../../src/protocol/key-statements.js';

export const AUTH_PREFIX = '/auth/v1';

export interface DeviceKeys {
  /** base64url of the raw 32-byte Ed25519 public key. */
  device: string;
  privateKey: KeyObject;
  /** base64url of a raw 32-byte X25519 public key. */
  boxKey: string;
}

export interface SignedUpDevice extends DeviceKeys {
  user: string;
  access: string;
  refresh: string;
  expiresIn: number;
}

export interface HttpResult<T = unknown> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export function newDeviceKeys(): DeviceKeys {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const box = generateKeyPairSync('x25519');
  return {
    device: String(publicKey.export({ format: 'jwk' }).x),
    privateKey,
    boxKey: String(box.publicKey.export({ format: 'jwk' }).x),
  };
}

export function signChallenge(privateKey: KeyObject, nonce: string): string {
  return sign(null, Buffer.from(`datagrove-auth-v1:${nonce}`, 'utf8'), privateKey).toString('base64url');
}

/** The device's signature of its box key statement (`boxSig`), by `keys`' signing key, over `boxKey` (default: its own). */
export function signBoxKey(keys: DeviceKeys, boxKey = keys.boxKey): string {
  return sign(null, Buffer.from(boxKeyStatement(keys.device, boxKey), 'utf8'), keys.privateKey).toString('base64url');
}

/** A request to the auth API; `body` is sent as JSON unless `raw` gives the exact bytes. */
export async function call<T = unknown>(
  url: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  opts: { body?: unknown; token?: string; raw?: string; contentType?: string } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  const res = await fetch(`${url}${AUTH_PREFIX}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed as T, text, headers: res.headers };
}

export const post = <T = unknown>(url: string, path: string, body: unknown, token?: string) => call<T>(url, 'POST', path, { body, token });
export const get = <T = unknown>(url: string, path: string, token?: string) => call<T>(url, 'GET', path, { token });

function expectStatus(r: HttpResult, status: number, what: string): void {
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${r.text}`);
}

export async function challenge(url: string, device: string): Promise<string> {
  const r = await post<{ nonce: string }>(url, '/challenge', { device });
  expectStatus(r, 200, 'challenge');
  return r.body.nonce;
}

/** Signs up a new user with a fresh device (or the given keys); `boxSig: false` leaves the box key unsigned. */
export async function signupDevice(url: string, opts: { keys?: DeviceKeys; name?: string; boxSig?: false } = {}): Promise<SignedUpDevice> {
  const keys = opts.keys ?? newDeviceKeys();
  const nonce = await challenge(url, keys.device);
  const r = await post<{ user: string; access: string; refresh: string; expiresIn: number }>(url, '/signup', {
    device: keys.device,
    boxKey: keys.boxKey,
    ...(opts.boxSig === false ? {} : { boxSig: signBoxKey(keys) }),
    nonce,
    sig: signChallenge(keys.privateKey, nonce),
    name: opts.name ?? 'test device',
  });
  expectStatus(r, 201, 'signup');
  return { ...keys, user: r.body.user, access: r.body.access, refresh: r.body.refresh, expiresIn: r.body.expiresIn };
}

/** Logs an existing device in; resolves with the raw reply. */
export async function loginDevice(url: string, keys: DeviceKeys): Promise<HttpResult<{ user: string; device: string; access: string; refresh: string; expiresIn: number }>> {
  const nonce = await challenge(url, keys.device);
  return post(url, '/login', { device: keys.device, nonce, sig: signChallenge(keys.privateKey, nonce) });
}

export async function createSite(url: string, access: string, name = 'test site'): Promise<string> {
  const r = await post<{ site: string }>(url, '/sites', { name }, access);
  expectStatus(r, 201, 'create site');
  return r.body.site;
}

export interface GrantClaims {
  iss: string;
  sub: string;
  site: string;
  logs: string[];
  rights: ('read' | 'write' | 'admin')[];
  iat?: number;
  exp?: number;
  prf?: string;
}

function b64json(v: unknown): string {
  return Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
}

/** Signs a grant (compact JWS, EdDSA) with the issuing device's key; `hash` as PROTOCOL.md defines it. */
export function signGrant(privateKey: KeyObject, claims: GrantClaims, header: Record<string, unknown> = { alg: 'EdDSA', typ: 'dg-grant+jwt' }): { jws: string; hash: string } {
  const payload = { ...claims, iat: claims.iat ?? Math.floor(Date.now() / 1000) };
  const input = `${b64json(header)}.${b64json(payload)}`;
  const sig = sign(null, Buffer.from(input, 'ascii'), privateKey).toString('base64url');
  const jws = `${input}.${sig}`;
  return { jws, hash: createHash('sha256').update(jws, 'ascii').digest('base64url') };
}

/** Signs a grant from `issuer` and declares it; throws unless the server accepts it. */
export async function declareGrant(url: string, issuer: SignedUpDevice, claims: Omit<GrantClaims, 'iss'>): Promise<{ jws: string; hash: string }> {
  const g = signGrant(issuer.privateKey, { ...claims, iss: issuer.device });
  const r = await post<{ hash: string }>(url, '/declare', { grant: g.jws }, issuer.access);
  expectStatus(r, 201, 'declare');
  if (r.body.hash !== g.hash) throw new Error('declare: the server computed another hash');
  return g;
}

// ---- OpenID Connect login through the dev identity provider ----

interface Cookie {
  value: string;
  path: string;
}

/**
 * A minimal browser for the OIDC redirects: a cookie jar (name, path; one host) and manual
 * redirects, so a test sees every hop and can stop at any of them.
 */
export class TestBrowser {
  readonly #cookies = new Map<string, Cookie>();

  #cookieHeader(url: URL): string {
    const out: string[] = [];
    for (const [name, c] of this.#cookies) if (url.pathname.startsWith(c.path)) out.push(`${name}=${c.value}`);
    return out.join('; ');
  }

  #store(url: URL, res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const a of attrs) {
        const [k = '', v = ''] = a.split('=');
        if (k.toLowerCase() === 'path') path = v || '/';
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      if (expired) this.#cookies.delete(name);
      else this.#cookies.set(name, { value: pair.slice(eq + 1), path });
    }
  }

  /** One request, no redirect followed. */
  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    const cookie = this.#cookieHeader(u);
    if (cookie !== '') headers.cookie = cookie;
    let body: string | undefined;
    if (init.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(u, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, redirect: 'manual' });
    this.#store(u, res);
    return res;
  }

  /** Follows redirects from `res` (at `url`) until a non-redirect, or until `stop(url)` holds for the next hop. */
  async follow(url: string, res: Response, stop: (next: string) => boolean = () => false): Promise<{ url: string; res: Response }> {
    let [u, r] = [url, res];
    for (let hops = 0; r.status >= 300 && r.status < 400; hops++) {
      if (hops > 20) throw new Error('too many redirects');
      const next = new URL(r.headers.get('location') ?? '', u).href;
      await r.arrayBuffer();
      if (stop(next)) return { url: next, res: r };
      [u, r] = [next, await this.request(next)];
    }
    return { url: u, res: r };
  }
}

export interface OidcStarted {
  state: string;
  url: string;
}

/**
 * POST /oidc/start for `keys` (a fresh challenge signature), with the box key and its
 * signature unless `boxKey: false`; `boxSig` sends another signature (or, with false, none).
 */
export async function oidcStart(
  url: string,
  keys: DeviceKeys,
  opts: { provider?: string; name?: string; redirect?: string; boxKey?: boolean; boxSig?: string | false } = {},
): Promise<HttpResult<OidcStarted>> {
  const nonce = await challenge(url, keys.device);
  const boxSig = opts.boxSig ?? (opts.boxKey === false ? false : signBoxKey(keys));
  return post<OidcStarted>(url, '/oidc/start', {
    provider: opts.provider ?? 'dev',
    device: keys.device,
    ...(opts.boxKey === false ? {} : { boxKey: keys.boxKey }),
    ...(boxSig === false ? {} : { boxSig }),
    name: opts.name ?? 'oidc device',
    nonce,
    sig: signChallenge(keys.privateKey, nonce),
    ...(opts.redirect === undefined ? {} : { redirect: opts.redirect }),
  });
}

/**
 * Signs in at the dev IdP in a fresh browser: opens the authorization URL, posts the sign-in
 * form, and follows the redirects up to (not into) the server's OIDC callback, whose URL it
 * returns with the browser.
 */
export async function devIdpSignIn(authorizationUrl: string, email: string, verified = true): Promise<{ callback: string; browser: TestBrowser }> {
  const browser = new TestBrowser();
  const isCallback = (u: string) => new URL(u).pathname === `${AUTH_PREFIX}/oidc/callback`;
  const form = await browser.follow(authorizationUrl, await browser.request(authorizationUrl), isCallback);
  const html = await form.res.text();
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  if (form.res.status !== 200 || action === undefined) throw new Error(`no sign-in form at ${form.url}: ${form.res.status} ${html.slice(0, 300)}`);
  const target = new URL(action.replaceAll('&amp;', '&'), form.url).href;
  const fields: Record<string, string> = { email };
  if (verified) fields.email_verified = 'yes';
  const done = await browser.follow(target, await browser.request(target, { form: fields }), isCallback);
  if (!isCallback(done.url)) throw new Error(`sign-in did not reach the callback: ${done.url} ${done.res.status}`);
  return { callback: done.url, browser };
}

export interface OidcCompleted {
  user: string;
  device: string;
  access: string;
  refresh: string;
  expiresIn: number;
  identity: string;
  newDevice: boolean;
}

/**
 * The confirmation code a browser got from the OIDC callback: on the page (`id="code"`), or
 * as `dg_code` in the redirect to the app. Throws when there is none.
 */
export async function confirmationCode(res: Response): Promise<string> {
  const location = res.headers.get('location');
  if (location !== null) {
    const code = new URL(location).searchParams.get('dg_code');
    if (code === null) throw new Error(`no dg_code in ${location}`);
    return code;
  }
  const html = await res.text();
  const code = /<strong id="code">([^<]+)<\/strong>/.exec(html)?.[1];
  if (code === undefined) throw new Error(`no confirmation code on the page: ${res.status} ${html.slice(0, 300)}`);
  return code;
}

/** POST /oidc/complete for `keys` (a fresh challenge signature), with the browser's confirmation code. */
export async function oidcComplete(url: string, keys: DeviceKeys, state: string, code: string): Promise<HttpResult<OidcCompleted>> {
  const nonce = await challenge(url, keys.device);
  return post<OidcCompleted>(url, '/oidc/complete', { state, code, nonce, sig: signChallenge(keys.privateKey, nonce) });
}

/** The whole login through the dev IdP; throws unless every step succeeds. */
export async function oidcLogin(url: string, keys: DeviceKeys, email: string, opts: { name?: string } = {}): Promise<OidcCompleted> {
  const started = await oidcStart(url, keys, { name: opts.name });
  expectStatus(started, 200, 'oidc start');
  const { callback, browser } = await devIdpSignIn(started.body.url, email);
  const cb = await browser.request(callback);
  if (cb.status !== 200) throw new Error(`oidc callback: ${cb.status} ${await cb.text()}`);
  const done = await oidcComplete(url, keys, started.body.state, await confirmationCode(cb));
  expectStatus(done, 200, 'oidc complete');
  return done.body;
}
