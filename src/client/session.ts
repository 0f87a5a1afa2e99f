/**
 * The signed-in session of one device: access token (short-lived) and refresh token
 * (single use, rotated on every refresh), persisted through the KeyStorage so a restart
 * keeps the session.
 *
 * Refresh rule (PROTOCOL.md /refresh): every refresh attempt carries a `guid`, chosen and
 * PERSISTED before the request is sent. A retry of the same refresh (after a network error,
 * a timeout or a crash) sends the same (refresh, guid) and gets the same answer, so it never
 * looks like reuse. Only after a success is the new refresh token stored and the guid
 * cleared. REFRESH_REUSED or UNAUTHORIZED from /refresh ends the session: it is cleared
 * and `onAuthError` is called.
 *
 * Clients of one device sharing the storage (tabs, processes) refresh one at a time inside
 * the storage's `lock`, when it has one, and each starts from the stored session: a token
 * another client rotated is taken instead of spent again, a guid another client stored and
 * never saw answered is retried.
 */
import { DgError } from '../protocol/errors.js';
import type { AuthClient, OidcSignedIn, SessionTokens } from './auth-client.js';
import { Backoff, sleep } from './backoff.js';
import { randomId } from './bytes.js';
import type { DeviceKeys } from './device-keys.js';
import type { JsonValue, KeyStorage } from './key-storage.js';

export interface SessionState {
  user: string;
  device: string;
  access: string;
  refresh: string;
  /** ms since the epoch when the access token expires. */
  accessExpiresAt: number;
  /** How long the access token was valid for when it came, ms (absent in state stored by older versions). */
  accessLifeMs?: number;
  /** The guid of a refresh that was sent but whose answer is unknown. */
  pendingGuid: string | null;
}

/** The token life assumed for a session stored without one: the margin is then 60 s. */
const DEFAULT_LIFE_MS = 300_000;
/** signOut refreshes first when the access token expires sooner than this (clock skew, time in flight). */
const LOGOUT_TOKEN_MARGIN_MS = 5000;

export interface SessionOptions {
  /** Called once when the session ends on the server's word (reuse detected, revoked). */
  onAuthError?: (err: DgError) => void;
  /** Refresh this long before the access token expires, ms (default: a fifth of its life, at most 60 s). */
  refreshMarginMs?: number;
  now?: () => number;
}

/**
 * The session of one device (the client creates one; use it directly only without a client).
 *
 * @example
 * ```ts
 * import { AuthClient, DeviceKeys, MemoryKeyStorage, Session } from 'datagrove/client';
 * const storage = new MemoryKeyStorage();
 * const session = new Session(new AuthClient({ url: 'http://localhost:8080' }), await DeviceKeys.loadOrCreate(storage), storage);
 * if (!(await session.restore())) await session.signup('laptop');
 * const token = await session.accessToken(); // refreshed when close to expiry
 * ```
 */
export class Session {
  private state: SessionState | null = null;
  private refreshing: Promise<string> | null = null;
  private readonly now: () => number;
  private readonly storageName: string;
  private ended = false;

  constructor(
    private readonly auth: AuthClient,
    private readonly keys: DeviceKeys,
    private readonly storage: KeyStorage,
    private readonly opts: SessionOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.storageName = `datagrove.session:${auth.base}`;
  }

  /** Loads a stored session (if any); true when there is one. */
  async restore(): Promise<boolean> {
    const v = await this.storage.load(this.storageName);
    this.state = parseState(v);
    if (this.state !== null && this.state.device !== this.keys.deviceId) this.state = null;
    return this.state !== null;
  }

  get signedIn(): boolean {
    return this.state !== null;
  }

  get user(): string | null {
    return this.state?.user ?? null;
  }

  /** When the current access token expires (ms since the epoch); 0 when signed out. */
  get accessExpiresAt(): number {
    return this.state?.accessExpiresAt ?? 0;
  }

  /** Creates a user whose first device is this one, and signs in. */
  async signup(name?: string): Promise<SessionTokens> {
    const { nonce } = await this.auth.challenge(this.keys.deviceId);
    const t = await this.auth.signup({
      device: this.keys.deviceId,
      boxKey: this.keys.boxKey,
      boxSig: this.keys.boxSig,
      nonce,
      sig: this.keys.signChallenge(nonce),
      ...(name === undefined ? {} : { name }),
    });
    await this.adopt(t);
    return t;
  }

  /** Signs in with this (already registered) device. */
  async login(): Promise<SessionTokens> {
    const { nonce } = await this.auth.challenge(this.keys.deviceId);
    const t = await this.auth.login({ device: this.keys.deviceId, nonce, sig: this.keys.signChallenge(nonce) });
    await this.adopt(t);
    return t;
  }

