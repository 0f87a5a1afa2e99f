/**
 * A tail WebSocket client for tests (the `ws` package, as any Node client would use):
 * requests matched to replies by id, an event queue with wait helpers, raw frames for
 * bad-input tests, pause/resume of reading (slow consumers) and close-code capture.
 */
import { WebSocket } from 'ws';

export interface TailError {
  code: string;
  message: string;
}

export interface TailReply {
  re: number | null;
  error?: TailError;
  [field: string]: unknown;
}

export interface TailEventFrame {
  ev: string;
  handle?: string;
  [field: string]: unknown;
}

export interface Closed {
  code: number;
  reason: string;
}

/** A reply that carried `error`, thrown by `call`. */
export class TailCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

interface Waiter<T> {
  match: (x: T) => boolean;
  resolve: (x: T) => void;
}

export class TailClient {
  readonly events: TailEventFrame[] = [];
  /** Every frame received, replies and events, in arrival order. */
  readonly received: Record<string, unknown>[] = [];
  /** Replies with `re: null` (frames the server could not attribute to a request). */
  readonly nullReplies: TailReply[] = [];
  /** How many replies each id got. */
  readonly replyCount = new Map<number, number>();
  readonly closed: Promise<Closed>;
  closeCode: number | null = null;
  #nextId = 1;
  readonly #replies = new Map<number, TailReply>();
  readonly #replyWaiters = new Map<number, (r: TailReply) => void>();
  #eventWaiters: Waiter<TailEventFrame>[] = [];
  #nullWaiters: ((r: TailReply) => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('error', () => {});
    ws.on('message', (data: Buffer) => this.#onMessage(data.toString('utf8')));
  }

  /** Opens a session (not yet connected); rejects when the upgrade is refused. */
  static open(url: string, protocols: string | string[] = 'datagrove.v1'): Promise<TailClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
      const client = new TailClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  /** Opens and connects with an access token. */
  static async connect(url: string, token: string): Promise<TailClient> {
    const c = await TailClient.open(url);
    await c.call('connect', { token });
    return c;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a request and resolves with its reply (errors included). */
  request(op: string, args: Record<string, unknown> = {}): Promise<TailReply> {
    const id = this.#nextId++;
    this.send({ ...args, id, op });
    return this.reply(id);
  }

  /** Sends a request; resolves with the result, or throws TailCallError with the error code. */
  async call<T = Record<string, unknown>>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const r = await this.request(op, args);
    if (r.error !== undefined) throw new TailCallError(r.error.code, r.error.message);
    return r as unknown as T;
  }

  /** Sends a request and resolves with the error code it was answered with (fails if it succeeded). */
  async failure(op: string, args: Record<string, unknown> = {}): Promise<TailError> {
    const r = await this.request(op, args);
    if (r.error === undefined) throw new Error(`${op} succeeded: ${JSON.stringify(r)}`);
    return r.error;
  }

  /** An id no request of this client will use. */
  freshId(): number {
    return this.#nextId++;
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The reply to request `id` (whenever it came). */
  reply(id: number, timeoutMs = 10_000): Promise<TailReply> {
    const got = this.#replies.get(id);
    if (got !== undefined) {
      this.#replies.delete(id);
      return Promise.resolve(got);
    }
    return withTimeout(new Promise<TailReply>((resolve) => this.#replyWaiters.set(id, resolve)), timeoutMs, `reply to ${id}`, this.closed);
  }

  nextNullReply(timeoutMs = 10_000): Promise<TailReply> {
    const got = this.nullReplies.shift();
    if (got !== undefined) return Promise.resolve(got);
    return withTimeout(new Promise<TailReply>((resolve) => this.#nullWaiters.push(resolve)), timeoutMs, 'a re:null reply', this.closed);
  }

  /** Removes and returns the first queued (or next arriving) event that matches. */
  event(match: (e: TailEventFrame) => boolean, timeoutMs = 10_000): Promise<TailEventFrame> {
    const i = this.events.findIndex(match);
    if (i >= 0) return Promise.resolve(this.events.splice(i, 1)[0] as TailEventFrame);
    return withTimeout(
      new Promise<TailEventFrame>((resolve) => this.#eventWaiters.push({ match, resolve })),
      timeoutMs,
      'an event',
      this.closed,
    );
  }

  /** The next event of kind `ev` (and, when given, on `handle`). */
  nextEvent(ev: string, handle?: string, timeoutMs = 10_000): Promise<TailEventFrame> {
    return this.event((e) => e.ev === ev && (handle === undefined || e.handle === handle), timeoutMs);
  }

  /** Queued events of kind `ev`, removed from the queue. */
  drainEvents(ev: string): TailEventFrame[] {
    const out = this.events.filter((e) => e.ev === ev);
    for (const e of out) this.events.splice(this.events.indexOf(e), 1);
    return out;
  }

  /** Resolves with the close code (fails after `timeoutMs`). */
  async closedWith(timeoutMs = 10_000): Promise<Closed> {
    return withTimeout(this.closed, timeoutMs, 'the socket to close');
  }

  /** Stops reading from the socket (the server's send buffer fills up). */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }

  /** Cuts the TCP connection without a close handshake. */
  terminate(): void {
    this.ws.terminate();
  }

  #onMessage(text: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`server sent a frame that is not JSON: ${text.slice(0, 200)}`);
    }
    this.received.push(frame);
    if (typeof frame.ev === 'string') {
      const e = frame as TailEventFrame;
      const w = this.#eventWaiters.find((x) => x.match(e));
      if (w !== undefined) {
        this.#eventWaiters = this.#eventWaiters.filter((x) => x !== w);
        w.resolve(e);
      } else {
        this.events.push(e);
      }
      return;
    }
    const r = frame as TailReply;
    if (r.re === null) {
      const w = this.#nullWaiters.shift();
      if (w !== undefined) w(r);
      else this.nullReplies.push(r);
      return;
    }
    if (typeof r.re !== 'number') throw new Error(`frame with neither ev nor re: ${text.slice(0, 200)}`);
    this.replyCount.set(r.re, (this.replyCount.get(r.re) ?? 0) + 1);
    const w = this.#replyWaiters.get(r.re);
    if (w !== undefined) {
      this.#replyWaiters.delete(r.re);
      w(r);
    } else {
      this.#replies.set(r.re, r);
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, closed?: Promise<Closed>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
    void closed?.then((c) => {
      // Give frames that arrived with the close a moment to be delivered first.
      setTimeout(() => {
        clearTimeout(timer);
        reject(new Error(`socket closed (${c.code} ${c.reason}) while waiting for ${what}`));
      }, 50);
    });
  });
}

/** Base64url of `n` bytes of a repeated pattern (test payloads). */
export function entry(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

export function decodeEntry(b64: string): string {
  return Buffer.from(b64, 'base64url').toString('utf8');
}
