/**
 * Every limit of the tail service in one place. The defaults are the production values;
 * tests shrink the time-based ones (TailDeps.limits) to run in seconds.
 */
export interface TailLimits {
  /** Largest frame a client may send (advertised in `connect`); larger frames get TOO_LARGE. */
  maxFrame: number;
  /** Frames over this are cut by the WebSocket layer itself (close 1009) without being read. */
  maxPayload: number;
  maxEntries: number;
  maxEntryBytes: number;
  maxHandles: number;
  /** `read`: default and largest `limit`, and the byte budget of one reply. */
  readLimit: number;
  readMaxBytes: number;
  /** A `tail` event carries its entries only when the committed batch is at most this many bytes. */
  inlineBatchBytes: number;
  maxSignalBytes: number;
  /** `connect` must arrive within this time. */
  connectTimeoutMs: number;
  /**
   * Sessions this node holds at once, and of them those that have not `connect`ed yet: an
   * upgrade over either is refused with HTTP 503 and `retry-after`, before any WebSocket
   * state exists, so a flood of sockets cannot exhaust the node's memory or descriptors.
   */
  maxSessions: number;
  /** Default: a tenth of `maxSessions` (resolveLimits). */
  maxPendingSessions: number;
  /** Sessions not yet connected from one client address (TailDeps.clientAddress); more upgrades get 503. */
  maxPendingPerAddress: number;
  /** Connected sessions of one user on this node; a `connect` beyond it is RATE_LIMITED and closed 4429. */
  maxSessionsPerUser: number;
  /** A session closed 4408 (slow consumer) is cut this long after the close frame is queued, its queued data dropped. */
  slowCutMs: number;
  /** A session whose access token expired longer ago than this is closed 4401. */
  expiredCloseMs: number;
  /** Slow consumers: over `softBuffer` bytes queued, events lose entries and coalesce; over `hardBuffer`, or soft for longer than `lagCloseMs`, close 4408. */
  softBuffer: number;
  hardBuffer: number;
  lagCloseMs: number;
  /** Token bucket of ops per session. */
  opsPerSec: number;
  opsBurst: number;
  /** Requests waiting for auth or the store (lease, attest, read) at once per session; more are RATE_LIMITED. */
  maxInFlight: number;
  /** Rate-limited ops within `windowMs` that close the session 4429. */
  abuseRejects: number;
  /** Bad frames within `windowMs` that close the session 4400. */
  badFrames: number;
  windowMs: number;
  /** Signals per second (and burst) and signal bytes per second (and burst) per session. */
  signalsPerSec: number;
  signalsBurst: number;
  signalBytesPerSec: number;
  signalBytesBurst: number;
  /** Cached access answers kept at most (oldest dropped first). */
  accessCacheMax: number;
  /**
   * A cached access answer is trusted this long, then auth is asked again at the next lease
   * (even for a grant without expiry): a change of access whose bus message was lost shows
   * within this time.
   */
  accessCacheTtlMs: number;
  /** How long a revoked device or family is remembered: longer than any token lives (15 min). */
  revokedKeepMs: number;
  /** How often the revocation list is re-read from auth (covers lost bus messages). */
  revokedPollMs: number;
  /** WebSocket ping to find dead peers; a peer that missed one pong is terminated. */
  pingIntervalMs: number;
  /**
   * The ping interval of a session that leads a log: its leadership is what others wait
   * for, so a leader whose connection died silently is found within two of these (then the
   * grace runs), not within two regular pings.
   */
  leaderPingIntervalMs: number;
  /**
   * When a device leases as leader of a log its other session leads, that session is
   * pinged, and cut (its leadership going into the grace) without a pong within this time:
   * a leader on a connection that died silently is replaced in seconds, not at the next ping.
   */
  leaderProbeMs: number;
  /** Presence TTL (full snapshots every third of it). */
  presenceTtlMs: number;
  /** At most one dg.notify.publish per log per this interval, carrying the latest length. */
  notifyIntervalMs: number;
  /** Group commit: requests and bytes per store transaction. */
  commitMaxBatch: number;
  commitMaxBatchBytes: number;
  /**
   * Group commit: while writes keep coming, commits start at most once per this many ms, so
   * a stream's writes share each durable commit and fan-out event; a write after a quiet
   * spell commits at once. 0: every turn of the event loop commits what arrived.
   */
  commitDelayMs: number;
  /** Writes waiting that start a commit without waiting for `commitDelayMs` (the SDK keeps 4 in flight per log). */
  commitTarget: number;
  /** Timeout of requests to auth over the bus. */
  authTimeoutMs: number;
  /** On drain, sessions not closed by their clients within this time are cut. */
  drainCloseMs: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const DEFAULT_TAIL_LIMITS: Readonly<TailLimits> = Object.freeze({
  maxFrame: 1 * MiB,
  maxPayload: 2 * MiB,
  maxEntries: 1024,
  maxEntryBytes: 256 * KiB,
  maxHandles: 256,
  readLimit: 1000,
  readMaxBytes: 1 * MiB,
  inlineBatchBytes: 64 * KiB,
  maxSignalBytes: 64 * KiB,
  connectTimeoutMs: 10_000,
  maxSessions: 100_000,
  maxPendingSessions: 10_000,
  maxPendingPerAddress: 100,
  maxSessionsPerUser: 200,
  slowCutMs: 2000,
  expiredCloseMs: 60_000,
  softBuffer: 1 * MiB,
  hardBuffer: 8 * MiB,
  lagCloseMs: 30_000,
  opsPerSec: 2000,
  opsBurst: 4000,
  maxInFlight: 256,
  abuseRejects: 500,
  badFrames: 20,
  windowMs: 10_000,
  signalsPerSec: 200,
  signalsBurst: 400,
  signalBytesPerSec: 1 * MiB,
  signalBytesBurst: 4 * MiB,
  accessCacheMax: 100_000,
  accessCacheTtlMs: 5 * 60_000,
  revokedKeepMs: 16 * 60_000,
  revokedPollMs: 30_000,
  pingIntervalMs: 30_000,
  leaderPingIntervalMs: 5_000,
  leaderProbeMs: 3_000,
  presenceTtlMs: 30_000,
  notifyIntervalMs: 250,
  commitMaxBatch: 512,
  commitMaxBatchBytes: 8 * MiB,
  commitDelayMs: 2,
  commitTarget: 4,
  authTimeoutMs: 5000,
  drainCloseMs: 1000,
});

/** The limits with `overrides`; unless set, `maxPendingSessions` is a tenth of `maxSessions`. */
export function resolveLimits(overrides: Partial<TailLimits> | undefined): TailLimits {
  const limits = { ...DEFAULT_TAIL_LIMITS, ...(overrides ?? {}) };
  if (overrides?.maxPendingSessions === undefined) limits.maxPendingSessions = Math.max(1, Math.ceil(limits.maxSessions / 10));
  return limits;
}
