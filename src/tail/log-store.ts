/**
 * The log store: tail's own store interface (SQLite now, PostgreSQL for clusters), run by
 * one conformance suite (test/conformance/log-store.ts).
 *
 * The store is the fence. Guarantees every implementation gives:
 * - A log (site, log) starts at length 0, epoch 0. Entries are append-only: entry i, once
 *   committed, never changes.
 * - `bumpEpoch` atomically increments and persists the epoch; epochs never go back. It
 *   records the device (and its user) that took the new epoch as the log's leader (none
 *   when no leader is given), which `state` reports until the next bump or `endEpoch`.
 * - `endEpoch` ends the leadership of one epoch (a release or a lapse): when the log's
 *   epoch is still that one, it rises by one with no leader recorded, atomically and
 *   durably; a log that a later epoch took already keeps it. So every change of leader,
 *   to none included, is a new epoch, and a node that lost the log cannot fence the one
 *   that took it.
 * - `appendBatch` decides the requests in array order inside ONE transaction. Each request
 *   commits only if the log's length (after the earlier requests of the batch) equals `at`
 *   and its epoch equals `epoch`; otherwise it writes nothing and reports the current
 *   length and epoch. A request whose (site, log, device, wid) was already committed is
 *   answered `dup` with its original position, and writes nothing.
 *   The checks run in this order: `dup` (so a resend after a reconnect is recognised even
 *   though its `at` is stale), then `fenced` (epoch ≠ stored epoch: a deposed leader or a
 *   zombie node learns it lost the log rather than retrying at another `at`), then `nack`
 *   (at ≠ length).
 * - The write ids (at least the last 64 per (site, log, device)) are stored in the same
 *   transaction as the entries.
 * - When `appendBatch` resolves, every `ok` result is durable (synchronous=FULL for SQLite,
 *   a committed transaction for PostgreSQL). If it rejects, nothing of the batch is stored,
 *   with one exception a networked store cannot rule out: a connection lost while COMMIT
 *   was in flight (UNAVAILABLE) may hide a commit. Callers therefore trust the lengths in
 *   later results (a nack reports the real length) over their own after a failure, and
 *   resend with the same write ids, which are answered `dup` if they were stored.
 * - Invalid arguments (see `checkAppendRequest`, `checkReadArgs`) reject with DgError
 *   BAD_REQUEST before anything is written; a whole batch is refused if one request of it
 *   is invalid. A store that cannot reach its storage rejects with DgError UNAVAILABLE.
 *   Calls after `close` reject with UNAVAILABLE.
 * - A call that finds the storage damaged (store-damage.ts) rejects with DgError
 *   UNAVAILABLE `log store is damaged` and counts in `damage()`, which reports it, and
 *   keeps `healthy()` false, until the store is closed.
 */
import { DgError } from '../protocol/errors.js';
import { LOG_NAME_RE, SITE_ID_RE } from '../protocol/ids.js';
import type { StoreDamage } from './store-damage.js';

/** Who took an epoch: the device, and its user (absent in records written before users were kept). */
export interface LeaderRecord {
  device: string;
  user?: string;
}

export interface LogState {
  length: number;
  epoch: number;
  /**
   * The device that took the current epoch, while its leadership has not been ended
   * cleanly (absent otherwise). A node that loads the log after a restart or a move gives
   * that device the leader's grace, as if its session had just ended; knowing the user
   * lets a revocation of the user's access end that grace.
   */
  leader?: LeaderRecord;
}

export interface AppendRequest {
  site: string;
  log: string;
  at: number;
  epoch: number;
  device: string;
  wid?: string;
  entries: Buffer[];
  /**
   * The same entries in the packed form of entry-pack.ts, when the caller decoded them so
   * (`entries` then being views into it): a store that keeps that form may store it as it
   * is. Optional; a store checks that it matches `entries` before relying on it.
   */
  packed?: Buffer;
}

export type AppendResult =
  | { status: 'ok'; at: number; length: number }
  | { status: 'dup'; at: number; length: number }
  | { status: 'nack'; length: number; epoch: number }
  | { status: 'fenced'; length: number; epoch: number };

export interface ReadResult {
  entries: Buffer[];
  length: number;
}

/**
 * What `liftEpochs` adds to every epoch at least: more leader changes than any one log sees
 * between a copy of the store and its restore, so no epoch handed out in between is issued
 * again, whatever the clock says.
 */
export const EPOCH_LIFT = 2 ** 32;

