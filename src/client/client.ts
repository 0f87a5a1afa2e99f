/**
 * The SDK's front door: one device, one signed-in session, connections to the tail shards,
 * and the logs opened through them.
 */
import { DgError } from '../protocol/errors.js';
import { decodeJws } from './crypto/jws.js';
import { AuthClient, type FetchLike, type JoinInfo, type MeInfo, type SessionInfo, type SiteInfo } from './auth-client.js';
import { DeviceKeys, deviceFingerprint } from './device-keys.js';
import { Emitter } from './emitter.js';
import { grantHash, signGrant, type GrantSpec } from './grants.js';
import { MemoryKeyStorage, type KeyStorage } from './key-storage.js';
import type { PayloadCodec } from './crypto/payload-codec.js';
import { Log, type LogOptions } from './log.js';
import { checkLogOptions } from './log-options.js';
import type { RtcPeerConnectionConstructor } from './rtc-types.js';
import { Session } from './session.js';
import { ShardRouter } from './shards.js';
import { TailConnection } from './tail-connection.js';
import type { TailEvent, WebSocketConstructor } from './tail-types.js';

export interface ClientOptions {
  /** The server's base URL, e.g. "https://example.com". */
  url: string;
  /** Where device keys and the session are kept (default: memory only). */
  storage?: KeyStorage;
  fetch?: FetchLike;
  /** WebSocket class (default: the global one; in Node pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** RTCPeerConnection class (default: the global one; in Node pass werift's); null: relay only. */
  RTCPeerConnection?: RtcPeerConnectionConstructor | null;
  /** Passed to `new RTCPeerConnection(...)`, e.g. `{ iceServers: [...] }`. */
  rtcConfig?: object;
  /** Called when the session ends on the server's word (refresh reuse, revocation). */
  onAuthError?: (err: DgError) => void;
  /** Rewrites tail URLs from the shard map before use (e.g. behind a proxy). */
  shardUrl?: (url: string) => string;
  requestTimeoutMs?: number;
}

export interface ClientEvents extends Record<string, unknown> {
  /** Session-wide tail events: `device`, `envelope`, and `revoke` without handle. */
  event: TailEvent;
}

/**
 * A Datagrove client for one device.
 *
 * @example
 * ```ts
 * import WebSocket from 'ws';
 * import { DatagroveClient } from 'datagrove/client';
 * const client = await DatagroveClient.create({ url: 'http://localhost:8080', WebSocket });
 * if (!client.signedIn) await client.signup('my laptop');
 * const { site } = await client.createSite('notes');
 * const log = client.openLog(site, 'main');
 * log.subscribe((entries) => console.log(entries.length, 'new entries'));
 * await log.append([new TextEncoder().encode('hello')]);
 * await client.close();
 * ```
 */
export class DatagroveClient extends Emitter<ClientEvents> {
  readonly auth: AuthClient;
  readonly keys: DeviceKeys;
  readonly session: Session;
  private readonly router: ShardRouter;
  private readonly logs = new Map<string, Log>();
  private readonly grants = new Map<string, string>();
  /** Per site, how many times this client's access grew (joins, attests): the logs' kept rights answers from before are stale. */
  private readonly accessGains = new Map<string, number>();
  private closed = false;
  private readonly offOnline: () => void;
  private codec: PayloadCodec | null = null;

  private constructor(
    private readonly opts: ClientOptions,
    keys: DeviceKeys,
    auth: AuthClient,
    session: Session,
  ) {
    super();
    this.keys = keys;
    this.auth = auth;
    this.session = session;
    this.router = new ShardRouter({
      auth,
      connect: (url) => this.newConnection(url),
      ...(opts.shardUrl === undefined ? {} : { mapUrl: opts.shardUrl }),
    });
    this.offOnline = onNetworkBack(() => this.reconnectNow());
  }

  /** Loads (or creates) the device keys and any stored session. */
  static async create(opts: ClientOptions): Promise<DatagroveClient> {
    const storage = opts.storage ?? new MemoryKeyStorage();
    const keys = await DeviceKeys.loadOrCreate(storage);
    const auth = new AuthClient({ url: opts.url, ...(opts.fetch === undefined ? {} : { fetch: opts.fetch }) });
    let client: DatagroveClient | null = null;
    const session = new Session(auth, keys, storage, { onAuthError: (err) => client?.authFailed(err) });
    await session.restore();
    client = new DatagroveClient(opts, keys, auth, session);
    return client;
  }

  /** This device's id. */
  get device(): string {
    return this.keys.deviceId;
  }

  /**
   * This device's fingerprint (`deviceFingerprint`): show it while the device waits to be
   * approved, so the person approving on another device can compare it with the request's.
   */
  get fingerprint(): string {
    return deviceFingerprint(this.keys.deviceId);
  }

