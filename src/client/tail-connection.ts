/**
 * One WebSocket session with a tail node (PROTOCOL.md "Tail API"), kept alive across drops.
 *
 * Guarantees:
 * - `connect` is always the first frame of a socket; requests made while disconnected wait
 *   (up to their timeout) and are sent after it succeeds.
 * - Replies are matched by id; every request settles exactly once (reply, error, timeout or
 *   connection loss).
 * - When the socket drops, requests in flight are failed with UNAVAILABLE unless they are
 *   idempotent (read, lease, ping, attest, and writes that carry a `wid`), which are sent
 *   again after reconnecting, once the `beforeResend` hooks have run (a hook re-leases: a
 *   handle belongs to a session). Arguments given as a function are rebuilt at each send.
 * - Reconnects follow the close code: 4401 refreshes the token first; 4403 stops for good
 *   (`stopped` event, `onRevoked`); 1001, 4408, 4429 and anything else back off
 *   exponentially with jitter (4429, and a `connect` answered RATE_LIMITED, wait at least
 *   5 s, still jittered).
 * - Before the access token expires, `connect` is sent again on the open socket with a
 *   fresh token, which extends the session.
 * - A socket that does not answer a ping within the request timeout is abandoned and
 *   replaced.
 */
import { DgError } from '../protocol/errors.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { wireError } from './reply-shape.js';
import {
  CLOSE,
  TAIL_PROTOCOL,
  type ConnectReply,
  type TailEvent,
  type TailOpArgs,
  type TailOpName,
  type TailOpReplies,
  type WebSocketConstructor,
  type WebSocketLike,
} from './tail-types.js';

export interface TailConnectionOptions {
  /** ws:// or wss:// URL of the tail endpoint. */
  url: string;
  WebSocket: WebSocketConstructor;
  /** A valid access token; `fresh` asks for a refreshed one (after 4401). */
  token: (fresh: boolean) => Promise<string>;
  /** When the token from `token()` expires (ms since the epoch), to re-connect in time. */
  tokenExpiresAt?: () => number;
  /** Called when the server revokes the session (close 4403 or a `revoke` event without handle). */
  onRevoked?: (reason: string) => void;
  requestTimeoutMs?: number;
  pingIntervalMs?: number;
  backoff?: BackoffOptions;
}

export interface RequestOptions {
  /** Resend after a reconnect instead of failing; defaults by op (see the class comment). */
  retry?: boolean;
  timeoutMs?: number;
}

type Args<K extends TailOpName> = Omit<TailOpArgs[K], never>;

interface Req {
  op: TailOpName;
  args: object | (() => object);
  retry: boolean;
  resolve: (v: unknown) => void;
  reject: (e: DgError) => void;
  timer: ReturnType<typeof setTimeout>;
  id: number | null;
}

export interface TailConnectionEvents extends Record<string, unknown> {
  /** The session is (re)established; `reconnect` is false the first time. */
  open: { info: ConnectReply; reconnect: boolean };
  close: { code: number; reason: string };
  event: TailEvent;
  /** The connection gave up for good (revoked, closed by the app, sign-in lost, or retired). */
  stopped: DgError;
  /** A reconnect is scheduled in `delayMs`, after `failures` attempts in a row that failed. */
  retrying: { failures: number; delayMs: number };
}

export type TailConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'stopped';

/** How long a socket closed for good may take to answer the close before it is dropped, ms. */
const CLOSE_GRACE_MS = 1000;
/** WebSocket.readyState of a closed socket. */
const CLOSED_STATE = 3;
/** The least wait before reconnecting after 4429 (rate limited), ms. */
const RATE_LIMITED_WAIT_MS = 5000;

const IDEMPOTENT: ReadonlySet<TailOpName> = new Set(['read', 'lease', 'ping', 'attest', 'release']);

/**
 * A self-healing Tail API connection.
 *
 * @example
 * ```ts
 * import WebSocket from 'ws';
 * import { TailConnection } from 'datagrove/client';
 * const conn = new TailConnection({ url: 'ws://localhost:8080/tail', WebSocket, token: async () => accessToken });
 * await conn.request('ping', {});
 * conn.close();
 * ```
 */