/**
 * Epochs per millisecond of the time floor that `liftEpochs` also lifts to. A log changes
 * leader far less often than this (each change is a durable transaction), so the epochs a
 * restored store hands out stay below the floor of any later time: a later restore of the
 * same copy lifts past all of them. At 1024 per ms the floor stays a safe integer until
 * the year 2248.
 */
export const EPOCH_LIFT_PER_MS = 1024;

/** The time floor of a lift at `now` (ms since the epoch). */
export function epochTimeFloor(now: number): number {
  return Math.floor(now) * EPOCH_LIFT_PER_MS;
}

/** Throws unless a lift to at least `floor` and by EPOCH_LIFT from `top` keeps epochs safe integers. */
export function checkLift(top: number, floor: number): void {
  if (top > Number.MAX_SAFE_INTEGER - EPOCH_LIFT || floor > Number.MAX_SAFE_INTEGER) {
    throw new Error(`log store: epoch ${top} cannot be lifted by ${EPOCH_LIFT} (or to ${floor}) and stay a safe integer`);
  }
}

/** How many write ids per (site, log, device) a store keeps at least. */
export const WID_MEMORY = 64;

/**
 * Hard limits of the store itself. The tail protocol enforces tighter ones
 * (maxEntries, maxEntryBytes); these only keep a buggy caller from exhausting memory.
 */
export const STORE_LIMITS = {
  /** Requests in one `appendBatch`. */
  maxBatchRequests: 10_000,
  /** Entries in one request. */
  maxEntries: 10_000,
  /** Bytes of entries in one request. */
  maxRequestBytes: 64 * 1024 * 1024,
  /** Length of a device id and of a write id. */
  maxDeviceLength: 128,
  maxWidLength: 128,
  /** `read` clamps `limit` and `maxBytes` to these. */
  maxReadLimit: 100_000,
  maxReadBytes: 64 * 1024 * 1024,
} as const;

/** A write id the store remembers, with where its write went. */
export interface StoredWid {
  wid: string;
  at: number;
  length: number;
}

export interface LogStore {
  state(site: string, log: string): Promise<LogState>;
  bumpEpoch(site: string, log: string, leader?: LeaderRecord): Promise<number>;
  /**
   * The leadership of `epoch` ended: if the log's epoch is still `epoch`, it becomes the
   * next one with no leader recorded. Returns the log's epoch after the call (unchanged,
   * with its leader, when a later epoch was taken; 0 for a log never written or led).
   */
  endEpoch(site: string, log: string, epoch: number): Promise<number>;
  appendBatch(requests: AppendRequest[]): Promise<AppendResult[]>;
  /**
   * The write ids the store remembers for `device` on the log (at least its last 64), oldest
   * first, each with the range its write took; none for a log never written.
   */
  recentWids(site: string, log: string, device: string): Promise<StoredWid[]>;
  /**
   * Entries from `from`, at most `limit` of them and at most `maxBytes` of data, except that
   * the first entry is always returned when there is one. `from == length` gives no
   * entries; `from > length` rejects with BAD_REQUEST. `length` is the log's length at the
   * same instant the entries were read.
   */
  read(site: string, log: string, from: number, limit: number, maxBytes: number): Promise<ReadResult>;
  /**
   * Raises the epoch of every log, and the floor that logs stored later start above, to
   * `max(epoch + EPOCH_LIFT, epochTimeFloor(now))`, atomically, and returns how many logs
   * there are. Run on a store restored from a copy, before it serves: the epochs handed out
   * after the copy was taken are lost with it, and would otherwise be issued again, so a
   * leader of the lost history could write under a new leader's epoch. The time floor
   * makes a second restore of the same copy, later, lift past what the first one handed
   * out (given clocks that do not run back). Throws when an epoch would no longer be a safe
   * integer (nothing is changed then).
   */
  liftEpochs(now?: number): Promise<number>;
  /** True while the store answers and has found no damage (for /ready). */
  healthy(): boolean;
  /**
   * Null until a call found the storage damaged; then the first reason and how many calls
   * failed on it, until the store is closed (damage does not heal by itself).
   */
  damage(): StoreDamage | null;
  close(): Promise<void>;
}

