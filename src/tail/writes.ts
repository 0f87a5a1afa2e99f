/**
 * The write path (the hot path): decide, submit to group commit, reply once durable.
 *
 * Guarantees:
 * - Writes to a log are decided in arrival order against `decided`, the length after every
 *   earlier accepted write, so a leader may pipeline at increasing `at`.
 * - `{length}` is sent only after the store committed the entries (acknowledged = durable).
 * - Replies of one log's writes leave in arrival order (ReplyQueue).
 * - A write id this device already committed on this log is answered dup and not stored
 *   again; a resend at the same `at` while the first is still in flight waits for it and
 *   gets its outcome (one at another `at` is decided on its own).
 * - When a commit fails, every write decided before the failure became known fails too,
 *   and `decided` restarts from the committed length: never a hole.
 * - When the store did not take a decided write as decided (a dup, another writer), the
 *   writes decided after it that the store nacks get an ordinary nack with its length.
 */
import type { ErrorCode } from '../protocol/errors.js';
import type { WriteArgs } from '../protocol/tail-schemas.js';
import type { TailContext } from './context.js';
import { decodePacked, PACK_PREFIX } from './entry-pack.js';
import { errorFrame } from './frames.js';
import type { CommitSink } from './group-commit.js';
import { canWrite, RECENT_WIDS, type Handle, type LiveLog, type PendingWrite } from './live-log.js';
import type { AppendResult } from './log-store.js';
import type { DeferredFrame, ReplySlot } from './reply-queue.js';
import type { HeldWrite, Session } from './session.js';

/** How long a log counts as pipelined after a write arrived while another was in flight. */
const PIPELINING_MEMORY_MS = 1000;

/** A write on its way to the store; it receives its own commit outcome (no promise per write). */
class WriteJob implements PendingWrite, CommitSink {
  readonly waiters: { slot: ReplySlot; id: number }[] = [];

  constructor(
    readonly ctx: TailContext,
    readonly log: LiveLog,
    readonly handle: Handle,
    readonly id: number,
    readonly slot: ReplySlot,
    readonly at: number,
    readonly decided: boolean,
    readonly gen: number,
    readonly failures: number,
    readonly b64: string[],
    readonly bytes: number,
    readonly widKey: string | null,
    /** `performance.now()` when tail took the write (notify dates it from this). */
    readonly takenAt: number,
  ) {}

  committed(res: AppendResult): void {
    settle(this.ctx, this.log, this, res);
  }

  failed(err: unknown): void {
    failed(this.ctx, this.log, this, err);
  }
}

/** A write refused for its handle's role or rights (counted as a refused write too). */
function refuse(ctx: TailContext, session: Session, log: LiveLog, id: number, code: ErrorCode, message: string, slot: ReplySlot | null): void {
  ctx.metrics.wrote('refused');
  reject(session, log, id, code, message, slot);
}

/** A write's reply in the order of the log's write replies: in its reserved slot, if it has one. */
function answer(session: Session, log: LiveLog, slot: ReplySlot | null, frame: DeferredFrame): void {
  if (slot === null) log.replies.send(session, frame);
  else log.replies.complete(slot, frame);
}

/**
 * Checks the entries' sizes, then decodes them straight into the store's packed form, one
 * allocation per write, `out` getting views of each entry; a string that is not base64url
 * of a whole number of bytes (decodePacked checks), or an entry over `maxEntryBytes`,
 * makes the problem.
 */
function decodeEntries(b64: string[], maxEntryBytes: number, out: Buffer[]): { bytes: number; packed: Buffer } | { code: ErrorCode; message: string } {
  for (let i = 0; i < b64.length; i++) {
    if (((b64[i] as string).length * 3) >>> 2 > maxEntryBytes) return { code: 'TOO_LARGE', message: `entries.${i}: over ${maxEntryBytes} bytes` };
  }
  const packed = decodePacked(b64, out);
  if (typeof packed === 'number') return { code: 'BAD_REQUEST', message: `entries.${packed}: not base64url` };
  return { bytes: packed.length - PACK_PREFIX * b64.length, packed };
}

/**
 * An error reply to a write on `log`, sent in the order of the log's write replies (after
 * the acks of earlier writes still committing), and counted like any error reply.
 */
function reject(session: Session, log: LiveLog, id: number, code: ErrorCode, message: string, slot: ReplySlot | null): void {
  answer(session, log, slot, errorFrame(id, code, message));
  session.noteError(code);
}

/** Writes one session may have waiting for its own leases at once; more are refused. */
export const MAX_HELD_WRITES = 1024;