  get user(): string | null {
    return this.session.user;
  }
  get signedIn(): boolean {
    return this.session.signedIn;
  }

  /** Creates a user with this device as its first device, and signs in. */
  async signup(name?: string): Promise<{ user: string; device: string }> {
    const t = await this.session.signup(name);
    return { user: t.user, device: t.device };
  }

  /** Signs in with this (registered) device. */
  async login(): Promise<{ user: string; device: string }> {
    const t = await this.session.login();
    return { user: t.user, device: t.device };
  }

  /**
   * Starts an OpenID Connect sign-in at `provider` (an id the server is configured with):
   * open `url` in a browser (a redirect or a popup). With `redirect` (an origin the server
   * allows) the browser comes back there with `dg_state` and `dg_code` in its query;
   * without, the server shows the user a confirmation code to type into the app. Then call
   * `oidcComplete`. A device new to the server becomes a new user's first device, or joins
   * the user the email already belongs to (the user's other devices are asked to approve it).
   */
  oidcStart(provider: string, opts: { name?: string; redirect?: string } = {}): Promise<{ url: string; state: string }> {
    return this.session.oidcStart(provider, opts);
  }

  /**
   * Finishes the sign-in `state` with the confirmation code the browser got, and signs in.
   * `identity` is the server's attestation that this device key signed in as the email (a
   * KeyManager shows it to the devices that approve this one); `newDevice` says whether
   * this sign-in added the device to the user. A wrong code is `UNAUTHORIZED` and may be
   * tried again; `CONFLICT` means the browser has not come back from the provider yet.
   */
  async oidcComplete(state: string, code: string): Promise<{ user: string; device: string; identity: string; newDevice: boolean }> {
    const t = await this.session.oidcComplete(state, code);
    return { user: t.user, device: t.device, identity: t.identity, newDevice: t.newDevice };
  }

