/**
 * Group commit: many writers, one transaction. Every durable commit costs an fsync (SQLite)
 * or a round trip to the database (PostgreSQL); grouping the writes that arrive together
 * into one `appendBatch` pays that cost once for all of them.
 *
 * Guarantees:
 * - Requests submitted during the same turn of the event loop (up to `maxBatch` requests
 *   and `maxBatchBytes` of entries) go into one `appendBatch`, and so do those of the next
 *   turn, and of one more if that one brought any (a burst read over several turns);
 *   requests that arrive while a batch commits go into the next one.
 * - With `delayMs` > 0, a pipelining writer's requests (enqueued with `mayWait`: its next
 *   request comes without waiting for this one's outcome) share commits: while such a
 *   request waits, commits start at most once per `delayMs`, so it waits at most until
 *   `delayMs` after the last commit started, and less when `target` requests or
 *   `WAIT_MAX_BYTES` of entries are waiting, which start a commit at once. A request after
 *   a quiet spell of `delayMs`, and any request while none waiting may wait, commits in
 *   its own turn as without a delay: a writer that waits for each outcome is never held.
 *   When most recent waits gained no request (the writers' pipelines were already all in
 *   the queue), waiting stops for `WAIT_BACKOFF_MS`.
 * - At most one batch is in flight at a time, and batches commit in submission order, so
 *   the store decides requests exactly in the order they were submitted. Use one
 *   GroupCommitter per store.
 * - Each request's result reaches its caller, in submission order, only after the batch's
 *   transaction committed (acknowledged means durable): `submit` resolves a promise;
 *   `enqueue` calls its sink, all of a batch's sinks one after the other in one go, so the
 *   replies they send can leave together.
 * - If a batch's commit rejects, every request of that batch fails with that error and
 *   nothing of the batch was stored (the store's guarantee). Later batches still run.
 * - Bounded: when the queue of requests not yet in a batch would exceed `maxPending`
 *   requests or `maxPendingBytes`, `submit` rejects with DgError UNAVAILABLE instead of
 *   buffering without bound. A malformed request rejects with BAD_REQUEST on its own and
 *   never joins (or spoils) a batch.
 */
import { DgError } from '../protocol/errors.js';
import { checkAppendRequest, type AppendRequest, type AppendResult, type LogStore } from './log-store.js';

export interface GroupCommitOptions {
  /** Most requests in one batch (default 512). */
  maxBatch?: number;
  /** Most entry bytes in one batch (default 8 MiB); a single larger request goes alone. */
  maxBatchBytes?: number;
  /** Most requests waiting for a batch (default 10 000). */
  maxPending?: number;
  /** Most entry bytes waiting for a batch (default 128 MiB). */
  maxPendingBytes?: number;
  /** Shortest time between the starts of two commits while requests keep coming (ms; default 0: none). */
  delayMs?: number;
  /** Requests waiting that start a commit without waiting for `delayMs` (default 4). */
  target?: number;
  /**
   * Runs the delivery of each batch's outcomes (every sink of the batch, in order) inside
   * it, synchronously: the tail service corks the sockets the replies go to around it.
   */
  deliverWith?: (deliver: () => void) => void;
  /** Gets an error a sink threw (a bug); the other sinks still get their outcome. Default: rethrown in a microtask. */
  onSinkError?: (err: unknown) => void;
  /** Told how long each successful `appendBatch` took (ms), before its outcomes are delivered. */
  onCommit?: (ms: number) => void;
}

export interface GroupCommitStats {
  /** Batches committed (successfully). */
  batches: number;
  /** Requests in those batches. */
  requests: number;
  /** Batches whose commit failed (all their requests rejected). */
  failedBatches: number;
  /** Requests waiting for a batch. */
  pending: number;
  /** Requests in the batch being committed now. */
  inFlight: number;
}

/**
 * Where `enqueue` delivers one request's outcome: exactly one of the two is called, once.
 * (The write path passes its pending write itself, so a write costs no promise or closure.)
 */
export interface CommitSink {
  committed(result: AppendResult): void;
  failed(err: unknown): void;
}

interface Pending {
  req: AppendRequest;
  bytes: number;
  sink: CommitSink;
  mayWait: boolean;
}

/** `submit`'s sink: settles a promise. */
class PromiseSink implements CommitSink {
  constructor(
    readonly committed: (r: AppendResult) => void,
    readonly failed: (err: unknown) => void,
  ) {}
}

/** Turns of the event loop a batch may wait for more of a burst (see `schedule`). */
const MAX_EXTRA_TURNS = 2;

/**
 * Queued entry bytes that start a commit without waiting for `delayMs`: a durable commit's
 * fixed cost matters for small writes; a batch this large already spreads it (as Nagle's
 * rule holds back small segments only).
 */