/**
 * A session's first write with a wid on a log this node loaded: the write ids the store
 * remembers for its device are loaded first, and its writes of the log wait for them (as
 * behind a lease), so that a resend of a write committed before the log loaded here (before
 * a restart, say) is answered `dup` at once and counts for nothing in the length that later
 * writes are checked against. When the store cannot say, the store still answers such a
 * resend `dup` when it reaches it.
 */
function loadWids(ctx: TailContext, session: Session, log: LiveLog, device: string): void {
  let loading = log.widsLoaded.get(device);
  if (loading === true) return;
  if (loading === undefined) {
    loading = ctx.deps.store
      .recentWids(log.site, log.name, device)
      .then(
        (wids) => {
          for (const w of wids) {
            const key = `${device}\u0000${w.wid}`;
            if (!log.recentWids.has(key)) remember(log, key, w.at, w.length);
          }
        },
        (err: unknown) => ctx.log.warn({ err, site: log.site, log: log.name }, 'could not load the write ids of a device; the store decides its resends'),
      )
      .finally(() => {
        if (log.widsLoaded.get(device) === loading) log.widsLoaded.set(device, true);
      });
    log.widsLoaded.set(device, loading);
  }
  // With a lease of the log running, the write waits for it, and drainHeld for the load.
  const key = log.key;
  if (session.leasing.has(key)) return;
  const gate = loading;
  session.leasing.set(key, gate);
  const done = () => {
    if (session.leasing.get(key) === gate) session.leasing.delete(key);
  };
  gate.then(done, done);
}

/** The load of `device`'s write ids on `log`, while it runs. */
function widsPending(log: LiveLog, device: string): Promise<void> | null {
  const state = log.widsLoaded.get(device);
  return state === undefined || state === true ? null : state;
}

export function handleWrite(ctx: TailContext, session: Session, id: number, args: WriteArgs): void {
  const h = session.handles.get(args.handle);
  if (h === undefined || h.releasing) return session.replyError(id, 'NOT_FOUND', 'no such handle');
  // Whatever the handle's role now: a write held behind a lease may be decided as the leader's.
  if (args.wid !== undefined) loadWids(ctx, session, h.log, session.auth?.device ?? '');
  // A write sent after a `lease` of the same log (a step-down, say) that is still being
  // decided is decided after it, as its arrival order says.
  if (session.leasing.size > 0 || session.heldWrites.size > 0) {
    const key = h.log.key;
    if (session.leasing.has(key) || session.heldWrites.has(key)) return holdWrite(ctx, session, h.log, id, args);
  }
  decideWrite(ctx, session, h, id, args, null);
}

/**
 * Keeps a write until the lease of its log that the session sent before it has answered
 * (only that one: a lease sent after the write does not hold it), and behind the writes of
 * the log held before it. Its reply slot is taken now, so a `release` sent after it
 * answers after it; its decision comes when it reaches the head of the queue.
 */
function holdWrite(ctx: TailContext, session: Session, log: LiveLog, id: number, args: WriteArgs): void {
  if (session.heldWriteCount >= MAX_HELD_WRITES) {
    return reject(session, log, id, 'RATE_LIMITED', `at most ${MAX_HELD_WRITES} writes may wait for this session's leases`, null);
  }
  const key = log.key;
  let queue = session.heldWrites.get(key);
  if (queue === undefined) session.heldWrites.set(key, (queue = []));
  const w: HeldWrite = { id, args, slot: log.replies.reserve(session), log, ready: false, decided: [] };
  queue.push(w);
  session.heldWriteCount++;
  const lease = session.leasing.get(key);
  if (lease === undefined) {
    // Only behind held writes: it goes when they have.
    w.ready = true;
    return;
  }
  const go = () => {
    w.ready = true;
    drainHeld(ctx, session, key);
  };
  lease.then(go, go);
}

/** Decides the held writes of a log from the head of its queue, in order, while they may go. */
function drainHeld(ctx: TailContext, session: Session, key: string): void {
  const queue = session.heldWrites.get(key);
  if (queue === undefined) return;
  while (queue.length > 0 && (queue[0] as HeldWrite).ready) {
    const pending = widsPending((queue[0] as HeldWrite).log, session.auth?.device ?? '');
    if (pending !== null) {
      // The device's write ids are still loading: the queue goes on once they are in.
      const again = () => drainHeld(ctx, session, key);
      pending.then(again, again);
      return;
    }
    const w = queue.shift() as HeldWrite;
    session.heldWriteCount--;
    // A `release` sent after the write marks the handle at once but takes effect after this.
    const h = session.handles.get(w.args.handle);
    try {
      if (h === undefined || h.log !== w.log) reject(session, w.log, w.id, 'NOT_FOUND', 'no such handle', w.slot);
      else decideWrite(ctx, session, h, w.id, w.args, w.slot);
    } finally {
      // A lease sent after it goes now, whatever became of it.
      for (const f of w.decided) f();
    }
  }
  if (queue.length === 0) session.heldWrites.delete(key);
}