function bad(message: string): DgError {
  return new DgError('BAD_REQUEST', message);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The leader a store row records (columns for device and user, either possibly NULL). */
export function leaderOfRow(device: string | null, user: string | null): LeaderRecord | undefined {
  if (device === null) return undefined;
  return user === null ? { device } : { device, user };
}

/** Throws BAD_REQUEST unless `leader` is absent or a device id with an optional user id. */
export function checkLeader(leader: LeaderRecord | undefined): void {
  if (leader === undefined) return;
  if (leader === null || typeof leader !== 'object') throw bad('leader must be an object');
  if (leader.device === undefined) throw bad('leader.device is required');
  checkDevice(leader.device);
  if (leader.user !== undefined && !isStoredId(leader.user)) throw bad('leader.user must be a non-empty string');
}

/** A device or user id a store keeps: a non-empty string of at most maxDeviceLength. */
function isStoredId(v: unknown): boolean {
  return typeof v === 'string' && v.length > 0 && v.length <= STORE_LIMITS.maxDeviceLength;
}

/** Throws BAD_REQUEST unless `device` is absent or a device id a store keeps. */
export function checkDevice(device: unknown): void {
  if (device !== undefined && !isStoredId(device)) throw bad('device must be a non-empty string');
}

/** Throws BAD_REQUEST unless `epoch` is a non-negative integer. */
export function checkEpoch(epoch: unknown): void {
  if (!isCount(epoch)) throw bad('epoch must be a non-negative integer');
}

/** Throws BAD_REQUEST unless (site, log) are well-formed names (PROTOCOL.md "Conventions"). */
export function checkLogName(site: unknown, log: unknown): void {
  if (typeof site !== 'string' || !SITE_ID_RE.test(site)) throw bad('site is not a valid site id');
  if (typeof log !== 'string' || !LOG_NAME_RE.test(log)) throw bad('log is not a valid log name');
}

/** Byte size of a request's entries; throws BAD_REQUEST if the request is malformed. */
export function checkAppendRequest(req: AppendRequest): number {
  if (typeof req !== 'object' || req === null) throw bad('append request must be an object');
  checkLogName(req.site, req.log);
  if (!isCount(req.at)) throw bad('at must be a non-negative integer');
  checkEpoch(req.epoch);
  if (req.device === undefined) throw bad('device must be a non-empty string');
  checkDevice(req.device);
  if (req.wid !== undefined && (typeof req.wid !== 'string' || req.wid.length === 0 || req.wid.length > STORE_LIMITS.maxWidLength)) {
    throw bad(`wid must be a string of 1 to ${STORE_LIMITS.maxWidLength} characters`);
  }
  if (!Array.isArray(req.entries)) throw bad('entries must be an array');
  if (req.entries.length > STORE_LIMITS.maxEntries) throw bad('too many entries in one write');
  if (!Number.isSafeInteger(req.at + req.entries.length)) throw bad('at is too large');
  let bytes = 0;
  for (const e of req.entries) {
    if (!(e instanceof Uint8Array)) throw bad('every entry must be bytes');
    bytes += e.byteLength;
  }
  if (bytes > STORE_LIMITS.maxRequestBytes) throw bad('write is too large');
  return bytes;
}

/** Throws BAD_REQUEST unless the batch is an array of valid requests within the limits. */
export function checkAppendBatch(requests: AppendRequest[]): void {
  if (!Array.isArray(requests)) throw bad('batch must be an array');
  if (requests.length > STORE_LIMITS.maxBatchRequests) throw bad('batch has too many requests');
  for (const r of requests) checkAppendRequest(r);
}

/** Validates read arguments and returns `limit` and `maxBytes` clamped to the store limits. */
export function checkReadArgs(
  site: unknown,
  log: unknown,
  from: unknown,
  limit: unknown,
  maxBytes: unknown,
): { limit: number; maxBytes: number } {
  checkLogName(site, log);
  if (!isCount(from)) throw bad('from must be a non-negative integer');
  if (!isCount(limit) || limit < 1) throw bad('limit must be a positive integer');
  if (!isCount(maxBytes) || maxBytes < 1) throw bad('maxBytes must be a positive integer');
  return { limit: Math.min(limit, STORE_LIMITS.maxReadLimit), maxBytes: Math.min(maxBytes, STORE_LIMITS.maxReadBytes) };
}

/** The rejection for `from` beyond the end of the log. */
export function beyondEnd(from: number, length: number): DgError {
  return bad(`from ${from} is beyond the log's length ${length}`);
}

/** The rejection for any call on a closed store. */
export function storeClosed(): DgError {
  return new DgError('UNAVAILABLE', 'log store is closed');
}
