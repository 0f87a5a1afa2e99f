/**
 * One WebSocket session: who it is (after `connect`), the handles it holds, its rate
 * limits, and sending with a bound on what may queue up. Sending never throws and never
 * queues more than `hardBuffer` (plus one frame): over it the session closes 4408.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ErrorCode } from '../protocol/errors.js';
import { TAIL_CLOSE, type WriteArgs } from '../protocol/tail-schemas.js';
import { errorFrame, replyFrame } from './frames.js';
import type { TailLimits } from './limits.js';
import type { Handle, LiveLog } from './live-log.js';
import type { ReplySlot } from './reply-queue.js';
import { TokenBucket, WindowCounter } from './rate-limit.js';
import type { TextFrame } from './ws-frame.js';

export interface SessionAuth {
  user: string;
  device: string;
  /**
   * The refresh families of every token this session connected with (a re-`connect` may
   * bring a token of a newer login): revoking any of them closes the session.
   */
  families: string[];
  /** Access token expiry, seconds since the epoch. */
  exp: number;
}

/** What a session reports to the service. */
export interface SessionHooks {
  /** The session decided to close (any code); its handles must go now. */
  onClosing(session: Session, code: number): void;
  onError(code: ErrorCode): void;
}

const TEXT = { binary: false } as const;

/**
 * Replies sent during one synchronous run (`during`: a commit group's outcomes) leave in one
 * socket write per session: the first send corks the session's socket, the end of the run
 * uncorks it. Nothing waits longer than the run itself; outside a run, sends go at once.
 */
export class ReplyCork {
  #open = false;
  readonly #corked: Duplex[] = [];