function decideWrite(ctx: TailContext, session: Session, h: Handle, id: number, args: WriteArgs, slot: ReplySlot | null): void {
  const log = h.log;
  // A follower handle that writes gets NOT_LEADER whatever its rights; the write right is
  // checked for the leader only (a leader whose access lost the right).
  if (log.leader !== h || h.epoch !== log.epoch) {
    return h.role === 'leader' || h.fenced
      ? refuse(ctx, session, log, id, 'FENCED', 'this handle is no longer the leader', slot)
      : refuse(ctx, session, log, id, 'NOT_LEADER', 'only the leader writes', slot);
  }
  if (!canWrite(h.access.rights)) return refuse(ctx, session, log, id, 'FORBIDDEN', 'no write right on this log', slot);
  const maxEntries = ctx.limits.maxEntries;
  const b64 = args.entries;
  if (b64.length > maxEntries) return reject(session, log, id, 'TOO_LARGE', `entries: at most ${maxEntries} per write`, slot);
  if (!Number.isSafeInteger(args.at + b64.length)) return reject(session, log, id, 'BAD_REQUEST', 'at: too large for the entries to follow it', slot);
  const entries = new Array<Buffer>(b64.length);
  const decoded = decodeEntries(b64, ctx.limits.maxEntryBytes, entries);
  if (!('bytes' in decoded)) return reject(session, log, id, decoded.code, decoded.message, slot);
  const bytes = decoded.bytes;
  const device = session.auth?.device ?? '';
  const widKey = args.wid === undefined ? null : `${device}\u0000${args.wid}`;
  if (widKey !== null) {
    const recent = log.recentWids.get(widKey);
    if (recent !== undefined) {
      ctx.metrics.wrote('dup');
      return answer(session, log, slot, dupFrame(id, recent.at, recent.length));
    }
    const first = log.inflightWids.get(widKey);
    // A resend of the same write (same `at`) shares the outcome of the copy in flight; one at
    // another position is decided on its own (the store answers dup if the first committed).
    if (first !== undefined && first.at === args.at) {
      first.waiters.push({ slot: slot ?? log.replies.reserve(session), id });
      return;
    }
  }
  // A resend with a wid at an old position is still sent to the store: it may know the wid.
  const decided = args.at === log.decided;
  if (!decided && widKey === null) {
    ctx.metrics.wrote('nack');
    // The length this write was checked against, unless an earlier write failed meanwhile
    // and the log's decisions started again from what is committed.
    const length = log.decided;
    const gen = log.gen;
    return answer(session, log, slot, () => nackFrame(id, log.gen === gen ? length : log.decided));
  }
  const now = performance.now();
  const w = new WriteJob(ctx, log, h, id, slot ?? log.replies.reserve(session), args.at, decided, log.gen, log.failures, b64, bytes, widKey, now);
  if (decided) log.decided += entries.length;
  if (widKey !== null) log.inflightWids.set(widKey, w);
  // A leader that sends a write before the last one's outcome pipelines: its writes may wait
  // (briefly) to share commits. One that waits for each outcome is never held.
  if (log.inflight > 0) log.pipelinedAt = now;
  log.inflight++;
  const mayWait = now - log.pipelinedAt < PIPELINING_MEMORY_MS;
  ctx.committer.enqueue({ site: log.site, log: log.name, at: args.at, epoch: log.epoch, device, wid: args.wid, entries, packed: decoded.packed }, w, mayWait);
}

/** The write is no longer in flight under its write id (a later copy may have taken its place). */
function landed(log: LiveLog, w: PendingWrite): void {
  if (w.widKey !== null && log.inflightWids.get(w.widKey) === w) log.inflightWids.delete(w.widKey);
}