  /** Starts an OpenID Connect sign-in of this device (new to the server or not): open `url` in a browser. */
  async oidcStart(provider: string, opts: { name?: string; redirect?: string } = {}): Promise<{ url: string; state: string }> {
    const { nonce } = await this.auth.challenge(this.keys.deviceId);
    return this.auth.oidcStart({
      provider,
      device: this.keys.deviceId,
      boxKey: this.keys.boxKey,
      boxSig: this.keys.boxSig,
      nonce,
      sig: this.keys.signChallenge(nonce),
      ...(opts.name === undefined ? {} : { name: opts.name }),
      ...(opts.redirect === undefined ? {} : { redirect: opts.redirect }),
    });
  }

  /** Finishes the sign-in `state` with the browser's confirmation code, and signs in with its session. */
  async oidcComplete(state: string, code: string): Promise<OidcSignedIn> {
    const { nonce } = await this.auth.challenge(this.keys.deviceId);
    const t = await this.auth.oidcComplete({ state, code, nonce, sig: this.keys.signChallenge(nonce) });
    await this.adopt(t);
    return t;
  }

  private async adopt(t: SessionTokens): Promise<void> {
    this.ended = false;
    this.state = {
      user: t.user,
      device: t.device,
      access: t.access,
      refresh: t.refresh,
      accessExpiresAt: this.now() + t.expiresIn * 1000,
      accessLifeMs: t.expiresIn * 1000,
      pendingGuid: null,
    };
    await this.persist();
  }

  private async persist(): Promise<void> {
    if (this.state === null) await this.storage.remove(this.storageName);
    else await this.storage.save(this.storageName, { ...this.state });
  }

  private margin(): number {
    if (this.opts.refreshMarginMs !== undefined) return this.opts.refreshMarginMs;
    // A fifth of the token's whole life (not of what is left of it), 1 to 60 s.
    const life = this.state?.accessLifeMs ?? DEFAULT_LIFE_MS;
    return Math.min(60_000, Math.max(1000, life / 5));
  }

  /** A valid access token, refreshed first when it expires within the margin. */
  async accessToken(): Promise<string> {
    const s = this.state;
    if (s === null) throw new DgError('UNAUTHORIZED', 'not signed in');
    if (s.accessExpiresAt - this.now() > this.margin() && s.pendingGuid === null) return s.access;
    return this.refresh();
  }

