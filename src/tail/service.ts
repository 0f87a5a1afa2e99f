/**
 * The tail service: WebSocket sessions on /tail (subprotocol datagrove.v1), the bus
 * subscriptions, the once-a-second sweep, and graceful shutdown.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Subscription } from '../bus/bus.js';
import { SUBJECTS } from '../protocol/bus-messages.js';
import { unknownKeyWarner } from '../protocol/key-ring-warning.js';
import { LogThrottle } from '../protocol/log-throttle.js';
import { refuseSocket } from '../protocol/raw-error-response.js';
import { TAIL_CLOSE, TAIL_SUBPROTOCOL } from '../protocol/tail-schemas.js';
import { AccessControl } from './access.js';
import { onAccessChanged } from './access-changes.js';
import type { TailContext } from './context.js';
import type { TailDeps } from './deps.js';
import { onFrame } from './dispatch.js';
import { Fanout } from './fanout.js';
import { GroupCommitter } from './group-commit.js';
import { LogRegistry } from './leaders.js';
import { resolveLimits } from './limits.js';
import { createTailMetrics } from './metrics.js';
import { HelloAnswers } from './notify-hello.js';
import { NotifyPublisher } from './notify-publish.js';
import { Presence } from './presence.js';
import { onRevoke, recheck, RevokedSet, syncRevoked } from './revocation.js';
import { ReplyCork, Session } from './session.js';
import { SessionRegistry } from './sessions.js';
import { onUserEvent } from './user-events.js';

export interface TailService {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  start(): Promise<void>;
  /** Why this node should not be sent traffic now (for /ready), or null when it is ready. */
  notReady(): string | null;
  /** The shard map changed: end the handles of sites another node serves now (`revoke`, `moved`). */
  shardChanged(): void;
  /** Stop accepting, finish committing, close sessions with 1001. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

const SWEEP_MS = 1000;
/** How soon a failed load of the revocation list is tried again. */
const SYNC_RETRY_MS = 5000;
/** While loading the revocation list keeps failing, it is said at most this often. */
const SYNC_WARN_MS = 60_000;
/** A commit failure repeats for as long as the store is down: one log line per this long. */
const COMMIT_FAILURE_LOG_MS = 10_000;
/** Damaged storage stays damaged until an operator acts: one log line per this long while calls fail on it. */
const STORE_DAMAGE_LOG_MS = 60_000;

/** What a client refused for capacity is told to wait before it tries again (s). */
const FULL_RETRY_AFTER_SEC = 5;

function offersSubprotocol(req: IncomingMessage): boolean {
  const header = req.headers['sec-websocket-protocol'];
  if (typeof header !== 'string') return false;
  return header.split(',').some((p) => p.trim() === TAIL_SUBPROTOCOL);
}