const WAIT_MAX_BYTES = 8 * 1024;
/** When most recent waits gained no request, requests do not wait for this long (ms). */
const WAIT_BACKOFF_MS = 1000;
/** Smoothing of the share of waits that gained a request, and the share under which waiting stops. */
const WAIT_GAIN_WEIGHT = 0.2;
const WAIT_GAIN_FLOOR = 0.3;

const DEFAULTS = {
  target: 4,
  maxBatch: 512,
  maxBatchBytes: 8 * 1024 * 1024,
  maxPending: 10_000,
  maxPendingBytes: 128 * 1024 * 1024,
} as const;

function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`GroupCommitter: ${name} must be a positive integer`);
  return v;
}

export class GroupCommitter {
  private readonly store: LogStore;
  private readonly maxBatch: number;
  private readonly maxBatchBytes: number;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly delayMs: number;
  private readonly target: number;
  private readonly deliverWith: (deliver: () => void) => void;
  private readonly onSinkError: (err: unknown) => void;
  private readonly onCommit: ((ms: number) => void) | null;

  private queue: Pending[] = [];
  private queuedBytes = 0;
  /** Queued requests that may wait for others (see `delayMs`). */
  private waitable = 0;
  private inFlight = 0;
  /** A run is due on setImmediate, or on `timer` (the delay). */
  private scheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** performance.now() when the last commit started. */
  private lastStart = Number.NEGATIVE_INFINITY;
  /** Requests that arrived during the current wait (while `timer` is set). */
  private arrivedDuringWait = 0;
  /** Smoothed share of recent waits during which a request arrived. */
  private waitGain = 1;
  /** performance.now() before which nothing waits (after waits that gained too little). */
  private noWaitUntil = Number.NEGATIVE_INFINITY;
  private closed = false;
  private batches = 0;
  private committedRequests = 0;
  private failedBatches = 0;
  /** Requests accepted by `submit`, and requests settled (committed or failed). */
  private submitted = 0;
  private settled = 0;
  private flushWaiters: { target: number; resolve: () => void }[] = [];

  constructor(store: LogStore, options: GroupCommitOptions = {}) {
    this.store = store;
    this.maxBatch = positive('maxBatch', options.maxBatch, DEFAULTS.maxBatch);
    this.maxBatchBytes = positive('maxBatchBytes', options.maxBatchBytes, DEFAULTS.maxBatchBytes);
    this.maxPending = positive('maxPending', options.maxPending, DEFAULTS.maxPending);
    this.maxPendingBytes = positive('maxPendingBytes', options.maxPendingBytes, DEFAULTS.maxPendingBytes);
    this.target = positive('target', options.target, DEFAULTS.target);
    const delay = options.delayMs ?? 0;
    if (!Number.isFinite(delay) || delay < 0 || delay > 1000) throw new RangeError('GroupCommitter: delayMs must be between 0 and 1000');
    this.delayMs = delay;
    this.deliverWith = options.deliverWith ?? ((deliver) => deliver());
    this.onCommit = options.onCommit ?? null;
    this.onSinkError =
      options.onSinkError ??
      ((err) =>
        queueMicrotask(() => {
          throw err;
        }));
  }

  /** The number of the batch whose results are being delivered (1, 2, …; grows by one per batch). */
  get batchNumber(): number {
    return this.batches + this.failedBatches;
  }

  /** Whether queued requests are waiting for others to share their commit (see `delayMs`). */
  get waiting(): boolean {
    return this.timer !== null;
  }

  get stats(): GroupCommitStats {
    return {
      batches: this.batches,
      requests: this.committedRequests,
      failedBatches: this.failedBatches,
      pending: this.queue.length,
      inFlight: this.inFlight,
    };
  }