  /** Refreshes now (single flight: concurrent callers share one refresh). */
  refresh(): Promise<string> {
    if (this.refreshing === null) {
      this.refreshing = this.doRefresh().finally(() => (this.refreshing = null));
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<string> {
    const backoff = new Backoff({ baseMs: 200, maxMs: 5000 });
    for (;;) {
      // The lock is held for one attempt, not across the sleeps between attempts.
      const outcome = await this.locked(() => this.refreshAttempt());
      if (typeof outcome === 'string') return outcome;
      // UNAVAILABLE, RATE_LIMITED, INTERNAL: the answer is unknown; retry with the same guid.
      if (backoff.failures >= 4) throw outcome;
      await sleep(outcome.retryAfter !== undefined ? outcome.retryAfter * 1000 : backoff.next());
    }
  }

  /**
   * Runs `fn` holding the storage's refresh lock, when it has one: the clients sharing the
   * storage then refresh one at a time, and each finds the token the one before rotated.
   * A lock that cannot be taken is an UNAVAILABLE attempt.
   */
  private async locked(fn: () => Promise<string | DgError>): Promise<string | DgError> {
    const storage = this.storage;
    if (storage.lock === undefined) return fn();
    let ran = false;
    try {
      return await storage.lock(`${this.storageName}:refresh`, () => {
        ran = true;
        return fn();
      });
    } catch (err) {
      if (ran) throw err;
      return new DgError('UNAVAILABLE', 'the refresh lock of the storage could not be taken', { cause: err });
    }
  }

  /** One refresh attempt: the access token, or the error to retry after; throws what ends it. */
  private async refreshAttempt(): Promise<string | DgError> {
    for (;;) {
      let s = this.state;
      if (s === null) throw new DgError('UNAUTHORIZED', 'not signed in');
      // Another client of this device sharing the storage (a tab, a process) may have
      // rotated the refresh token since, even the one this client was retrying: take its
      // tokens instead of reusing ours. A refresh it started and never finished (it died
      // holding the lock, or shares the storage without one) is retried with its guid.
      const stored = parseState(await this.storage.load(this.storageName).catch(() => null));
      if (this.state !== s) continue;
      if (
        stored !== null &&
        stored.user === s.user &&
        stored.device === s.device &&
        (stored.refresh !== s.refresh || (s.pendingGuid === null && stored.pendingGuid !== null))
      ) {
        this.state = s = stored;
        if (s.pendingGuid === null && s.accessExpiresAt - this.now() > this.margin()) return s.access;
      }
      if (s.pendingGuid === null) {
        s.pendingGuid = randomId(16);
        await this.persist(); // before sending: a crash mid-request must retry with this guid
      }
      try {
        const r = await this.auth.refresh(s.refresh, s.pendingGuid);
        if (this.state !== s) throw new DgError('UNAUTHORIZED', 'signed out during refresh');
        s.access = r.access;
        s.refresh = r.refresh;
        s.accessExpiresAt = this.now() + r.expiresIn * 1000;
        s.accessLifeMs = r.expiresIn * 1000;
        s.pendingGuid = null;
        await this.persist();
        return s.access;
      } catch (err) {
        const e = err instanceof DgError ? err : new DgError('INTERNAL', 'refresh failed', { cause: err });
        if (e.code === 'REFRESH_REUSED' || e.code === 'UNAUTHORIZED') {
          await this.end(e);
          throw e;
        }
        return e;
      }
    }
  }

  /**
   * Ends the session locally after the server refused it, and reports it once. Never
   * rejects: a storage failure only leaves a dead refresh token stored (the server refuses it).
   */
  private async end(err: DgError): Promise<void> {
    this.state = null;
    await this.persist().catch(() => undefined);
    if (this.ended) return;
    this.ended = true;
    this.opts.onAuthError?.(err);
  }

  /** Reports a revocation learned elsewhere (the tail's `revoke` event or close 4403). */
  async revoked(message: string): Promise<void> {
    await this.end(new DgError('UNAUTHORIZED', message));
  }

  /**
   * Runs `fn` with a valid token; on UNAUTHORIZED refreshes once and runs it again
   * (the token may have been rejected for expiring in flight). Callers refused for the same
   * token share one refresh: one whose refusal comes after another caller's refresh took
   * the token it gave (it runs again with it) rather than refresh again.
   */
  async authed<T>(fn: (token: string) => Promise<T>): Promise<T> {
    const token = await this.accessToken();
    try {
      return await fn(token);
    } catch (err) {
      if (!(err instanceof DgError) || err.code !== 'UNAUTHORIZED' || this.state === null) throw err;
      return fn(await this.tokenAfterRefusal(token));
    }
  }

  /** A token to use instead of `refused`: one refreshed since it was given out, or a refresh (shared with callers in flight). */
  private tokenAfterRefusal(refused: string): Promise<string> {
    const s = this.state;
    if (s !== null && s.access !== refused && s.pendingGuid === null && s.accessExpiresAt - this.now() > this.margin()) return Promise.resolve(s.access);
    return this.refresh();
  }

  /**
   * Signs this device out: forgets the session here, then ends it on the server
   * (POST /logout), so its refresh token is dead everywhere and its live tail sessions close.
   * The server's part is best effort: when the server cannot be reached or refuses the token
   * (the session already ended there), the session is still forgotten here and this
   * resolves. It makes at most two requests (a refresh first when the access token has
   * expired), each bounded by the auth client's request timeout. The server's closing of
   * this session (a `revoke` event, close 4403) is not reported to `onAuthError`.
   */
  async signOut(): Promise<void> {
    // Another client of this device sharing the storage may hold newer tokens than this one.
    const stored = parseState(await this.storage.load(this.storageName).catch(() => null));
    const mine = this.state;
    const s = stored !== null && stored.device === this.keys.deviceId && (mine === null || stored.user === mine.user) ? stored : mine;
    this.state = null;
    this.ended = true;
    await this.persist();
    if (s === null) return;
    try {
      await this.auth.logout(await this.logoutToken(s));
    } catch {
      // Unreachable, or the session had already ended: it is forgotten here either way, and
      // an unended family dies with its refresh token's expiry.
    }
  }

  /** An access token of the session being signed out: the held one unless it has (nearly) expired, else one refresh. */
  private async logoutToken(s: SessionState): Promise<string> {
    if (s.accessExpiresAt - this.now() > LOGOUT_TOKEN_MARGIN_MS) return s.access;
    // A refresh whose answer was lost is retried with its guid, so it is not taken for reuse.
    return (await this.auth.refresh(s.refresh, s.pendingGuid ?? randomId(16))).access;
  }
}

function parseState(v: JsonValue | null): SessionState | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const { user, device, access, refresh, accessExpiresAt, accessLifeMs, pendingGuid } = v;
  if (typeof user !== 'string' || typeof device !== 'string' || typeof access !== 'string' || typeof refresh !== 'string') return null;
  if (typeof accessExpiresAt !== 'number') return null;
  const state: SessionState = { user, device, access, refresh, accessExpiresAt, pendingGuid: typeof pendingGuid === 'string' ? pendingGuid : null };
  if (typeof accessLifeMs === 'number' && Number.isFinite(accessLifeMs) && accessLifeMs > 0) state.accessLifeMs = accessLifeMs;
  return state;
}
