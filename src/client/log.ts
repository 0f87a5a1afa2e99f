/**
 * A log opened by this device: leases it (taking leadership when free), delivers its
 * entries to subscribers in order and exactly once, and appends.
 *
 * Appends: the leader writes (log-sequencer.ts); a follower sends its entries to the leader
 * over a WebRTC data channel or the signal relay (log-forwarder.ts, peer-link.ts). Every
 * entry carries the SDK header (entry-header.ts) naming its writer and signed by it; readers
 * count only entries whose signature verifies (log-admission.ts). So after any disruption
 * (socket drop, leader change, nack) the Log re-leases, reads the log to its end, settles
 * the appends it finds there, and sends only the rest: an append whose promise resolved is
 * in the log exactly once, and none is lost while the Log stays open.
 */
import { DgError } from '../protocol/errors.js';
import { Backoff, sleep } from './backoff.js';
import { b64urlDecode, b64urlEncode, randomBytes } from './bytes.js';
import { Emitter } from './emitter.js';
import { Admission } from './log-admission.js';
import { AppendQueue } from './log-append-queue.js';
import { encodeEntry, entrySigner, originPrefix, STREAM_BYTES, MAX_HEADER_BYTES, type EntrySigner, type OriginPrefix } from './entry-header.js';
import { Forwarder } from './log-forwarder.js';
import { OutboxClaims, type LockingStorage } from './log-outbox-claims.js';
import type { OutboxEntry, OutboxRecord } from './log-outbox.js';
import { RestoredStreams } from './log-restored.js';
import { findStreamEntries } from './log-follower-streams.js';
import { LogFeed, type FeedRead } from './log-feed.js';
import { PendingAppends } from './log-pending.js';
import { Sequencer, type SeqItem } from './log-sequencer.js';
import { PeerHub } from './peer-link.js';
import { reassemblyLimits } from './link-reassembly.js';
import { PayloadPipeline } from './crypto/payload-pipeline.js';
import type { LinkMessage } from './link-messages.js';
import type { TailConnection } from './tail-connection.js';
import type { TailEvent, TailLimitsView } from './tail-types.js';
import { leaseWithProof, type LeaseOk } from './log-lease.js';
import { WriteRight } from './log-write-right.js';

import type { LogContext, LogEntry, LogEvents, LogOptions, LogRole, LogState, OutboxEvent, RestoredEvent } from './log-types.js';

export type { LogContext, LogEntry, LogEvents, LogOptions, LogRole, LogState, OutboxEvent, RestoredEvent };


const DEFAULT_LIMITS: TailLimitsView = { maxFrame: 1 << 20, maxEntries: 1000, maxEntryBytes: 256 * 1024, maxHandles: 256 };
const MAX_PENDING = 100_000;
const PEER_LINGER_MS = 30_000;
/**
 * Failures of recovery that end the Log. NOT_FOUND here comes from a lease (no such site):
 * a request on a handle the server lost is turned into UNAVAILABLE (`onHandle`).
 */
const FATAL = new Set(['FORBIDDEN', 'BAD_REQUEST', 'NOT_FOUND', 'UNAUTHORIZED', 'REFRESH_REUSED']);
/** Write failures that say "not now": the server is up but cannot take the write yet. */
const RETRY_LATER = new Set(['UNAVAILABLE', 'RATE_LIMITED', 'INTERNAL']);

/**
 * An open log (made by `client.openLog`).
 *
 * @example
 * ```ts
 * const log = client.openLog(site, 'chat');
 * log.on('role', (role) => console.log('now', role));
 * log.subscribe((entries) => entries.forEach((e) => console.log(e.index, e.origin?.device)));
 * await log.opened;
 * await log.append([new TextEncoder().encode('hi')]);
 * await log.close();
 * ```
 */