export class TailConnection extends Emitter<TailConnectionEvents> {
  private sock: WebSocketLike | null = null;
  private st: TailConnectionState = 'idle';
  private nextId = 1;
  private readonly inflight = new Map<number, Req>();
  private queue: Req[] = [];
  private readonly backoff: Backoff;
  /** The reason of the session-wide `revoke` event, when one came (the 4403 close follows it). */
  private revokedFor: string | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private renewTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastRx = 0;
  private opened = false;
  private freshTokenNext = false;
  private connectInfo: ConnectReply | null = null;
  private readonly waiters: { resolve: (i: ConnectReply) => void; reject: (e: DgError) => void }[] = [];
  private stopError: DgError | null = null;
  private isRetired = false;
  private readonly hooks = new Set<() => Promise<void>>();
  readonly url: string;
  private readonly timeoutMs: number;

  constructor(private readonly opts: TailConnectionOptions) {
    super();
    this.url = opts.url;
    this.backoff = new Backoff(opts.backoff ?? { baseMs: 250, maxMs: 15_000 });
    this.timeoutMs = opts.requestTimeoutMs ?? 15_000;
  }

  get state(): TailConnectionState {
    return this.st;
  }

  /** The last `connect` reply (session, user, device, limits), or null before the first. */
  get info(): ConnectReply | null {
    return this.connectInfo;
  }

  /** Starts connecting (idempotent). Requests start it by themselves. */
  start(): void {
    if (this.st === 'idle') this.openSocket();
  }