export function createTail(deps: TailDeps): TailService {
  const limits = resolveLimits(deps.limits);
  const log = deps.log.child({ svc: 'tail' });
  const metrics = createTailMetrics(deps.registry);
  const notify = new NotifyPublisher(deps.bus, limits.notifyIntervalMs, log);
  const presence = new Presence(deps.bus, deps.nodeId, limits.presenceTtlMs, log, (user) => notify.flushWriter(user));
  // Spaced out: one answer is thousands of messages, and anyone on the bus can say hello.
  const hellos = new HelloAnswers({
    answer: () => {
      presence.snapshot();
      notify.republish();
    },
    stopping: () => ctx.stopping,
    log,
  });
  // The acks of one commit group leave in one socket write per session.
  const cork = new ReplyCork();
  const ctx = {
    deps,
    limits,
    metrics,
    log,
    committer: new GroupCommitter(deps.store, {
      maxBatch: limits.commitMaxBatch,
      maxBatchBytes: limits.commitMaxBatchBytes,
      delayMs: limits.commitDelayMs,
      target: limits.commitTarget,
      deliverWith: (deliver) => cork.during(deliver),
      onSinkError: (err) => log.error({ err }, 'settling a write failed'),
      onCommit: (ms) => metrics.commitSeconds.observe(ms / 1000),
    }),
    access: new AccessControl(deps.bus, {
      timeoutMs: limits.authTimeoutMs,
      max: limits.accessCacheMax,
      ttlMs: limits.accessCacheTtlMs,
      // A gain of access matters to lease tokens issued before it, which live no longer than this.
      keepMs: limits.revokedKeepMs,
    }),
    notify,
    sessions: new SessionRegistry(presence),
    revoked: new RevokedSet(limits.revokedKeepMs),
    stopping: false,
    unknownKey: unknownKeyWarner(log),
    commitFailures: new LogThrottle(COMMIT_FAILURE_LOG_MS),
  } as TailContext;
  ctx.logs = new LogRegistry(ctx);
  metrics.countLiveLogs(() => ctx.logs.size);
  metrics.countStoreDamage(() => deps.store.damage());
  ctx.fanout = new Fanout(ctx);

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxPayload,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: () => TAIL_SUBPROTOCOL,
  });
  // A handshake that ws refuses (not GET, no websocket upgrade, a bad key or version) is
  // answered in the usual error shape too, rather than ws's text body.
  wss.on('wsClientError', (err: Error, socket: Duplex) => {
    if (!socket.writable) return void socket.destroy();
    const headers: Record<string, string> = /version/i.test(err.message) ? { 'sec-websocket-version': '13' } : {};
    refuseSocket(socket, 'BAD_REQUEST', err.message, headers);
  });
  let accepting = false;
  let closed = false;
  let sweeps = 0;
  /** A revocation list request to auth is in flight (from the sweep). */
  let syncing = false;
  /** When the last load of the revocation list failed (0: it did not): retried sooner. */
  let syncFailedAt = 0;
  /** Failures to load the revocation list: the first of a run is logged, then one a SYNC_WARN_MS. */
  let syncWarn = new LogThrottle(SYNC_WARN_MS);
  /** The shard map version the live logs were last checked against. */
  let shardVersion = deps.shardVersion?.() ?? 0;
  let sweepTimer: NodeJS.Timeout | null = null;
  const subs: Subscription[] = [];
  const damageLog = new LogThrottle(STORE_DAMAGE_LOG_MS);
  /** Store calls failed on damaged storage when the last line about it was logged. */
  let damageLogged = 0;

  const hooks = {
    onClosing(s: Session, code: number): void {
      // A session closed by revocation gives up leadership at once; others keep the grace.
      ctx.logs.sessionEnded(s, code !== TAIL_CLOSE.revoked);
      ctx.sessions.remove(s);
      if (code >= 4000 || code === TAIL_CLOSE.goingAway) metrics.closes.inc({ code: String(code) });
      if (code === TAIL_CLOSE.slow) metrics.slowCloses.inc();
    },
    onError: (code: Parameters<typeof metrics.error>[0]) => metrics.error(code),
  };

  function onConnection(ws: WebSocket, socket: Duplex, address: string): void {
    const session = new Session(ws, limits, hooks, socket, cork);
    ctx.sessions.add(session, address);
    metrics.sessions.inc();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        onFrame(ctx, session, data, isBinary);
      } catch (err) {
        log.error({ err }, 'tail frame handling failed');
      }
    });
    ws.on('pong', () => {
      session.alive = true;
    });
    ws.on('error', (err) => log.debug({ err }, 'tail socket error'));
    ws.on('close', (code: number) => {
      metrics.sessions.dec();
      session.closed(code);
    });
  }

  function sweep(): void {
    const now = Date.now();
    sweeps++;
    for (const s of ctx.sessions.all()) {
      if (s.closing) continue;
      if (s.auth === null) {
        if (now - s.openedAt > limits.connectTimeoutMs) s.close(TAIL_CLOSE.unauthorized, 'connect timeout');
        continue;
      }
      if (now > s.auth.exp * 1000 + limits.expiredCloseMs) {
        s.close(TAIL_CLOSE.unauthorized, 'token expired');
        continue;
      }
      let leads = false;
      for (const h of s.handles.values()) {
        if (h.role === 'leader') leads = true;
        if (!h.rechecking && h.access.expiresAt !== null && h.access.expiresAt <= now) void recheck(ctx, h, 'expired');
      }
      // Each session on its own schedule: a leader's more often than the rest.
      const every = leads ? Math.min(limits.leaderPingIntervalMs, limits.pingIntervalMs) : limits.pingIntervalMs;
      if (now - s.pingedAt >= every - SWEEP_MS / 2) {
        if (!s.alive) {
          s.lost();
          continue;
        }
        s.alive = false;
        s.pingedAt = now;
        try {
          s.ws.ping();
        } catch {
          // The close event follows.
        }
      }
    }
    ctx.revoked.prune(now);
    ctx.access.prune(now);
    reportStoreDamage();
    // Also told at once by shardChanged; this catches what it was not told (an expiry seen
    // only when the map is read, as here).
    checkShards();
    // Every poll period; every sweep while the list never loaded (auth was down at start);
    // every SYNC_RETRY_MS after a failed load (a bus that stalled or auth away: what was
    // revoked meanwhile takes effect soon after they are back, not a whole period later).
    const due =
      ctx.revoked.incomplete ||
      sweeps % Math.max(1, Math.round(limits.revokedPollMs / SWEEP_MS)) === 0 ||
      (syncFailedAt !== 0 && now - syncFailedAt >= Math.min(SYNC_RETRY_MS, limits.revokedPollMs));
    if (due && !syncing) {
      syncing = true;
      void syncRevoked(ctx, syncWarn)
        .then((ok) => {
          // A run of failures that ended: the next one is logged at once again.
          if (ok && syncFailedAt !== 0) syncWarn = new LogThrottle(SYNC_WARN_MS);
          syncFailedAt = ok ? 0 : Date.now();
        })
        .finally(() => (syncing = false));
    }
  }

  /**
   * Says at error level that the store is damaged, with the calls that failed on it since
   * the last line: at most once per STORE_DAMAGE_LOG_MS, and only while calls keep failing
   * (the failed ops themselves are not logged one by one: dispatch.ts).
   */
  function reportStoreDamage(): void {
    const damage = deps.store.damage();
    if (damage === null || damage.failures === damageLogged || damageLog.take() === null) return;
    log.error(
      { reason: damage.reason, failed: damage.failures - damageLogged, failedInAll: damage.failures },
      'log store is damaged: calls that reach the damaged data fail until it is repaired or restored and the node restarted (at most one line per minute)',
    );
    damageLogged = damage.failures;
  }

  function checkShards(): void {
    const version = deps.shardVersion?.() ?? 0;
    if (version === shardVersion || !accepting) return;
    shardVersion = version;
    const moved = ctx.logs.moveAway();
    if (moved > 0) log.info({ moved, version }, 'shard map changed: handles of sites served elsewhere moved');
  }

  let drained = false;
  async function drain(): Promise<void> {
    accepting = false;
    if (drained) return;
    drained = true;
    // No request is taken from now on, so the flush below covers every write accepted, and
    // their acks go out before the sessions close.
    ctx.stopping = true;
    try {
      await ctx.committer.flush();
    } catch (err) {
      log.error({ err }, 'flush on drain failed');
    }
    const open = [...ctx.sessions.all()];
    for (const s of open) s.close(TAIL_CLOSE.goingAway, 'server going away');
    const deadline = Date.now() + limits.drainCloseMs;
    while (open.some((s) => s.ws.readyState !== s.ws.CLOSED) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const s of open) if (s.ws.readyState !== s.ws.CLOSED) s.ws.terminate();
    // What is held for notify goes before the presence that says everyone left.
    hellos.stop();
    ctx.notify.stop();
    presence.stop();
  }

  return {
    shardChanged: checkShards,

    handleUpgrade(req, socket, head) {
      if (!accepting) return refuseSocket(socket, 'UNAVAILABLE', 'not accepting sessions now');
      if (deps.clusterSettled?.() === false) return refuseSocket(socket, 'UNAVAILABLE', 'joining the cluster', { 'retry-after': '1' });
      if (!offersSubprotocol(req)) return refuseSocket(socket, 'BAD_REQUEST', `sec-websocket-protocol: must offer ${TAIL_SUBPROTOCOL}`);
      const address = deps.clientAddress?.(req) ?? req.socket.remoteAddress ?? '';
      const full =
        ctx.sessions.size >= limits.maxSessions ? 'sessions'
        : ctx.sessions.pending >= limits.maxPendingSessions ? 'pending'
        : ctx.sessions.pendingFrom(address) >= limits.maxPendingPerAddress ? 'address'
        : null;
      if (full !== null) {
        metrics.refusedUpgrades.inc({ reason: full });
        return refuseSocket(socket, 'UNAVAILABLE', 'too many sessions', { 'retry-after': String(FULL_RETRY_AFTER_SEC) });
      }
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, socket, address));
    },

    async start() {
      ctx.revoked.listening();
      subs.push(deps.bus.subscribe(SUBJECTS.tailRevoke, (m) => onRevoke(ctx, m)));
      subs.push(deps.bus.subscribe(SUBJECTS.tailAccess, (m) => onAccessChanged(ctx, m)));
      subs.push(deps.bus.subscribe(SUBJECTS.tailUser, (m) => onUserEvent(ctx, m)));
      if (!(await syncRevoked(ctx, syncWarn))) syncFailedAt = Date.now();
      presence.start();
      // A notify process that just started may have missed publishes and knows nobody's
      // presence: presence first, then the publishes, on the same bus connection, so that
      // notify knows who is online before it looks at any write.
      subs.push(deps.bus.subscribe(SUBJECTS.notifyHello, (m) => hellos.heard(m)));
      sweepTimer = setInterval(sweep, SWEEP_MS);
      sweepTimer.unref();
      accepting = true;
    },

    notReady() {
      if (!accepting) return 'tail not accepting sessions';
      const damage = deps.store.damage();
      if (damage !== null) return `tail store damaged (${damage.reason})`;
      return deps.store.healthy() ? null : 'tail store unavailable';
    },

    drain,

    async close() {
      if (closed) return;
      closed = true;
      await drain();
      if (sweepTimer !== null) clearInterval(sweepTimer);
      for (const sub of subs) sub.unsubscribe();
      ctx.fanout.stop();
      try {
        await ctx.committer.close();
      } finally {
        await deps.store.close();
      }
      wss.close();
    },
  };
}
