import { connect, errors as natsErrors } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Status, Subscription as NatsSubscription } from '@nats-io/transport-node';
import { DgError, toWireError } from '../protocol/errors.js';
import { LogThrottle } from '../protocol/log-throttle.js';
import { settlesWithin } from '../protocol/settles-within.js';
import type { Bus, BusHandler, RequestOptions, SubscribeOptions, Subscription } from './bus.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './bus.js';
import { decodeJson, encodeJson } from './json-codec.js';
import { assertQueue, assertSubject } from './subject.js';

/** What the NATS bus logs with (a pino or fastify logger fits). */
export interface BusLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface NatsBusOptions {
  /** Client name shown by the NATS server's monitoring. */
  name?: string;
  log?: BusLog;
  /** healthy() turns false once the connection has been down this long (default 5 s). */
  unhealthyAfterMs?: number;
}

interface DownState {
  since: number | undefined;
}

const SILENT: BusLog = { info: () => {}, warn: () => {}, error: () => {} };
const DEFAULT_UNHEALTHY_AFTER_MS = 5000;
const MAX_REQUEST_TIMEOUT_MS = 5 * 60_000;
/** Handler calls not yet settled, over all subscriptions; beyond it messages are refused. */
const MAX_IN_FLIGHT = 10_000;
/** How long close() waits for its subscriptions to drain and their running handlers to reply. */
const CLOSE_GRACE_MS = 5000;
/** How long close() then waits for the server to take what is still buffered. */
const CLOSE_FLUSH_MS = 1000;
/** Messages that are not JSON are logged at most once per this long (anyone on the bus can send them). */
const UNDECODABLE_LOG_MS = 10_000;
/** Reconnect delay bounds; between them the delay is half the outage so far. */
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;

/**
 * The bus over NATS core (PROTOCOL.md "Internal bus"), for split roles. It gives the
 * guarantees of bus.ts, with these NATS specifics:
 * - Messages are strict JSON nested at most 64 levels (json-codec.ts). A payload that is
 *   not (or nests deeper) is logged, at most once per 10 s, and never reaches a handler (a
 *   request carrying one is answered BAD_REQUEST so that its sender need not wait for a
 *   timeout); a reply that is not fails its request INTERNAL, logged likewise. Subjects are
 *   validated (subject.ts).
 * - Each subscription hands its messages to the handler in arrival order, one call per
 *   message. An async handler is not awaited before the next call (so a slow request does
 *   not hold up the others); a request's reply is sent when its handler settles.
 * - Queue groups are NATS queue subscriptions, so they balance across processes.
 * - The connection reconnects forever, the delay growing with the outage (250 ms to 5 s,
 *   with jitter); NATS re-subscribes, then `onReconnect` listeners run. What was published
 *   meanwhile is lost (the client drops its buffer at each attempt to reconnect).
 *   healthy() turns false when the connection is closed, or down for longer than
 *   `unhealthyAfterMs`.
 * - close() stops subscriptions, lets running handlers reply (up to 5 s), then drains; it
 *   takes at most 6 s, and closes at once without draining while the connection is down.
 */
export class NatsBus implements Bus {
  readonly #nc: NatsConnection;
  readonly #log: BusLog;
  readonly #unhealthyAfterMs: number;
  readonly #subs = new Set<NatsSubscription>();
  /** Handler calls not yet settled, with the subscription that made each. */
  readonly #inFlight = new Map<Promise<unknown>, NatsSubscription>();
  /** Since when the connection is down (undefined while connected); the backoff reads it too. */
  readonly #down: DownState;
  #overloaded = false;
  readonly #reconnected = new Set<() => void>();
  /** Undecodable messages are logged at most once per UNDECODABLE_LOG_MS, with a count. */
  readonly #undecodable = new LogThrottle(UNDECODABLE_LOG_MS);
  readonly #undecodableReplies = new LogThrottle(UNDECODABLE_LOG_MS);
  #closing: Promise<void> | undefined;