  /** An authorized call of this client: refused once the client is closed. */
  private authed<T>(fn: (token: string) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new DgError('UNAVAILABLE', 'client closed'));
    return this.session.authed(fn);
  }

  me(): Promise<MeInfo> {
    return this.authed((t) => this.auth.me(t));
  }

  /** The user's signed-in sessions on its live devices, newest first; `current` marks this one. */
  sessions(): Promise<SessionInfo[]> {
    return this.authed((t) => this.auth.sessions(t));
  }

  /**
   * Ends one session of the user (this device's or another's, by its `id` from `sessions`):
   * its tokens stop working and its tail connections close. NOT_FOUND when it is not a live
   * session of the user.
   */
  endSession(id: string): Promise<void> {
    return this.authed((t) => this.auth.endSession(t, id));
  }

  /**
   * Signs out: closes every log and connection, then ends the session on the server (best
   * effort, see `Session.signOut`) and forgets it here. The client is closed afterwards;
   * create a new one to sign in again.
   */
  async signOut(): Promise<void> {
    await this.close();
    await this.session.signOut();
  }

  /** Creates a site owned by the user. */
  createSite(name?: string): Promise<{ site: string; owner: string }> {
    return this.authed((t) => this.auth.createSite(t, name));
  }

  siteInfo(site: string): Promise<SiteInfo> {
    return this.authed((t) => this.auth.site(t, site));
  }

  /** Signs a grant with this device's key (see PROTOCOL.md "Grant"). */
  signGrant(spec: GrantSpec): string {
    return signGrant(this.keys, spec);
  }

  /** Registers a signed grant with the server; returns its hash. */
  async declare(grant: string): Promise<string> {
    const { hash } = await this.authed((t) => this.auth.declare(t, grant));
    if (hash !== grantHash(grant)) throw new DgError('INTERNAL', 'server reported another grant hash');
    return hash;
  }

  /**
   * Joins a site through a grant (JWS or hash) that covers this user or device; remembers it
   * for `attest`. A right it gives counts at once in the logs already open on the site: an
   * append refused for want of `write` before may land right after.
   */
  async join(site: string, grant: string): Promise<JoinInfo> {
    const r = await this.authed((t) => this.auth.join(t, site, grant));
    if (grant.includes('.')) this.grants.set(site, grant);
    this.accessGained(site);
    return r;
  }

  /** This client's access to `site` may have grown: rights the logs learned before are asked again. */
  private accessGained(site: string): void {
    this.accessGains.set(site, (this.accessGains.get(site) ?? 0) + 1);
  }

  /** Remembers a grant for `site`: used to `attest` when a lease answers `needproof`. */
  useGrant(site: string, grant: string): void {
    this.grants.set(site, grant);
  }

  /** Revokes a device of the user, or a grant (by hash). */
  revoke(what: { device: string } | { grant: string }): Promise<{ rotate: string[] }> {
    return this.authed((t) => this.auth.revoke(t, what));
  }

  /**
   * Opens a log (or returns the one already open): leases it in the background; await
   * `log.opened` to know it is leased and caught up.
   */
  openLog(site: string, log: string, opts: LogOptions = {}): Log {
    checkLogOptions(opts);
    if (this.closed) throw new DgError('UNAVAILABLE', 'client closed');
    if (!this.session.signedIn) throw new DgError('UNAUTHORIZED', 'not signed in');
    const key = `${site}\u0000${log}`;
    const open = this.logs.get(key);
    if (open !== undefined) return open;
    const rtc = this.opts.RTCPeerConnection === null ? undefined : (this.opts.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: RtcPeerConnectionConstructor }).RTCPeerConnection);
    const l = new Log(
      {
        site,
        log,
        device: this.device,
        sign: (message) => this.keys.signAsync(message),
        connectionFor: (s) => this.router.connectionFor(s),
        redirected: (s, url) => this.router.redirected(s, url),
        grantFor: (s) => this.grants.get(s),
        mayWrite: () => this.mayWrite(site, log),
        accessVersion: () => this.accessGains.get(site) ?? 0,
        accessGained: () => this.accessGained(site),
        ...(rtc === undefined ? {} : { RTCPeerConnection: rtc }),
        ...(this.opts.rtcConfig === undefined ? {} : { rtcConfig: this.opts.rtcConfig }),
        onClosed: () => {
          if (this.logs.get(key) === l) this.logs.delete(key);
        },
      },
      this.codec === null || opts.codec !== undefined ? opts : { ...opts, codec: this.codec },
    );
    this.logs.set(key, l);
    return l;
  }

  /**
   * Whether this device may write on (site, log): the rights of a lease token for it (POST
   * /auth/v1/lease), which the tail node checks the same way; false without access.
   */
  private async mayWrite(site: string, log: string): Promise<boolean> {
    try {
      const { token } = await this.authed((t) => this.auth.lease(t, site, log));
      const rights = decodeJws(token)?.payload.rights;
      if (!Array.isArray(rights)) throw new DgError('INTERNAL', 'lease token without rights');
      return rights.includes('write') || rights.includes('admin');
    } catch (err) {
      if (err instanceof DgError && err.code === 'FORBIDDEN') return false;
      throw err;
    }
  }

  /**
   * The payload codec of the logs opened from now on (unless their options name one), e.g.
   * the end-to-end encryption of a KeyManager (keys/key-manager.ts); null for none.
   */
  setCodec(codec: PayloadCodec | null): void {
    this.codec = codec;
  }

  /** The tail connection that serves `site` (for direct use of the Tail API). */
  connection(site: string): Promise<TailConnection> {
    return this.router.connectionFor(site);
  }

  /**
   * Reconnects every tail connection that is waiting to retry, now instead of after its
   * backoff (up to 15 s after a long outage), and pings every open one. Call it when the app
   * knows the network is back; in a browser the client does so itself on the window's
   * `online` event.
   */
  reconnectNow(): void {
    if (this.closed) return;
    for (const c of this.router.connections()) c.reconnectNow();
  }

  /**
   * Closes every log and connection (the session stays stored for next time). Every later
   * call of this client is refused with UNAVAILABLE `client closed`: make a new one.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.offOnline();
    await Promise.all([...this.logs.values()].map((l) => l.close()));
    this.router.close();
  }

  private newConnection(url: string): TailConnection {
    const WS = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WS === undefined) throw new DgError('BAD_REQUEST', 'WebSocket: no implementation available (pass one)');
    const conn = new TailConnection({
      url,
      WebSocket: WS,
      token: (fresh) => (fresh ? this.session.refresh() : this.session.accessToken()),
      tokenExpiresAt: () => this.session.accessExpiresAt,
      onRevoked: (reason) => void this.session.revoked(reason),
      ...(this.opts.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.opts.requestTimeoutMs }),
    });
    conn.on('event', (ev) => {
      if (!('handle' in ev) || ev.handle === undefined) this.emit('event', ev);
    });
    return conn;
  }

  private authFailed(err: DgError): void {
    this.router.close(err);
    this.opts.onAuthError?.(err);
  }
}

/** Calls `fn` on the window's `online` event where there is one (browsers); returns the remover. */
function onNetworkBack(fn: () => void): () => void {
  const target = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void; navigator?: { onLine?: boolean } };
  if (typeof target.addEventListener !== 'function' || typeof target.navigator?.onLine !== 'boolean') return () => {};
  target.addEventListener('online', fn);
  return () => target.removeEventListener?.('online', fn);
}