export class Log extends Emitter<LogEvents> {
  readonly site: string;
  readonly name: string;
  private conn: TailConnection | null = null;
  private offConn: (() => void)[] = [];
  private handle: string | null = null;
  private st: LogState = 'opening';
  private currentRole: LogRole | null = null;
  private currentLeader: string | null = null;
  /** The epoch this Log leads or follows in (taken up at `settle`; link messages are checked against it). */
  private currentEpoch = -1;
  /** The newest epoch heard of (a lease, a `leader` event): `log.epoch`, so a `leader` handler reads the new leader's. */
  private heardEpoch = -1;
  private peerSet = new Set<string>();
  private stash: TailEvent[] | null = null;
  /**
   * Devices that hold a handle that may write, from the lease's `writers` and `peer`
   * events (which tell of devices, whatever handles each holds); null when the server
   * does not say.
   */
  private writers: Set<string> | null = null;
  private readonly feed: LogFeed;
  /** Holds its resolutions while the Log is not ready (opening or recovering): see setState. */
  private readonly pending = new PendingAppends(true, (seq) => this.ownRecord?.remove(seq));
  /** The outbox's records this Log holds (null without `outbox`). */
  private readonly claims: OutboxClaims | null;
  /** This writer stream's outbox record, once its first append is kept there. */
  private ownRecord: OutboxRecord | null = null;
  /** Appends of earlier writer streams of this device, taken up from the outbox. */
  private readonly restored: RestoredStreams;
  private readonly appends: AppendQueue;
  private readonly admission: Admission;
  private readonly sequencer: Sequencer;
  private readonly forwarder: Forwarder;
  private readonly hub: PeerHub;
  /** Asked when this follower's appends have no leader to take them, or the leader refuses them. */
  private readonly writeRight: WriteRight;
  private readonly prefix: OriginPrefix;
  private readonly signer: EntrySigner;
  private readonly stream: string;
  private seq = 0;
  /** The index after the last entry admitted (every one before it has settled this writer's appends). */
  private admittedTo: number;
  /** The next index to hand to subscribers (entries are opened by the codec after admission). */
  private deliveredTo: number;
  /** The error the log failed with (null while open, or closed by the app). */
  private failedWith: DgError | null = null;
  /** `opened` resolves once `deliveredTo` reaches this (null: nothing waits). */
  private openedAt: number | null = null;
  /** Opened with `from: 'end'`: delivery starts at the length of the first lease. */
  private fromEnd: boolean;
  private term = 0;
  private needRecover = false;
  private pumpQueued = false;
  private vacancyTimer: ReturnType<typeof setTimeout> | null = null;
  private recovering: Promise<void> | null = null;
  /** Aborted when the Log closes: ends the waits of recovery, so that no timer outlives it. */
  private readonly closing = new AbortController();
  /** Consecutive writes the server could not commit; reset by a write that succeeds. */
  private readonly writeRetry = new Backoff({ baseMs: 100, maxMs: 15_000 });
  /** How long the next recovery waits before it leases again (after such a write). */
  private retryDelayMs = 0;
  private readonly subscribers = new Set<(entries: LogEntry[]) => void>();
  private openedResolve!: () => void;
  private openedReject!: (e: DgError) => void;
  /** Resolves when the log is first leased and caught up (every entry up to its length then handed to subscribers); rejects if opening fails for good. */
  readonly opened: Promise<void>;
  private readonly lead: boolean;
  /** The payload codec (end-to-end encryption), when the log has one. */
  private readonly codec: PayloadPipeline | null;