function settle(ctx: TailContext, log: LiveLog, w: WriteJob, res: AppendResult): void {
  try {
    landed(log, w);
    switch (res.status) {
      case 'ok': {
        // The store had entries before this write that this node never announced (a commit
        // whose outcome was lost): followers hear of them first.
        if (res.at > log.committed) ctx.fanout.caughtUp(log, res.at);
        if (res.length > log.committed) log.committed = res.length;
        if (log.decided < log.committed) log.decided = log.committed;
        if (w.widKey !== null) remember(log, w.widKey, res.at, res.length);
        ctx.metrics.wrote('ok');
        ctx.metrics.committedEntries(res.length - res.at);
        log.replies.complete(w.slot, `{"re":${w.id},"length":${res.length}}`);
        for (const x of w.waiters) log.replies.complete(x.slot, dupFrame(x.id, res.at, res.length));
        ctx.fanout.committed(log, { batch: ctx.committer.batchNumber, at: res.at, length: res.length, b64: w.b64, bytes: w.bytes });
        ctx.notify.committed(log.key, log.site, log.name, res.length, w.handle.session.auth?.user, w.takenAt);
        return;
      }
      case 'dup': {
        // A write whose commit this node never saw (its outcome was lost): followers hear of it.
        ctx.fanout.caughtUp(log, res.length);
        // Nothing new was stored: if it was counted in `decided`, later decisions were off.
        if (w.decided && w.gen === log.gen) restart(log, log.committed);
        if (w.widKey !== null) remember(log, w.widKey, res.at, res.length);
        ctx.metrics.wrote('dup');
        log.replies.complete(w.slot, dupFrame(w.id, res.at, res.length));
        for (const x of w.waiters) log.replies.complete(x.slot, dupFrame(x.id, res.at, res.length));
        return;
      }
      case 'nack': {
        // The store's length counts entries this node never announced when it is beyond it.
        ctx.fanout.caughtUp(log, res.length);
        if (w.decided && w.failures !== log.failures) return fail(ctx, log, w, 'UNAVAILABLE', 'an earlier write on this log failed; read and retry');
        // Decided against a length the store does not have (another writer, or a dup before it).
        if (w.decided) restart(log, log.committed);
        ctx.metrics.wrote('nack');
        // The store's length when it reached this write: after every earlier write, none later.
        log.replies.complete(w.slot, nackFrame(w.id, res.length));
        for (const x of w.waiters) log.replies.complete(x.slot, nackFrame(x.id, res.length));
        return;
      }
      case 'fenced': {
        // Another node took the log: what its leaders wrote reaches this node's followers
        // (before they hear that the leadership here ended).
        ctx.fanout.caughtUp(log, res.length);
        if (w.gen === log.gen) restart(log, Math.max(log.committed, res.length));
        ctx.logs.fenced(log, res.epoch);
        return fail(ctx, log, w, 'FENCED', 'this handle is no longer the leader');
      }
    }
  } finally {
    log.settled();
    ctx.fanout.settled(log);
    ctx.logs.maybeEvict(log);
  }
}

function failed(ctx: TailContext, log: LiveLog, w: PendingWrite, err: unknown): void {
  landed(log, w);
  if (w.failures === log.failures) {
    const left = ctx.commitFailures.take();
    if (left !== null) ctx.log.error({ err, site: log.site, log: log.name, notLogged: left }, 'commit failed (at most one line per 10 s)');
    log.failures++;
  }
  if (w.gen === log.gen) restart(log, log.committed);
  fail(ctx, log, w, 'UNAVAILABLE', 'commit failed; read and retry');
  log.settled();
  ctx.fanout.settled(log);
  ctx.logs.maybeEvict(log);
}

function fail(ctx: TailContext, log: LiveLog, w: PendingWrite, code: ErrorCode, message: string): void {
  ctx.metrics.wrote('failed');
  ctx.metrics.error(code);
  log.replies.complete(w.slot, errorFrame(w.id, code, message));
  for (const x of w.waiters) log.replies.complete(x.slot, errorFrame(x.id, code, message));
}

/** Writes decided before now become stale; `decided` restarts at `length`. */
function restart(log: LiveLog, length: number): void {
  log.gen++;
  log.decided = length;
}

function remember(log: LiveLog, key: string, at: number, length: number): void {
  log.recentWids.set(key, { at, length });
  if (log.recentWids.size > RECENT_WIDS) {
    const oldest = log.recentWids.keys().next();
    if (oldest.done !== true) {
      log.recentWids.delete(oldest.value);
      // Another device's wid gone: its memory here is no longer whole, and its next write
      // with a wid loads it again. (The writing device's own oldest go freely: the store
      // keeps fewer of them than this memory holds.)
      const device = oldest.value.slice(0, oldest.value.indexOf('\u0000'));
      if (device !== key.slice(0, key.indexOf('\u0000')) && log.widsLoaded.get(device) === true) log.widsLoaded.delete(device);
    }
  }
}

function dupFrame(id: number, at: number, length: number): string {
  return `{"re":${id},"length":${length},"at":${at},"dup":true}`;
}

function nackFrame(id: number, length: number): string {
  return `{"re":${id},"nack":true,"length":${length}}`;
}