  private constructor(nc: NatsConnection, log: BusLog, unhealthyAfterMs: number, down: DownState) {
    this.#nc = nc;
    this.#log = log;
    this.#unhealthyAfterMs = unhealthyAfterMs;
    this.#down = down;
    void this.#watch();
    void nc.closed().then((err) => {
      if (err !== undefined) log.error({ err }, 'bus connection closed with an error');
      else if (this.#closing === undefined) log.warn({}, 'bus connection closed');
    });
  }

  /**
   * Connects to the NATS server(s) at `url` (`nats://host:port`, or several separated by
   * commas; `nats://user:password@host:port` or `nats://token@host:port` for a server that
   * asks for credentials, the same on every URL). The first connection must succeed (else
   * DgError UNAVAILABLE, naming the server's or the network's reason): a wrong URL at
   * start-up is reported at once rather than retried forever.
   */
  static async connect(url: string, options: NatsBusOptions = {}): Promise<NatsBus> {
    const log = options.log ?? SILENT;
    const unhealthyAfterMs = options.unhealthyAfterMs ?? DEFAULT_UNHEALTHY_AFTER_MS;
    // Kept current by the instance from the status stream; the delay handler below reads
    // it to grow the delay with the outage.
    const down: DownState = { since: undefined };
    const { servers, credentials } = natsServers(url);
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers,
        ...credentials,
        name: options.name ?? 'datagrove',
        maxReconnectAttempts: -1,
        reconnectDelayHandler: () => {
          const outage = down.since === undefined ? 0 : Date.now() - down.since;
          const base = Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_MIN_MS, outage / 2));
          return Math.round(base * (1 + Math.random() * 0.2));
        },
        // The default (2 min) would let a half-open TCP connection look healthy for minutes.
        pingInterval: 10_000,
        maxPingOut: 3,
        timeout: 10_000,
      });
    } catch (err) {
      const reason = err instanceof Error ? `: ${err.message}` : '';
      throw new DgError('UNAVAILABLE', `cannot connect to the bus at ${redact(url)}${reason}`, { cause: err });
    }
    log.info({ server: nc.getServer(), name: options.name }, 'bus connected');
    return new NatsBus(nc, log, unhealthyAfterMs, down);
  }

  publish(subject: string, message: unknown): void {
    this.#assertOpen();
    assertSubject(subject);
    const payload = this.#encode(message);
    try {
      this.#nc.publish(subject, payload);
    } catch (err) {
      throw this.#unavailable(err, subject);
    }
  }

  onReconnect(listener: () => void): Subscription {
    this.#reconnected.add(listener);
    return { unsubscribe: () => void this.#reconnected.delete(listener) };
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    assertSubject(subject);
    if (options.queue !== undefined) assertQueue(options.queue);
    let sub: NatsSubscription;
    try {
      sub = this.#nc.subscribe(subject, {
        ...(options.queue === undefined ? {} : { queue: options.queue }),
        callback: (err, msg) => {
          if (err !== null) this.#log.error({ err, subject }, 'bus subscription failed');
          else this.#deliver(sub, msg, handler, subject);
        },
      });
    } catch (err) {
      throw this.#unavailable(err, subject);
    }
    this.#subs.add(sub);
    void sub.closed.then(() => this.#subs.delete(sub));
    return {
      unsubscribe: () => {
        this.#subs.delete(sub);
        if (!sub.isClosed() && !this.#nc.isClosed()) sub.unsubscribe();
      },
    };
  }

  async request<T = unknown>(subject: string, message: unknown, options: RequestOptions = {}): Promise<T> {
    this.#assertOpen();
    assertSubject(subject);
    const timeout = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout <= 0 || timeout > MAX_REQUEST_TIMEOUT_MS) {
      throw new DgError('BAD_REQUEST', `request timeout must be in (0, ${MAX_REQUEST_TIMEOUT_MS}] ms`);
    }
    const payload = this.#encode(message);
    let reply: Msg;
    try {
      reply = await this.#nc.request(subject, payload, { timeout });
    } catch (err) {
      throw this.#unavailable(err, subject);
    }
    try {
      return decodeJson(reply.data) as T;
    } catch (err) {
      // Whoever answers the subject chooses the reply: spaced out like undecodable messages.
      const left = this.#undecodableReplies.take();
      if (left !== null) this.#log.error({ err, subject, bytes: reply.data.length, notLogged: left }, 'bus reply is not JSON (at most one line per 10 s)');
      throw new DgError('INTERNAL', 'malformed bus reply', { cause: err });
    }
  }

  healthy(): boolean {
    if (this.#closing !== undefined || this.#nc.isClosed() || this.#nc.isDraining()) return false;
    const since = this.#down.since;
    return since === undefined || Date.now() - since < this.#unhealthyAfterMs;
  }

  /** Resolves once the server has processed everything sent so far (subscriptions included). */
  async flush(): Promise<void> {
    this.#assertOpen();
    try {
      await this.#nc.flush();
    } catch (err) {
      throw this.#unavailable(err, 'flush');
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#nc.isClosed()) return;
    // Draining is an exchange with the server. While the connection is down (or the server
    // does not answer) nothing buffered can reach it, and waiting would hold the process's
    // exit for as long as the outage lasts: close() takes at most CLOSE_GRACE_MS plus
    // CLOSE_FLUSH_MS, then closes the connection whatever is left.
    let drained = false;
    if (this.#down.since === undefined) {
      const deadline = Date.now() + CLOSE_GRACE_MS;
      // No new message reaches a handler once the subscriptions have drained...
      const live = new Set(this.#subs);
      const subsDrained = await settlesWithin(Promise.all([...live].map((s) => s.drain())), deadline - Date.now());
      // ...and the handlers they started get a bounded time to send their replies (those
      // of subscriptions already gone are not waited for: nobody asked to keep them).
      const running = [...this.#inFlight].filter(([, sub]) => live.has(sub)).map(([p]) => p);
      await settlesWithin(Promise.allSettled(running), deadline - Date.now());
      drained = subsDrained && (await settlesWithin(this.#nc.drain(), CLOSE_FLUSH_MS));
    }
    if (!drained) {
      this.#log.warn({ connected: this.#down.since === undefined }, 'bus closed without draining: the server was unreachable or did not answer in time');
      await this.#nc.close().catch(() => {});
    }
    this.#log.info({}, 'bus closed');
  }

  /** Decodes a message, runs the handler and, for a request, replies when it settles. */
  #deliver(sub: NatsSubscription, msg: Msg, handler: BusHandler, subject: string): void {
    let message: unknown;
    try {
      message = decodeJson(msg.data);
    } catch (err) {
      const left = this.#undecodable.take();
      if (left !== null) {
        const reason = err instanceof Error ? err.message : String(err);
        this.#log.warn({ subject, bytes: msg.data.length, reason, dropped: left + 1 }, 'bus messages that are not JSON dropped (at most one line per 10 s)');
      }
      this.#reply(msg, { ok: false, error: toWireError(err) });
      return;
    }
    if (this.#inFlight.size >= MAX_IN_FLIGHT) {
      if (!this.#overloaded) this.#log.warn({ subject, inFlight: this.#inFlight.size }, 'bus handlers overloaded; refusing messages');
      this.#overloaded = true;
      this.#reply(msg, { ok: false, error: { code: 'UNAVAILABLE', message: 'busy' } });
      return;
    }
    this.#overloaded = false;
    let result: unknown;
    try {
      result = handler(message, subject);
    } catch (err) {
      this.#failed(msg, err, subject);
      return;
    }
    if (!(result instanceof Promise)) {
      this.#reply(msg, result);
      return;
    }
    const settled: Promise<unknown> = result.then(
      (value: unknown) => this.#reply(msg, value),
      (err: unknown) => this.#failed(msg, err, subject),
    );
    this.#inFlight.set(settled, sub);
    void settled.finally(() => this.#inFlight.delete(settled));
  }

  #failed(msg: Msg, err: unknown, subject: string): void {
    // A DgError answering a request is an expected outcome, not a fault.
    if (!(err instanceof DgError) || msg.reply === undefined) this.#log.error({ err, subject }, 'bus handler failed');
    this.#reply(msg, { ok: false, error: toWireError(err) });
  }

  /** Answers a request (a publish has no reply subject and gets nothing). */
  #reply(msg: Msg, value: unknown): void {
    if (msg.reply === undefined || msg.reply === '') return;
    let payload: Uint8Array;
    try {
      // A handler that returns nothing answers null: JSON has no undefined.
      payload = this.#encode(value === undefined ? null : value);
    } catch (err) {
      // The handler's fault (a non-JSON or oversized value): the requester learns that much.
      this.#log.error({ err, subject: msg.subject }, 'bus reply cannot be sent');
      const tooLarge = err instanceof DgError && err.code === 'TOO_LARGE';
      payload = encodeJson({ ok: false, error: tooLarge ? err.toJSON() : toWireError(null) });
    }
    try {
      msg.respond(payload);
    } catch (err) {
      // The connection closed under the handler: the requester times out.
      this.#log.warn({ err, subject: msg.subject }, 'bus reply lost');
    }
  }

  #encode(message: unknown): Uint8Array {
    const payload = encodeJson(message);
    const max = this.#nc.info?.max_payload;
    if (max !== undefined && payload.length > max) throw new DgError('TOO_LARGE', `bus message of ${payload.length} bytes exceeds ${max}`);
    return payload;
  }

  #assertOpen(): void {
    if (this.#closing !== undefined || this.#nc.isClosed()) throw new DgError('UNAVAILABLE', 'bus closed');
  }

  /** Every transport failure is UNAVAILABLE to callers; the NATS error is kept as cause. */
  #unavailable(err: unknown, subject: string): DgError {
    if (err instanceof DgError) return err;
    if (err instanceof natsErrors.RequestError && err.isNoResponders()) return new DgError('UNAVAILABLE', `no responders for ${subject}`, { cause: err });
    if (err instanceof natsErrors.TimeoutError) return new DgError('UNAVAILABLE', `request ${subject} timed out`, { cause: err });
    if (err instanceof natsErrors.ClosedConnectionError || err instanceof natsErrors.DrainingConnectionError) {
      return new DgError('UNAVAILABLE', 'bus closed', { cause: err });
    }
    this.#log.warn({ err, subject }, 'bus operation failed');
    return new DgError('UNAVAILABLE', `bus operation on ${subject} failed`, { cause: err });
  }

  /** Follows the connection state: logs changes, keeps #down for healthy() and the backoff. */
  async #watch(): Promise<void> {
    for await (const s of this.#nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.#down.since ??= Date.now();
          this.#log.warn({ server: s.server }, 'bus disconnected; reconnecting');
          break;
        case 'reconnect': {
          const outageMs = this.#down.since === undefined ? 0 : Date.now() - this.#down.since;
          this.#down.since = undefined;
          this.#log.info({ server: s.server, outageMs }, 'bus reconnected');
          // NATS sent the subscriptions again before it reported the reconnect.
          for (const f of [...this.#reconnected]) {
            try {
              f();
            } catch (err) {
              this.#log.error({ err }, 'bus reconnect listener failed');
            }
          }
          break;
        }
        case 'staleConnection':
        case 'ldm':
        case 'slowConsumer':
          this.#log.warn(statusDetails(s), `bus status: ${s.type}`);
          break;
        case 'error':
          this.#log.error({ err: s.error }, 'bus server error');
          break;
        default:
          // reconnecting (every attempt), ping, update, forceReconnect, close: not worth a line.
          break;
      }
    }
  }
}

function statusDetails(s: Status): object {
  if (s.type === 'ldm') return { server: s.server };
  if (s.type === 'slowConsumer') return { subject: s.sub.getSubject(), pending: s.pending };
  return {};
}

/**
 * The server list of `url` and the credentials its URLs carry. The NATS client ignores
 * credentials written in a server URL (the server then refuses the connection), so they
 * are taken out and passed as its options: `user:password@` as user and password, a user
 * name alone as a token. NATS takes one set of credentials for all servers.
 */
function natsServers(url: string): { servers: string[]; credentials: { user?: string; pass?: string; token?: string } } {
  const servers: string[] = [];
  let credentials: { user?: string; pass?: string; token?: string } = {};
  let first: string | undefined;
  for (const server of url.split(',').map((s) => s.trim())) {
    const u = URL.canParse(server) ? new URL(server) : null;
    if (u === null || (u.username === '' && u.password === '')) {
      servers.push(server);
      continue;
    }
    const user = decodeURIComponent(u.username);
    const c = u.password === '' ? { token: user } : { user, pass: decodeURIComponent(u.password) };
    const key = JSON.stringify(c);
    if (first !== undefined && first !== key) throw new DgError('BAD_REQUEST', `the bus URLs ${redact(url)} carry different credentials: give every server the same`);
    first = key;
    credentials = c;
    u.username = '';
    u.password = '';
    servers.push(u.toString().replace(/\/$/, ''));
  }
  return { servers, credentials };
}

/** The URL without credentials, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/g, '//***@');
}