  constructor(
    private readonly ctx: LogContext,
    opts: LogOptions = {},
  ) {
    super();
    this.site = ctx.site;
    this.name = ctx.log;
    this.lead = opts.lead ?? true;
    this.opened = new Promise((resolve, reject) => {
      this.openedResolve = resolve;
      this.openedReject = reject;
    });
    this.opened.catch(() => undefined);
    this.stream = b64urlEncode(randomBytes(STREAM_BYTES));
    // Nothing of this writer is before `from`: its entries are written after it opened.
    this.admittedTo = typeof opts.from === 'number' ? opts.from : 0;
    this.deliveredTo = this.admittedTo;
    this.fromEnd = opts.from === 'end';
    this.codec = opts.codec === undefined || opts.codec === null ? null : new PayloadPipeline(opts.codec, { site: ctx.site, log: ctx.log, device: ctx.device, stream: this.stream });
    this.claims = opts.outbox === undefined ? null : new OutboxClaims(opts.outbox as LockingStorage, ctx, this.stream);
    this.prefix = originPrefix(ctx.device, this.stream);
    this.signer = entrySigner(ctx.site, ctx.log, ctx.sign);
    this.appends = new AppendQueue({
      lastSeq: () => this.seq,
      // Sealed (with a codec), then signed.
      prepare: async (payload, seq) => encodeEntry(this.prefix, seq, this.codec === null ? payload : await this.codec.seal(payload, seq), this.signer),
      // Kept in the outbox before anything sends them. No copy is below the admitted position.
      ...(this.claims === null ? {} : { persist: async (base: number, entries: Uint8Array[]) => this.persist(base, entries) }),
      commit: (base, entries) => {
        this.seq = base + entries.length;
        const queued = entries.map((e, i) => this.pending.add(base + 1 + i, e));
        this.pump();
        return queued;
      },
    });
    this.admission = new Admission({ site: ctx.site, log: ctx.log }, { device: ctx.device, stream: this.stream }, {
      pendingBytes: (seq) => this.pending.bytesOf(seq),
      committed: (origin, index, signed) => {
        if (origin.device === ctx.device && origin.stream === this.stream) {
          if (signed) this.pending.resolve(origin.seq, index);
        } else if (origin.device === ctx.device && this.restored.has(origin.stream)) {
          if (signed) this.restored.resolve(origin.stream, origin.seq, index);
        } else this.sequencer.noteCommitted(origin, index, signed);
      },
      refusedOwn: (stream, seq, index) => {
        const err = new DgError('CONFLICT', `the entry landed at ${index}, after a later entry of this writer: readers refuse it as a replay`);
        if (stream === this.stream) this.pending.reject(seq, err);
        else this.restored.reject(stream, seq, err);
      },
      admitted: (entries) => {
        if (entries.length > 0) this.admittedTo = entries[entries.length - 1]!.index + 1;
        this.sequencer.flushAcks();
        if (this.codec !== null) this.codec.open(entries, (opened) => this.deliver(opened));
        else this.deliver(entries);
      },
    });
    this.feed = new LogFeed(
      this.admittedTo,
      (from) => this.read(from),
      (at, entries) => this.admission.push(at, entries),
      // A read that failed outside recovery (a reply lost, reads refused for a while): the
      // entries it was for may be announced by no other event, so recovery reads them.
      () => this.requestRecover(),
    );
    this.sequencer = new Sequencer(
      {
        write: async (at, entries, wid) => this.onHandle('write', (handle) => this.requireConn().request('write', { handle, at, entries, wid }, { retry: false })),
        written: (at, items, length) => {
          this.writeRetry.reset();
          this.feed.observe(length);
          this.feed.offer(at, items.map((i) => i.bytes));
        },
        failed: (err) => {
          // A server that cannot commit (its store is full or away) says so on every write:
          // the next try waits, longer each time, until a write succeeds.
          if (err !== null && RETRY_LATER.has(err.code)) this.retryDelayMs = this.writeRetry.next();
          this.requestRecover();
        },
        refused: (items, err) => {
          for (const it of items) {
            if (it.origin.stream === this.stream) this.pending.reject(it.origin.seq, err);
            else this.restored.reject(it.origin.stream, it.origin.seq, err);
          }
        },
        // A server that does not say who writes (no `writers`) leaves it open, as before. This
        // device leads, so its other sessions (tabs, processes) may write too, whatever the
        // server's `writers` and `peer` events last said of this device.
        mayWrite: (device) => device === ctx.device || this.writers === null || this.writers.has(device),
        find: (device, stream, from, to) => findStreamEntries((at) => this.read(at), device, stream, from, to),
      },
      this.stream,
      DEFAULT_LIMITS,
    );
    this.hub = new PeerHub({
      signal: async (to, kind, data) => {
        await this.onHandle('signal', (handle) => this.requireConn().request('signal', { handle, to, kind, data }, { retry: false }));
      },
      ...(ctx.RTCPeerConnection === undefined ? {} : { RTCPeerConnection: ctx.RTCPeerConnection }),
      ...(ctx.rtcConfig === undefined ? {} : { rtcConfig: ctx.rtcConfig }),
      channelTimeoutMs: opts.channelTimeoutMs ?? 3000,
      onMessage: (from, msg, reply) => this.onLinkMessage(from, msg, reply),
      admits: (device) => this.linkAdmits(device),
      declined: (_from, reply) => this.sequencer.declined(reply),
      reassembly: () => reassemblyLimits(this.limits().maxFrame),
    });
    const retransmitMs = opts.retransmitMs ?? 4000;
    this.forwarder = this.makeForwarder(this.pending, this.stream, () => this.seq + 1, retransmitMs);
    this.restored = new RestoredStreams({
      forwarder: (pending, stream, nextSeq) => this.makeForwarder(pending, stream, nextSeq, retransmitMs),
      landed: (stream, seq, index) => this.emit('outbox', { stream, seq, index }),
      failed: (stream, seq, error) => this.emit('outbox', { stream, seq, error }),
    });
    this.writeRight = new WriteRight(ctx.mayWrite, ctx.accessVersion);
    this.requestRecover();
    // Appends left in the outbox by earlier Logs are taken up once this one has caught up.
    if (this.claims !== null) {
      const claims = this.claims;
      this.opened.then(() => claims.restore((stream, entries, record) => this.takeUp(stream, entries, record)), () => undefined);
    }
  }

  /** A Forwarder of the appends in `pending` (writer stream `stream`) to the leader this Log follows. */
  private makeForwarder(pending: PendingAppends, stream: string, nextSeq: () => number, retransmitMs: number): Forwarder {
    return new Forwarder({
      pending,
      stream,
      nextSeq,
      seen: () => this.admittedTo,
      send: (leader, msg) => this.hub.sendTo(leader, msg),
      // No acknowledgement through two resends: the link may be dead on the far side.
      stalled: (leader) => this.hub.drop(leader),
      busy: (leader) => this.hub.relaying(leader),
      retransmitMs,
      batch: 256,
      // Well within the relay's signal byte budget (4 MiB at once, 1 MiB/s).
      batchBytes: 512 * 1024,
    });
  }