  /** Resolves when the session is established (at once when it is). */
  ready(): Promise<ConnectReply> {
    if (this.st === 'open' && this.connectInfo !== null) return Promise.resolve(this.connectInfo);
    if (this.st === 'stopped') return Promise.reject(this.stopError ?? new DgError('UNAVAILABLE', 'connection closed'));
    this.start();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Sends one request and resolves with its reply fields; rejects with the reply's error
   * as a DgError (or UNAVAILABLE on timeout / connection loss).
   */
  request<K extends TailOpName>(op: K, args: Args<K> | (() => Args<K>), opts: RequestOptions = {}): Promise<TailOpReplies[K]> {
    if (this.st === 'stopped') return Promise.reject(this.stopError ?? new DgError('UNAVAILABLE', 'connection closed'));
    const retry = opts.retry ?? (IDEMPOTENT.has(op) || (op === 'write' && typeof args === 'object' && 'wid' in args && args.wid !== undefined));
    return new Promise((resolve, reject) => {
      const req: Req = {
        op,
        args,
        retry,
        resolve: resolve as (v: unknown) => void,
        reject,
        id: null,
        timer: setTimeout(() => this.expire(req), opts.timeoutMs ?? this.timeoutMs),
      };
      if (this.st === 'open') this.send(req);
      else {
        this.queue.push(req);
        this.start();
      }
    });
  }

  /**
   * Skips the wait before the next reconnect attempt: call it when the network is known to
   * be back (the client calls it on the browser's `online` event). A connection that is
   * open is checked with a ping instead (a network change may have cut it silently); an
   * idle or stopped one is left alone.
   */
  reconnectNow(): void {
    if (this.st === 'open') {
      this.probe();
      return;
    }
    if (this.st !== 'waiting' || this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.backoff.reset();
    this.openSocket();
  }

  /** Closes for good: pending requests fail with `reason` (default UNAVAILABLE), no reconnect. */
  close(reason?: DgError): void {
    this.stop(reason ?? new DgError('UNAVAILABLE', 'connection closed'), CLOSE.normal);
  }

  /**
   * Closes for good because its node no longer serves (it left the shard map): like `close`,
   * but `retired` is true when `stopped` is emitted, so its users move to the node that
   * serves their site now instead of failing.
   */
  retire(reason: DgError): void {
    if (this.st === 'stopped') return;
    this.isRetired = true;
    this.stop(reason, CLOSE.normal);
  }

  /** Whether it was stopped by `retire` (its node left the shard map). */
  get retired(): boolean {
    return this.isRetired;
  }

  private expire(req: Req): void {
    if (req.id !== null) this.inflight.delete(req.id);
    this.queue = this.queue.filter((r) => r !== req);
    req.reject(new DgError('UNAVAILABLE', `${req.op}: no reply in time`));
    // A request with no answer on an open socket suggests a dead link: check it.
    if (this.st === 'open' && req.op !== 'ping') this.probe();
  }

  private send(req: Req): void {
    const sock = this.sock;
    if (sock === null) return;
    const id = this.nextId++;
    req.id = id;
    this.inflight.set(id, req);
    let frame: string;
    try {
      const args = typeof req.args === 'function' ? req.args() : req.args;
      frame = JSON.stringify({ ...args, id, op: req.op });
    } catch (err) {
      this.inflight.delete(id);
      clearTimeout(req.timer);
      req.reject(err instanceof DgError ? err : new DgError('BAD_REQUEST', `${req.op}: arguments cannot be sent as JSON`));
      return;
    }
    try {
      sock.send(frame);
    } catch {
      // The close handler will deal with it (retry or fail).
    }
  }

  private openSocket(): void {
    this.st = 'connecting';
    let sock: WebSocketLike;
    try {
      sock = new this.opts.WebSocket(this.url, TAIL_PROTOCOL);
    } catch (err) {
      this.scheduleReconnect(0, `cannot open socket: ${String(err)}`);
      return;
    }
    this.sock = sock;
    // A socket that never opens (a dropped SYN, a half-dead proxy) is given up after the
    // request timeout, like a connect with no reply.
    const opening = setTimeout(() => this.abandon(sock, CLOSE.stale, 'socket did not open in time'), this.timeoutMs);
    sock.onopen = () => {
      clearTimeout(opening);
      void this.sendConnect(sock);
    };
    sock.onmessage = ((ev: { data: unknown }) => this.onMessage(sock, ev.data)) as (ev: never) => void;
    sock.onclose = ((ev: { code: number; reason: string }) => {
      clearTimeout(opening);
      this.onClosed(sock, ev.code, ev.reason);
    }) as (ev: never) => void;
    sock.onerror = () => {};
  }

  private async sendConnect(sock: WebSocketLike): Promise<void> {
    let token: string;
    try {
      token = await this.opts.token(this.freshTokenNext);
      this.freshTokenNext = false;
    } catch (err) {
      const e = err instanceof DgError ? err : new DgError('UNAVAILABLE', 'no access token', { cause: err });
      if (e.code === 'UNAUTHORIZED' || e.code === 'REFRESH_REUSED') this.stop(e, CLOSE.normal);
      else this.abandon(sock, CLOSE.stale, 'no token');
      return;
    }
    if (this.sock !== sock) return;
    const id = this.nextId++;
    const timer = setTimeout(() => this.abandon(sock, CLOSE.stale, 'connect timed out'), this.timeoutMs);
    this.inflight.set(id, {
      op: 'connect',
      args: {},
      retry: false,
      id,
      timer,
      resolve: (v) => this.onConnected(sock, v as ConnectReply),
      reject: (e) => {
        // The server closes the socket after these answers (4401, 4429), but the close frame
        // comes after the reply and the socket is dropped here first: act on the reply as on
        // that close. A refused token: get a fresh one next time. Too many sessions of the
        // user on the node: wait as after 4429, not the short backoff of a blip.
        if (e.code === 'UNAUTHORIZED') this.freshTokenNext = true;
        const code = e.code === 'UNAUTHORIZED' ? CLOSE.unauthorized : e.code === 'RATE_LIMITED' ? CLOSE.rateLimited : CLOSE.stale;
        this.abandon(sock, code, e.message);
      },
    });
    sock.send(JSON.stringify({ id, op: 'connect', token }));
  }

  private onConnected(sock: WebSocketLike, info: ConnectReply): void {
    if (this.sock !== sock) return;
    this.connectInfo = info;
    this.st = 'open';
    this.backoff.reset();
    this.lastRx = Date.now();
    const reconnect = this.opened;
    this.opened = true;
    this.scheduleRenew();
    this.startPings();
    this.emit('open', { info, reconnect });
    void this.runHooks(reconnect).then(() => {
      if (this.sock !== sock) return;
      const queued = this.queue;
      this.queue = [];
      for (const r of queued) this.send(r);
      for (const w of this.waiters.splice(0)) w.resolve(info);
    });
  }

  /**
   * Registers `fn` to run after each reconnect, before queued and resent requests go out
   * (it may send requests itself, e.g. a re-lease, whose new handle the resent requests'
   * argument functions then use). Returns a function that unregisters it.
   */
  beforeResend(fn: () => Promise<void>): () => void {
    this.hooks.add(fn);
    return () => this.hooks.delete(fn);
  }

  private async runHooks(reconnect: boolean): Promise<void> {
    if (!reconnect || this.hooks.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.timeoutMs)));
    await Promise.race([Promise.allSettled([...this.hooks].map((fn) => fn())), limit]);
    clearTimeout(timer);
  }