  during(run: () => void): void {
    if (this.#open) return run();
    this.#open = true;
    try {
      run();
    } finally {
      this.#open = false;
      for (const socket of this.#corked) socket.uncork();
      this.#corked.length = 0;
    }
  }

  /** Corks `socket` until the end of the current run, if one is open. */
  hold(socket: Duplex): void {
    if (!this.#open) return;
    socket.cork();
    this.#corked.push(socket);
  }
}

/** A write that arrived while a `lease` of its log from the same session was being decided. */
export interface HeldWrite {
  id: number;
  args: WriteArgs;
  slot: ReplySlot;
  log: LiveLog;
  /** The lease it waited for has answered (or there was none): it may be decided at the head. */
  ready: boolean;
  /** Called once it is decided (a lease sent after it waits for that). */
  decided: (() => void)[];
}

export class Session {
  readonly id = randomBytes(12).toString('base64url');
  readonly openedAt = Date.now();
  auth: SessionAuth | null = null;
  /** Handles by handle id (one per log; see live-log.ts). */
  readonly handles = new Map<string, Handle>();
  /** Set once closing started (by either side): nothing more is sent or handled. */
  closing = false;
  /** Answered the last WebSocket ping. */
  alive = true;
  /** When the last WebSocket ping of the sweep went out. */
  pingedAt = this.openedAt;
  /** Requests waiting for auth or the store (lease, attest, read). */
  inFlight = 0;
  /** `attest` requests still with auth: a `lease` sent after them waits for their outcome. */
  readonly attests = new Set<Promise<unknown>>();
  /** `lease` requests still running, by `site\0log`: a `release` sent after one takes effect after it. */
  readonly leasing = new Map<string, Promise<unknown>>();
  /**
   * `release` requests waiting for what was sent before them, by `site\0log`: a `lease` sent
   * after one runs once it took effect, so it takes a new handle rather than the released one.
   */
  readonly releasing = new Map<string, Promise<unknown>>();
  /** Writes waiting for a `lease` of their log sent before them (writes.ts), by `site\0log`. */
  readonly heldWrites = new Map<string, HeldWrite[]>();
  heldWriteCount = 0;
  /** When the socket went over the soft buffer limit (0 while keeping up). */
  slowSince = 0;
  readonly ops: TokenBucket;
  readonly signals: TokenBucket;
  readonly signalBytes: TokenBucket;
  readonly #rejects: WindowCounter;
  readonly #bad: WindowCounter;
  /**
   * @param socket the connection under `ws` (the one the HTTP upgrade handed over), corked
   *   around a run of replies; null sends every frame at once.
   */
  constructor(
    readonly ws: WebSocket,
    readonly limits: TailLimits,
    private readonly hooks: SessionHooks,
    private readonly socket: Duplex | null = null,
    private readonly cork: ReplyCork | null = null,
  ) {
    this.ops = new TokenBucket(limits.opsPerSec, limits.opsBurst);
    this.signals = new TokenBucket(limits.signalsPerSec, limits.signalsBurst);
    this.signalBytes = new TokenBucket(limits.signalBytesPerSec, limits.signalBytesBurst);
    this.#rejects = new WindowCounter(limits.abuseRejects, limits.windowMs);
    this.#bad = new WindowCounter(limits.badFrames, limits.windowMs);
  }

  #probing = false;

  /**
   * Pings the peer now and cuts the session (as a lost connection: 1006) if no pong comes
   * within `ms`. One probe at a time; the regular pings of the sweep go on meanwhile.
   */
  probe(ms: number): void {
    if (this.#probing || this.closing) return;
    this.#probing = true;
    this.alive = false;
    this.pingedAt = Date.now(); // the sweep's next ping counts from this one
    try {
      this.ws.ping();
    } catch {
      // The close event follows.
    }
    setTimeout(() => {
      this.#probing = false;
      if (!this.alive && !this.closing) this.lost();
    }, ms).unref();
  }

  /** The peer stopped answering pings: the session ends as a lost connection (1006), the socket is cut. */
  lost(): void {
    this.closed(1006);
    this.ws.terminate();
  }

  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  /** The end of the last read of this session (see `readTurn`). */
  #reads: Promise<void> = Promise.resolve();

  /**
   * Waits until the session's earlier reads have sent their replies; call the function it
   * resolves with when this read's reply is sent (or refused). Reads run one at a time per
   * session, so each sees what the ones before it queued on the socket, and a burst of
   * reads from a client that does not take its replies costs one store read, not one each.
   */
  async readTurn(): Promise<() => void> {
    const before = this.#reads;
    let done!: () => void;
    this.#reads = new Promise<void>((resolve) => (done = resolve));
    await before;
    return done;
  }

  /** Sends one text frame (a string, or a prebuilt UTF-8 buffer shared by many sessions). */
  send(frame: string | Buffer): void {
    if (this.closing) return;
    // Corked already (by an earlier reply of this run) when writableCorked > 0.
    if (this.socket !== null && this.cork !== null && this.socket.writableCorked === 0) this.cork.hold(this.socket);
    try {
      this.ws.send(frame, TEXT);
    } catch {
      return;
    }
    if (this.ws.bufferedAmount > this.limits.hardBuffer) this.close(TAIL_CLOSE.slow, 'slow consumer');
  }

  /**
   * Sends a prebuilt text frame (the same bytes for every follower of an event) straight to
   * the socket. Safe because `ws` writes each of its own frames whole and at once (no
   * compression: the service turns it off), so frames never interleave; only while the
   * WebSocket is open and `ws` holds nothing back (its buffered amount is the socket's own),
   * else through `ws`.
   */
  sendFrame(f: TextFrame): void {
    if (this.closing) return;
    const socket = this.socket;
    try {
      if (socket !== null && this.ws.readyState === this.ws.OPEN && socket.writable && this.ws.bufferedAmount === socket.writableLength) {
        socket.write(f.frame);
      } else {
        this.ws.send(f.payload, TEXT);
      }
    } catch {
      return;
    }
    if (this.ws.bufferedAmount > this.limits.hardBuffer) this.close(TAIL_CLOSE.slow, 'slow consumer');
  }

  reply(id: number, result: object): void {
    this.send(replyFrame(id, result));
  }

  /**
   * Sends an error reply; bad frames count toward 4400, rate-limited ones toward 4429.
   * `malformed` false: a well-formed request the server refused later (a lease over the
   * handle limit, say), which never counts as a bad frame.
   */
  replyError(id: number | null, code: ErrorCode, message: string, malformed = true): void {
    this.send(errorFrame(id, code, message));
    this.noteError(code, malformed);
  }

  /** Counts an error reply sent some other way (in a log's reply order): metrics, 4400, 4429. */
  noteError(code: ErrorCode, malformed = true): void {
    this.hooks.onError(code);
    if (code === 'BAD_REQUEST' || code === 'UNKNOWN_OP' || code === 'TOO_LARGE') {
      if (malformed && this.#bad.hit()) this.close(TAIL_CLOSE.abuse, 'too many bad frames');
    } else if (code === 'RATE_LIMITED') {
      if (this.#rejects.hit()) this.close(TAIL_CLOSE.rateLimited, 'rate limited');
    }
  }

  /**
   * Starts the close handshake; the socket is cut if the peer does not answer (ws closeTimeout).
   * A slow consumer's close frame waits behind everything queued for it, which the server would
   * hold meanwhile: that socket is cut after `slowCutMs` instead.
   */
  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.hooks.onClosing(this, code);
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
      return;
    }
    if (code === TAIL_CLOSE.slow) setTimeout(() => this.ws.terminate(), this.limits.slowCutMs).unref();
  }

  /** The peer closed the socket (or it was cut: 1006). */
  closed(code: number): void {
    if (this.closing) return;
    this.closing = true;
    this.hooks.onClosing(this, code);
  }
}