  /** Keeps entries base+1… in this writer's outbox record (its lock taken on the first call). */
  private async persist(base: number, entries: Uint8Array[]): Promise<void> {
    if (this.claims === null) return;
    const record = await this.claims.ownRecord();
    this.ownRecord = record;
    const from = this.admittedTo;
    await record.add(entries.map((bytes, i) => ({ seq: base + 1 + i, bytes, from })));
  }

  /**
   * Restores the appends an earlier writer stream of this device left in the outbox: told
   * (`restored`), matched against the log from where they may be, and the rest sent (see
   * log-restored.ts). Resolves true once all have settled, false if the Log closed first.
   */
  private takeUp(stream: string, entries: OutboxEntry[], record: OutboxRecord): Promise<boolean> {
    if (this.st === 'closed') return Promise.resolve(false);
    const settled = this.restored.add(stream, entries, record, this.admittedTo);
    this.emit('restored', { stream, seqs: entries.map((e) => e.seq) });
    // Recovery scans the log for them, then sends those it did not find.
    this.requestRecover();
    return settled;
  }

  /** "leader" or "follower" (null before the first lease). */
  get role(): LogRole | null {
    return this.currentRole;
  }
  /** The leader's device id, or null when there is none. */
  get leader(): string | null {
    return this.currentLeader;
  }
  /**
   * The newest leader epoch heard of (-1 before the first lease). It changes before the
   * `leader` event that comes with it, so a handler of that event reads the new leader's
   * epoch on every device.
   */
  get epoch(): number {
    return this.heardEpoch;
  }
  /** The largest length of the log heard of. */
  get length(): number {
    return this.feed.length;
  }
  /** How many entries (from index 0) have been delivered to subscribers; the next index to deliver. */
  get position(): number {
    return this.deliveredTo;
  }
  get state(): LogState {
    return this.st;
  }
  /** Devices holding a handle on this log, as last reported (event `peers`); empty once closed. */
  get peers(): string[] {
    return [...this.peerSet];
  }
  /** This writer's stream id (in the origin of its entries). */
  get writerStream(): string {
    return this.stream;
  }
  /** The path appends to the leader take now: "channel", "relay", "pending", or null. */
  get leaderPath(): 'channel' | 'relay' | 'pending' | null {
    const l = this.currentLeader;
    return l === null || this.currentRole === 'leader' ? null : this.hub.pathTo(l);
  }