  private onMessage(sock: WebSocketLike, data: unknown): void {
    if (this.sock !== sock) return;
    this.lastRx = Date.now();
    let text: string;
    if (typeof data === 'string') text = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = new TextDecoder().decode(data as ArrayBuffer);
    else return;
    let msg: Record<string, unknown>;
    try {
      const v = JSON.parse(text) as unknown;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
      msg = v as Record<string, unknown>;
    } catch {
      return;
    }
    if ('re' in msg) {
      if (typeof msg.re !== 'number') return; // {re:null}: the server could not parse a frame of ours
      const req = this.inflight.get(msg.re);
      if (req === undefined) return;
      this.inflight.delete(msg.re);
      clearTimeout(req.timer);
      if (msg.error !== undefined) req.reject(wireError(msg.error));
      else {
        const { re: _re, ...fields } = msg;
        req.resolve(fields);
      }
      return;
    }
    if (typeof msg.ev === 'string') {
      const ev = msg as unknown as TailEvent;
      if (ev.ev === 'revoke' && ev.handle === undefined) {
        this.revokedFor = typeof ev.reason === 'string' ? ev.reason : null;
        this.opts.onRevoked?.(ev.reason);
      }
      this.emit('event', ev);
    }
  }

  private onClosed(sock: WebSocketLike, code: number, reason: string): void {
    if (this.sock !== sock) return;
    this.sock = null;
    this.clearTimers();
    const wasOpen = this.st === 'open';
    if (this.st !== 'stopped') this.st = 'waiting';
    // Requests in flight: idempotent ones go back to the queue (in their order), others fail.
    const again: Req[] = [];
    for (const [id, req] of [...this.inflight].sort((a, b) => a[0] - b[0])) {
      this.inflight.delete(id);
      if (req.op === 'connect') {
        clearTimeout(req.timer);
        continue;
      }
      if (req.retry && this.st !== 'stopped') {
        req.id = null;
        again.push(req);
      } else {
        clearTimeout(req.timer);
        req.reject(new DgError('UNAVAILABLE', `${req.op}: connection lost`));
      }
    }
    this.queue = [...again, ...this.queue];
    if (wasOpen) this.emit('close', { code, reason });
    if (this.st === 'stopped') return;
    if (code === CLOSE.revoked) {
      // The revoke event before the close says why (device, family); the close reason only "revoked".
      const why = this.revokedFor ?? (reason || 'revoked');
      this.opts.onRevoked?.(why);
      // The credential was revoked (device, sign-in): UNAUTHORIZED, as onAuthError hears it.
      this.stop(new DgError('UNAUTHORIZED', `session revoked: ${why}`), null);
      return;
    }
    if (code === CLOSE.unauthorized) this.freshTokenNext = true;
    this.scheduleReconnect(code === CLOSE.rateLimited ? RATE_LIMITED_WAIT_MS : 0, reason);
  }