  /** Queues one request for the next batch; resolves with its result once committed. `mayWait`: see `enqueue`. */
  submit(req: AppendRequest, mayWait = false): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => this.enqueue(req, new PromiseSink(resolve, reject), mayWait));
  }

  /**
   * Queues one request for the next batch; `sink` learns its outcome once committed. A
   * request refused at once (closing, malformed, over the queue bound) fails in a
   * microtask, never inside this call. `mayWait`: its writer pipelines, so it may wait up
   * to `delayMs` to share a commit (see the guarantees).
   */
  enqueue(req: AppendRequest, sink: CommitSink, mayWait = false): void {
    let bytes: number;
    try {
      if (this.closed) throw new DgError('UNAVAILABLE', 'log writer is closing');
      bytes = checkAppendRequest(req);
      if (this.queue.length >= this.maxPending || this.queuedBytes + bytes > this.maxPendingBytes) {
        throw new DgError('UNAVAILABLE', 'too many writes waiting to commit', { retryAfter: 1 });
      }
    } catch (err) {
      queueMicrotask(() => sink.failed(err));
      return;
    }
    this.queue.push({ req, bytes, sink, mayWait });
    this.queuedBytes += bytes;
    if (mayWait) this.waitable++;
    if (this.timer !== null) this.arrivedDuringWait++;
    this.submitted++;
    this.schedule();
  }

  /** Resolves once every request submitted before this call is committed or failed. */
  flush(): Promise<void> {
    const target = this.submitted;
    if (this.settled >= target) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push({ target, resolve }));
  }

  /** Refuses new requests (UNAVAILABLE), then waits for the queued ones. Leaves the store open. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /** Whether the queue may commit now, or should wait for more of a stream (see `delayMs`). */
  private due(now: number): boolean {
    return (
      this.delayMs === 0 ||
      this.waitable === 0 ||
      now < this.noWaitUntil ||
      this.queue.length >= this.target ||
      this.queuedBytes >= WAIT_MAX_BYTES ||
      now - this.lastStart >= this.delayMs
    );
  }

  private schedule(): void {
    if (this.running) return; // the running loop takes the queue, or schedules again
    const now = performance.now();
    if (!this.due(now)) {
      if (this.timer === null && !this.scheduled) {
        this.arrivedDuringWait = 0;
        this.timer = setTimeout(() => {
          this.timer = null;
          this.waited(this.arrivedDuringWait > 0);
          void this.run();
        }, this.lastStart + this.delayMs - now);
      }
      return;
    }
    if (this.timer !== null) {
      // The wait ends early: enough requests came.
      clearTimeout(this.timer);
      this.timer = null;
      this.waited(true);
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate runs after the I/O callbacks of this loop turn, so the writes that
    // arrived on every socket during the turn share one batch. A burst that arrives over a
    // few reads (large frames, several sockets) gets up to MAX_EXTRA_TURNS more turns to
    // join: one more always, another while the last one brought requests. A turn with
    // nothing to read costs one poll.
    let turns = 0;
    let seen = this.submitted;
    const fire = () => {
      if (turns < MAX_EXTRA_TURNS && (turns === 0 || this.submitted !== seen)) {
        turns++;
        seen = this.submitted;
        setImmediate(fire);
        return;
      }
      this.scheduled = false;
      void this.run();
    };
    setImmediate(fire);
  }

  private waited(gained: boolean): void {
    this.waitGain += WAIT_GAIN_WEIGHT * ((gained ? 1 : 0) - this.waitGain);
    if (this.waitGain < WAIT_GAIN_FLOOR) {
      this.noWaitUntil = performance.now() + WAIT_BACKOFF_MS;
      this.waitGain = 1;
    }
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      // Whatever arrived while a batch committed forms the next batch, at once or after the delay.
      while (this.queue.length > 0 && this.due(performance.now())) {
        this.lastStart = performance.now();
        await this.commit(this.take());
      }
    } finally {
      this.running = false;
    }
    if (this.queue.length > 0) this.schedule();
  }

  private take(): Pending[] {
    let n = 0;
    let bytes = 0;
    for (const p of this.queue) {
      if (n >= this.maxBatch || (n > 0 && bytes + p.bytes > this.maxBatchBytes)) break;
      bytes += p.bytes;
      if (p.mayWait) this.waitable--;
      n++;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, n);
  }

  private async commit(batch: Pending[]): Promise<void> {
    this.inFlight = batch.length;
    const reqs = new Array<AppendRequest>(batch.length);
    for (let i = 0; i < batch.length; i++) reqs[i] = (batch[i] as Pending).req;
    let results: AppendResult[];
    try {
      results = await this.store.appendBatch(reqs);
      if (!Array.isArray(results) || results.length !== batch.length) {
        throw new DgError('INTERNAL', 'internal error', { cause: new Error('log store returned a result count that does not match the batch') });
      }
    } catch (err) {
      this.failedBatches++;
      this.deliver(batch, null, err);
      this.settle(batch.length);
      return;
    }
    this.batches++;
    this.committedRequests += batch.length;
    if (this.onCommit !== null) {
      try {
        this.onCommit(performance.now() - this.lastStart); // run() set it just before this commit
      } catch (e) {
        this.onSinkError(e);
      }
    }
    this.deliver(batch, results, null);
    this.settle(batch.length);
  }

  /** Calls every sink of the batch in order, inside one `deliverWith` run. */
  private deliver(batch: Pending[], results: AppendResult[] | null, err: unknown): void {
    const all = () => {
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i] as Pending;
        try {
          if (results === null) p.sink.failed(err);
          else p.sink.committed(results[i] as AppendResult);
        } catch (e) {
          this.onSinkError(e);
        }
      }
    };
    try {
      this.deliverWith(all);
    } catch (e) {
      this.onSinkError(e);
    }
  }

  private settle(n: number): void {
    this.inFlight = 0;
    this.settled += n;
    if (this.flushWaiters.length === 0) return;
    const still: typeof this.flushWaiters = [];
    for (const w of this.flushWaiters) {
      if (w.target <= this.settled) w.resolve();
      else still.push(w);
    }
    this.flushWaiters = still;
  }
}