  /**
   * Calls `fn` with each batch of new entries, in index order, each entry once.
   * Entries before the subscription are not replayed: subscribe right after `openLog`.
   * Returns a function that unsubscribes.
   *
   * @example
   * ```ts
   * const log = client.openLog(site, 'chat');
   * const stop = log.subscribe((entries) => {
   *   for (const e of entries) console.log(e.index, new TextDecoder().decode(e.payload));
   * });
   * ```
   */
  subscribe(fn: (entries: LogEntry[]) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /**
   * Appends payloads; resolves with their indexes once they are durable in the log (in
   * this order; they may interleave with other writers' entries).
   *
   * @example
   * ```ts
   * const [index] = await log.append([new TextEncoder().encode('hello')]);
   * ```
   */
  append(payloads: Uint8Array[]): Promise<number[]> {
    if (this.st === 'closed') return Promise.reject(this.closedError());
    if (!Array.isArray(payloads)) return Promise.reject(new DgError('BAD_REQUEST', 'payloads: must be an array of Uint8Array'));
    const max = this.limits().maxEntryBytes - MAX_HEADER_BYTES - (this.codec?.overhead ?? 0);
    for (const p of payloads) {
      if (!(p instanceof Uint8Array)) return Promise.reject(new DgError('BAD_REQUEST', 'payloads: must be Uint8Array'));
      if (p.length > max) return Promise.reject(new DgError('TOO_LARGE', `payload: at most ${max} bytes`));
    }
    if (this.pending.size + this.appends.waiting + payloads.length > MAX_PENDING) return Promise.reject(new DgError('RATE_LIMITED', 'too many appends waiting'));
    // Signing (and sealing) is asynchronous: the queue keeps calls in order and takes a
    // call's seqs only once all its entries are signed, so it changes neither order nor seqs.
    return this.appends.add(payloads);
  }

  /** Releases the lease and closes; pending appends fail with UNAVAILABLE (those in the outbox stay there for a later open). */
  async close(): Promise<void> {
    if (this.st === 'closed') return;
    const conn = this.conn;
    const handle = this.handle;
    this.shutdown(new DgError('UNAVAILABLE', 'log closed'));
    if (conn !== null && handle !== null) await conn.request('release', { handle }, { retry: false, timeoutMs: 3000 }).catch(() => undefined);
    // The outbox's last save is done and this writer's lock released (a later open takes its entries up at once).
    await this.claims?.close();
  }

  /**
   * What an append to the closed log is refused with: the error the log failed with (a
   * revoked device, access or grant, a bad `from`: retrying cannot help), or UNAVAILABLE
   * "log closed" when the app (or client.close) closed it.
   */
  private closedError(): DgError {
    const e = this.failedWith;
    return e === null ? new DgError('UNAVAILABLE', 'log closed') : new DgError(e.code, `log closed: ${e.message}`, { cause: e });
  }

  /** Replaces the peer set, telling `peers` listeners when it changed. */
  private setPeers(next: Set<string>): void {
    const same = next.size === this.peerSet.size && [...next].every((d) => this.peerSet.has(d));
    this.peerSet = next;
    if (!same) this.emit('peers', [...next]);
  }

  private shutdown(err: DgError): void {
    if (this.st === 'closed') return;
    this.setState('closed');
    this.closing.abort();
    this.setPeers(new Set());
    if (this.vacancyTimer !== null) clearTimeout(this.vacancyTimer);
    this.sequencer.stop();
    this.forwarder.stop();
    // Appends still pending stay in the outbox: a later open writes them.
    this.restored.close();
    void this.claims?.close();
    this.hub.close();
    for (const off of this.offConn) off();
    this.offConn = [];
    this.appends.stop(err);
    this.pending.rejectAll(err, false);
    this.openedReject(err);
    this.ctx.onClosed();
  }

  private fail(err: DgError): void {
    if (this.st === 'closed') return;
    this.failedWith = err;
    this.shutdown(err);
    this.emit('error', err);
  }

  private limits(): TailLimitsView {
    return this.conn?.info?.limits ?? DEFAULT_LIMITS;
  }

  private requireConn(): TailConnection {
    if (this.conn === null) throw new DgError('UNAVAILABLE', 'not connected');
    return this.conn;
  }

  private requireHandle(): string {
    if (this.handle === null) throw new DgError('UNAVAILABLE', 'no lease');
    return this.handle;
  }

  /**
   * A request on the lease's handle. NOT_FOUND "no such handle" says the server holds the
   * handle no more: the site moved to another node (whose `revoke` `moved` may come after
   * this answer, or not at all on this connection), or the handle was released. That is no
   * reason to close: the Log leases again (following a redirect), reads to the end, and
   * resends only the appends it does not find there (nothing is lost or written twice). The
   * caller sees UNAVAILABLE, a failure that recovery retries; NOT_FOUND stays fatal only
   * where a lease answers it (an unknown site). A `signal` NOT_FOUND may also say that its
   * peer is gone, which is no loss of the handle.
   */
  private async onHandle<T>(op: 'read' | 'write' | 'signal', send: (handle: string) => Promise<T>): Promise<T> {
    const handle = this.requireHandle();
    try {
      return await send(handle);
    } catch (err) {
      if (!isHandleGone(op, err)) throw err;
      if (this.handle === handle) this.handle = null;
      this.requestRecover();
      throw new DgError('UNAVAILABLE', `lease lost: ${err.message}`, { cause: err });
    }
  }

  private isClosed(): boolean {
    return this.st === 'closed';
  }

  private setState(s: LogState): void {
    if (this.st === s || this.st === 'closed') return;
    this.st = s;
    // Appends found in the log meanwhile resolve once it is ready again (log-pending.ts).
    if (s === 'recovering') this.pending.hold = true;
    this.emit('state', s);
    if (s === 'ready') this.pending.release();
  }

  private async read(from: number): Promise<FeedRead> {
    const r = await this.onHandle('read', (handle) => this.requireConn().request('read', { handle, from }, { retry: false }));
    const entries: Uint8Array[] = [];
    for (const e of r.entries) {
      const b = b64urlDecode(e);
      if (b === null) throw new DgError('INTERNAL', 'malformed entry in read reply');
      entries.push(b);
    }
    return { from: r.from, entries, length: r.length };
  }

  private deliver(out: LogEntry[]): void {
    if (out.length > 0) this.deliveredTo = out[out.length - 1]!.index + 1;
    for (const fn of [...this.subscribers]) {
      try {
        fn(out);
      } catch (err) {
        console.error('datagrove: log subscriber failed', err);
      }
    }
    if (this.openedAt !== null && this.deliveredTo >= this.openedAt) {
      this.openedAt = null;
      this.openedResolve();
    }
  }

  /** Moves pending appends along in the current role, once per tick (appends made together travel together). */
  private pump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pumpNow();
    });
  }

  private pumpNow(): void {
    if (this.st !== 'ready') return;
    if (this.currentRole === 'leader') {
      const items: SeqItem[] = [];
      // Restored appends first: an earlier Log made them, they have waited longest.
      for (const { stream, entry: p } of this.restored.sendable()) {
        if (p.term === this.term) continue;
        p.term = this.term;
        items.push({ bytes: p.bytes, origin: { device: this.ctx.device, stream, seq: p.seq }, own: true });
      }
      for (const p of this.pending.all()) {
        if (p.term === this.term) continue;
        p.term = this.term;
        items.push({ bytes: p.bytes, origin: { device: this.ctx.device, stream: this.stream, seq: p.seq }, own: true });
      }
      if (items.length > 0) this.sequencer.enqueueOwn(items);
    } else {
      // Appends that no leader takes (none leads: a device that may write and asks to lead
      // is made leader), or that this device may not write anyway: learn whether it may.
      if (this.pending.size + this.restored.size > 0 && (this.currentLeader === null || this.writeRight.refused)) this.writeRight.check(() => this.refuseAppends());
      this.forwarder.flush();
      for (const f of this.restored.forwarders()) f.flush();
    }
  }

  /** This device may not write on the log: its appends can never land. */
  private refuseAppends(): void {
    if (this.currentRole === 'leader') return;
    const err = new DgError('FORBIDDEN', 'no write right on this log');
    this.pending.rejectAll(err, true);
    this.restored.rejectAll(err);
  }

  /**
   * A message over a link (`from`: the device the server says sent it). Any device holding
   * a handle on the log, a reader too, can send any message: a `submit` is taken only while
   * this device leads and only from a device that may write (the sequencer checks); the
   * answers to submits count only from the leader this device follows, and of the epoch it
   * follows it in (but `stale`, which carries that leader's view of the epoch). An `ack`
   * settles no append (log-forwarder.ts): that takes reading the entry in the log.
   */
  private onLinkMessage(from: string, msg: LinkMessage, reply: (m: LinkMessage) => void): void {
    if (msg.t === 'submit') this.sequencer.submitRemote(from, msg, reply);
    else if (msg.t === 'ack' && this.currentRole === 'follower' && from === this.currentLeader && msg.epoch === this.currentEpoch) {
      this.forwarder.onAck(msg);
      this.restored.forwarderOf(msg.stream)?.onAck(msg);
    }
    else if (msg.t === 'denied' && this.currentRole === 'follower' && from === this.currentLeader && msg.epoch === this.currentEpoch) {
      // Refused for a while (not just while this device's handle was being renewed): no
      // write right on the log, so its appends can never land. The auth service may say so sooner.
      for (const f of this.restored.forwarders()) f.notTaken();
      if (this.forwarder.denied()) this.refuseAppends();
      else this.writeRight.check(() => this.refuseAppends());
    }
    else if (msg.t === 'refused' && this.currentRole === 'follower' && from === this.currentLeader && msg.epoch === this.currentEpoch) {
      // The server refused the write that carried them: resending would fail the same way.
      const err = (): DgError => new DgError(msg.code, 'the server refused the write that carried this entry');
      if (msg.stream === this.stream) for (const seq of msg.seqs) this.pending.reject(seq, err());
      else if (this.restored.forwarderOf(msg.stream) !== undefined) for (const seq of msg.seqs) this.restored.reject(msg.stream, seq, err());
    }
    else if (msg.t === 'stale' && this.currentRole === 'follower' && from === this.currentLeader) {
      // The leader knows a newer epoch: learn it. Otherwise it is not ready yet: resend soon.
      if (msg.epoch > this.currentEpoch) this.requestRecover();
      else for (const f of [this.forwarder, ...this.restored.forwarders()]) f.notTaken();
    }
  }

  /**
   * Whether `device` may have a data channel with this device and its unfinished link
   * messages held: a device that may write (as the sequencer takes entries from: this
   * device's other sessions too), or the leader this device follows. Others (readers) have
   * their offers declined and their fragments dropped (peer-link.ts).
   */
  private linkAdmits(device: string): boolean {
    return device === this.ctx.device || device === this.currentLeader || this.writers === null || this.writers.has(device);
  }

  // ---- connection, lease and recovery ----

  private useConn(conn: TailConnection): void {
    if (this.conn === conn) return;
    for (const off of this.offConn) off();
    this.conn = conn;
    this.handle = null;
    this.offConn = [
      conn.on('event', (ev) => this.onEvent(ev)),
      conn.on('open', ({ reconnect }) => {
        if (reconnect) this.requestRecover();
      }),
      conn.on('close', () => {
        this.handle = null;
        this.setState('recovering');
      }),
      conn.on('stopped', (err) => (conn.retired ? this.reroute(conn) : this.fail(err))),
    ];
    conn.start();
  }

  /** The node of `conn` left the shard map: lease again through the map, at the node that serves the site now. */
  private reroute(conn: TailConnection): void {
    if (this.conn !== conn || this.st === 'closed') return;
    for (const off of this.offConn) off();
    this.offConn = [];
    this.conn = null;
    this.handle = null;
    this.setState('recovering');
    this.requestRecover();
  }

  private requestRecover(): void {
    if (this.st === 'closed') return;
    this.needRecover = true;
    if (this.recovering === null) this.recovering = this.recoverLoop().finally(() => (this.recovering = null));
  }

  private async recoverLoop(): Promise<void> {
    const backoff = new Backoff({ baseMs: 100, maxMs: 5000 });
    while (this.needRecover && this.st !== 'closed') {
      this.needRecover = false;
      if (this.st === 'ready') this.setState('recovering');
      // Nothing is written until `settle` resumes the pipeline in the lease's epoch.
      this.sequencer.pause();
      try {
        await this.sequencer.idle();
        if (this.retryDelayMs > 0) {
          const wait = this.retryDelayMs;
          this.retryDelayMs = 0;
          await sleep(wait, this.closing.signal);
          if (this.isClosed()) return;
        }
        const lease = await this.leaseNow();
        await this.feed.catchUp(lease.length);
        // Every entry up to the end has counted (settled this writer's appends, or been
        // noted by the sequencer) before anything is sent again.
        await this.admission.settled();
        // Restored appends are looked for below where they were taken up, before any is sent.
        await this.restored.scan((at) => this.read(at));
        if (this.isClosed()) return;
        if (this.needRecover) continue;
        this.term++;
        this.settle(lease);
        backoff.reset();
      } catch (err) {
        const e = err instanceof DgError ? err : new DgError('INTERNAL', 'log recovery failed', { cause: err });
        if (FATAL.has(e.code) || this.conn?.state === 'stopped') {
          this.fail(e);
          return;
        }
        this.needRecover = true;
        await sleep(backoff.next(), this.closing.signal);
      }
    }
  }

  private async leaseNow(): Promise<LeaseOk> {
    if (this.conn === null) this.useConn(await this.ctx.connectionFor(this.site));
    const r = await leaseWithProof({
      site: this.site,
      log: this.name,
      lead: this.lead,
      conn: () => this.requireConn(),
      follow: async (url) => this.useConn(await this.ctx.redirected(this.site, url)),
      grant: () => this.ctx.grantFor(this.site),
      attested: () => this.ctx.accessGained(),
      sending: () => (this.stash = []),
    });
    this.applyLease(r);
    return r;
  }

  private applyLease(r: LeaseOk): void {
    // Only meaningful when opening: later, events newer than the reply may already be in.
    if (this.st === 'opening' && this.fromEnd) {
      this.fromEnd = false;
      this.feed.startAt(r.length);
      this.admittedTo = r.length;
      this.deliveredTo = r.length;
    }
    if (this.st === 'opening' && this.feed.position > r.length) {
      throw new DgError('BAD_REQUEST', `from: ${this.feed.position} is beyond the log's length ${r.length} (from: 'end' starts at the end)`);
    }
    this.handle = r.handle;
    this.sequencer.setLimits(this.limits());
    // Peers are other devices: the server also lists this one while another of its sessions holds the log.
    this.setPeers(new Set(r.peers.filter((d) => d !== this.ctx.device)));
    this.writers = Array.isArray(r.writers) ? new Set(r.writers) : null;
    this.feed.observe(r.length);
    const stash = this.stash ?? [];
    this.stash = null;
    for (const ev of stash) if ('handle' in ev && ev.handle === r.handle) this.onEvent(ev);
  }

  /** After a lease and a catch-up: take up the role. */
  private settle(r: LeaseOk): void {
    if (this.st === 'closed') return;
    const prevRole = this.currentRole;
    const prevLeader = this.currentLeader;
    const prevEpoch = this.currentEpoch;
    this.currentEpoch = Math.max(this.currentEpoch, r.epoch);
    this.heardEpoch = Math.max(this.heardEpoch, this.currentEpoch);
    this.currentRole = r.role;
    this.currentLeader = r.role === 'leader' ? this.ctx.device : r.leader;
    for (const p of this.pending.all()) p.term = -1;
    for (const p of this.restored.all()) p.term = -1;
    if (r.role === 'leader') {
      this.forwarder.stop();
      for (const f of this.restored.forwarders()) f.stop();
      // It follows nobody now: the link it opened to the last leader goes (that leader may
      // have been another session of this very device, whose followers now reach this one).
      // A `leader` event may have named the new leader already: what is dropped is every link
      // this side opened, not just one to the leader it last heard of.
      this.hub.dropOpened(() => true);
      this.sequencer.resume(r.epoch, this.feed.position);
    } else {
      this.sequencer.stop();
      // A new leader, or a new term (perhaps another session of the same device): a new link.
      // Links opened to any other device go too (a `leader` event may have named the new
      // leader before this lease, so the one followed last is not `prevLeader`).
      const leader = this.currentLeader;
      this.hub.dropOpened((device) => device !== leader || r.epoch > prevEpoch);
      this.forwarder.setLeader(this.currentLeader, r.epoch);
      for (const f of this.restored.forwarders()) f.setLeader(this.currentLeader, r.epoch);
    }
    this.setState('ready');
    // Caught up means delivered: what was admitted is still being opened (decrypted) when
    // the log has a codec.
    if (this.deliveredTo >= this.admittedTo) this.openedResolve();
    else this.openedAt ??= this.admittedTo;
    // No leader yet (another device's grace runs): look again later, in case no event comes.
    if (this.currentLeader === null && this.lead && this.vacancyTimer === null) {
      this.vacancyTimer = setTimeout(() => {
        this.vacancyTimer = null;
        if (this.currentLeader === null) this.requestRecover();
      }, 1000);
    }
    if (prevRole !== this.currentRole) this.emit('role', r.role);
    if (prevLeader !== this.currentLeader) this.emit('leader', this.currentLeader);
    this.pump();
  }

  private onEvent(ev: TailEvent): void {
    if (!('handle' in ev) || ev.handle === undefined) return;
    if (ev.handle !== this.handle) {
      if (this.stash !== null && this.stash.length < 10_000) this.stash.push(ev);
      return;
    }
    switch (ev.ev) {
      case 'tail': {
        if (ev.entries === undefined) {
          this.feed.observe(ev.length);
          this.feed.catchUpInBackground();
        } else {
          const entries = ev.entries.map((e) => b64urlDecode(e));
          if (entries.some((e) => e === null)) this.feed.catchUpInBackground(ev.length);
          else this.feed.offer(ev.at, entries as Uint8Array[]);
          this.feed.observe(ev.length);
          if (this.feed.position < ev.length) this.feed.catchUpInBackground();
        }
        break;
      }
      case 'leader':
        // An end of leadership (leader null) matters even at an epoch this Log has seen (a
        // server may keep the epoch when it cannot store a new one): a device that may lead takes over.
        if (ev.epoch > this.currentEpoch || (ev.leader === null && (this.currentLeader !== null || this.lead))) {
          // The epoch the Log follows in changes at the lease that follows; what it shows, now.
          this.heardEpoch = Math.max(this.heardEpoch, ev.epoch);
          if (ev.leader !== this.currentLeader) {
            this.currentLeader = ev.leader;
            this.emit('leader', ev.leader);
          }
          this.requestRecover();
        }
        break;
      case 'peer':
        if (this.writers !== null) {
          if (ev.state === 'join' && ev.write === true) this.writers.add(ev.device);
          else if (ev.state === 'leave' || ev.write === false) this.writers.delete(ev.device);
        }
        if (ev.device === this.ctx.device) {
          // Another session of this device: not a peer here (see `peers`).
        } else if (ev.state === 'join') {
          if (!this.peerSet.has(ev.device)) this.emit('peers', [...this.peerSet.add(ev.device)]);
        } else {
          // A data channel can outlive its peer's socket (which reconnects): keep the link
          // a while, and close it only if the device does not come back.
          if (this.peerSet.delete(ev.device)) this.emit('peers', [...this.peerSet]);
          const device = ev.device;
          setTimeout(() => {
            if (!this.peerSet.has(device) && device !== this.currentLeader) this.hub.dropDevice(device);
          }, PEER_LINGER_MS).unref?.();
        }
        break;
      case 'signal':
        this.hub.handleSignal(ev.from, ev.kind, ev.data, ev.peer);
        break;
      case 'revoke':
        // `moved`: another node serves the site now; leasing again is redirected there.
        if (ev.reason === 'moved') {
          this.handle = null;
          this.requestRecover();
        } else {
          this.fail(new DgError('FORBIDDEN', `access revoked: ${ev.reason}`));
        }
        break;
    }
  }
}

/** The server's answer to a request on a handle it holds no more (docs/protocol.md). */
const NO_SUCH_HANDLE = 'no such handle';

function isHandleGone(op: 'read' | 'write' | 'signal', err: unknown): err is DgError {
  return err instanceof DgError && err.code === 'NOT_FOUND' && (op !== 'signal' || err.message === NO_SUCH_HANDLE);
}