  /**
   * Waits the backoff's delay, but at least `minMs`. A delay raised to the floor keeps its
   * jitter (drawn from [minMs, 2·minMs]): clients refused together (a node that rate-limits
   * many at once) must not all come back at the same moment.
   */
  private scheduleReconnect(minMs: number, _why: string): void {
    if (this.st === 'stopped') return;
    this.st = 'waiting';
    const drawn = this.backoff.next();
    const delay = drawn >= minMs ? drawn : minMs + Math.round(Math.random() * minMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.st === 'waiting') this.openSocket();
    }, delay);
    this.emit('retrying', { failures: this.backoff.failures, delayMs: delay });
  }

  /** Drops a socket at once (no close handshake wait) and goes through the close path. */
  private abandon(sock: WebSocketLike, code: number, reason: string): void {
    if (this.sock !== sock) return;
    sock.onclose = null;
    sock.onmessage = null;
    const s = sock as WebSocketLike & { terminate?: () => void };
    try {
      if (typeof s.terminate === 'function') s.terminate();
      else s.close(code, reason);
    } catch {
      // already closed
    }
    this.onClosed(sock, code, reason);
  }

  private stop(err: DgError, closeCode: number | null): void {
    if (this.st === 'stopped') return;
    this.st = 'stopped';
    this.stopError = err;
    this.clearTimers();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const sock = this.sock;
    this.sock = null;
    if (sock !== null && closeCode !== null) {
      try {
        sock.close(closeCode);
      } catch {
        // already closed
      }
      this.dropIfUnanswered(sock);
    }
    for (const req of [...this.inflight.values(), ...this.queue]) {
      clearTimeout(req.timer);
      req.reject(err);
    }
    this.inflight.clear();
    this.queue = [];
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.emit('stopped', err);
  }

  /**
   * Drops a socket closed for good whose peer does not answer the close within
   * CLOSE_GRACE_MS (the network is gone): `ws` would wait 30 s for the answer, its timer and
   * socket keeping a Node process alive after the client closed. Browser sockets, which have
   * no `terminate`, keep their own close handshake.
   */
  private dropIfUnanswered(sock: WebSocketLike): void {
    const s = sock as WebSocketLike & { terminate?: () => void };
    if (typeof s.terminate !== 'function' || sock.readyState === CLOSED_STATE) return;
    const timer = setTimeout(() => {
      try {
        s.terminate!();
      } catch {
        // already closed
      }
    }, CLOSE_GRACE_MS);
    const closed = sock.onclose;
    sock.onclose = ((ev: never) => {
      clearTimeout(timer);
      closed?.(ev);
    }) as (ev: never) => void;
  }

  private clearTimers(): void {
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.renewTimer = null;
    this.pingTimer = null;
  }

  /** Re-sends `connect` with a fresh token shortly before the current one expires. */
  private scheduleRenew(): void {
    const expiresAt = this.opts.tokenExpiresAt?.();
    if (expiresAt === undefined || expiresAt <= 0) return;
    const life = expiresAt - Date.now();
    const wait = Math.max(1000, life - Math.min(60_000, Math.max(2000, life / 5)));
    this.renewTimer = setTimeout(() => void this.renew(), Math.min(wait, 2 ** 31 - 1));
  }

  private async renew(): Promise<void> {
    const sock = this.sock;
    if (sock === null || this.st !== 'open') return;
    try {
      const token = await this.opts.token(false);
      await this.request('connect', { token }, { retry: false });
      if (this.sock === sock) this.scheduleRenew();
    } catch (err) {
      if (err instanceof DgError && (err.code === 'UNAUTHORIZED' || err.code === 'REFRESH_REUSED')) {
        this.freshTokenNext = true;
        this.abandon(sock, CLOSE.unauthorized, 'token renewal failed');
      } else if (this.sock === sock) {
        this.renewTimer = setTimeout(() => void this.renew(), 5000);
      }
    }
  }

  private startPings(): void {
    const every = this.opts.pingIntervalMs ?? 25_000;
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastRx >= every) this.probe();
    }, every);
  }

  private probe(): void {
    const sock = this.sock;
    if (sock === null) return;
    this.request('ping', {}, { retry: false, timeoutMs: Math.min(this.timeoutMs, 10_000) }).catch(() => {
      if (this.sock === sock && Date.now() - this.lastRx > 5000) this.abandon(sock, CLOSE.stale, 'no answer');
    });
  }
}
