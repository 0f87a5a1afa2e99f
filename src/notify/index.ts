/**
 * The notify service (PROTOCOL.md "Notify API"): Web Push to the devices of offline users
 * when a site they joined changes. It learns everything over the bus:
 * - dg.notify.update (request, from auth): the notification part of a user's profile;
 * - dg.notify.presence (publish, from every tail node): who is online, per node, with a TTL;
 * - dg.notify.publish (publish, from tail): a log of a site grew.
 * Updates and publishes are taken by one member of the `notify` queue group (the store is
 * shared); presence goes to every notify process. The service owns its store and closes it.
 *
 * Publishes are at most once, so one made while notify was down reached nobody, and a push
 * held for its interval at shutdown is dropped. On start, and when its bus comes back after
 * an outage, notify says dg.notify.hello: every tail node answers with its full presence
 * and then its recent publishes again, so what was missed is pushed (the stored pushed
 * lengths make the rest no-ops) and no user online on some node is pushed for lack of
 * presence.
 */
import { randomBytes } from 'node:crypto';
import type https from 'node:https';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import type { Bus, Subscription } from '../bus/bus.js';
import { RefusalLog } from '../bus/refusal-log.js';
import { SUBJECTS, type AccessReply, type AccessRequest, type NotifyHello, type PushGone } from '../protocol/bus-messages.js';
import { DgError } from '../protocol/errors.js';
import { NotifyPublishCheck, PresenceMessageCheck, firstSchemaError } from '../protocol/notify-schemas.js';
import { DEFAULT_DELIVERY_LIMITS, Delivery, type DeliveryLimits } from './delivery.js';
import { createNotifyMetrics } from './metrics.js';
import { PresenceTracker } from './presence.js';
import { notifyRoutes } from './routes.js';
import { UnavailableLog } from '../protocol/unavailable-log.js';
import type { NotifyStore } from './store.js';
import { handleUpdate, type UpdateReply } from './updates.js';
import { loadVapidKeys, type VapidKeys } from './vapid.js';

export { openSqliteNotifyStore, type SqliteNotifyStoreOptions } from './store-sqlite.js';
export { VAPID_FILE, loadVapidKeys } from './vapid.js';
export { openPgNotifyStore, type PgNotifyStoreOptions } from './store-pg.js';
export type { NotifyStore } from './store.js';

export interface NotifyLimits extends DeliveryLimits {
  /** `TTL` header: seconds a push service keeps an undelivered push. */
  pushTtlSec: number;
  /** Tail nodes whose presence is tracked at once. */
  maxPresenceNodes: number;
  /** dg.notify.publish messages being looked up at once; more are dropped and counted. */
  maxPendingPublishes: number;
  /** Users whose last time online is remembered at once (see PresenceTracker). */
  maxLastSeenUsers: number;
}

export const DEFAULT_NOTIFY_LIMITS: NotifyLimits = {
  ...DEFAULT_DELIVERY_LIMITS,
  pushTtlSec: 86_400,
  maxPresenceNodes: 1024,
  maxPendingPublishes: 1000,
  maxLastSeenUsers: 100_000,
};

/** Slack on top of a push's window and retries, for the time it may spend queued. */
const QUEUE_SLACK_MS = 3_600_000;

export interface NotifyDeps {
  store: NotifyStore;
  bus: Bus;
  /** Where `vapid-keys.json` is made on the first start and read after. */
  dataDir: string;
  /** VAPID `sub`: a mailto: or https: URL where push services can reach the operator. */
  vapidSubject: string;
  /** Allowed push endpoint hosts (see src/protocol/push-endpoint.ts). */
  pushHosts: string[];
  /** At most one push per (device, site) per interval. */
  pushIntervalMs: number;
  log: FastifyBaseLogger;
  registry: Registry;
  /** Bounds and timings; each defaults to DEFAULT_NOTIFY_LIMITS. */
  limits?: Partial<NotifyLimits>;
  /**
   * TLS agent for push requests. Only tests set it, to trust a local push receiver with a
   * self-signed certificate; in production push requests use the system CAs.
   */
  pushAgent?: https.Agent;
}

export interface NotifyService {
  /** Mounted at /notify/v1. */
  routes: FastifyPluginAsync;
  /** Loads (or makes) the VAPID keys and subscribes to the bus. */
  start(): Promise<void>;
  ready(): boolean;
  /** Why notify is not ready (for /ready's message), or null when it is. */
  notReady(): string | null;
  /** Unsubscribes, aborts pushes in flight, drops waiting ones, closes the store. */
  close(): Promise<void>;
}

export function createNotify(deps: NotifyDeps): NotifyService {
  const limits: NotifyLimits = { ...DEFAULT_NOTIFY_LIMITS, ...deps.limits };
  const { store, bus, log } = deps;
  const metrics = createNotifyMetrics(deps.registry);
  // A store that cannot be used (a full disk) fails every update, publish and push alike.
  const unavailable = new UnavailableLog(log);
  // Refused bus messages: anyone on the bus can send them as fast as it carries them.
  const refusals = new RefusalLog(log);
  // When a user was last online matters for as long as a push about an older write can wait.
  const presence = new PresenceTracker(limits.maxPresenceNodes, {
    memoryMs: deps.pushIntervalMs + limits.maxAttempts * (limits.maxRetryDelayMs + 2 * limits.requestTimeoutMs) + QUEUE_SLACK_MS,
    maxUsers: limits.maxLastSeenUsers,
  });
  let vapid: VapidKeys | null = null;
  let delivery: Delivery | null = null;
  let subs: Subscription[] = [];
  let reconnects: Subscription | undefined;
  let pending = 0;
  let closed = false;
  const instance = randomBytes(8).toString('hex');

  async function onPublish(message: unknown): Promise<void> {
    if (!NotifyPublishCheck.Check(message)) {
      refusals.refused({ reason: firstSchemaError(NotifyPublishCheck, message) }, 'dg.notify.publish refused');
      return;
    }
    if (pending >= limits.maxPendingPublishes) {
      metrics.dropped.inc({ reason: 'publish' });
      return;
    }
    pending++;
    try {
      const { site, log: logName, length } = message;
      const received = Date.now();
      // When the newest write was made, on this clock: a user online since then has seen it.
      const madeAt = received - (message.ageMs ?? 0);
      const targets = await store.targets(site, logName, received);
      // Presence is read after the store: a user who left meanwhile is still known to have
      // been online at `madeAt`.
      const now = Date.now();
      for (const t of targets) {
        if (t.pushedLength >= length || presence.seenSince(t.user, madeAt, now)) continue;
        delivery?.offer(t.user, t.device, site, { log: logName, length, madeAt });
      }
    } catch (err) {
      if (!unavailable.report(err, { subject: SUBJECTS.notifyPublish })) log.error({ err }, 'dg.notify.publish failed');
    } finally {
      pending--;
    }
  }

  async function onUpdate(message: unknown): Promise<UpdateReply> {
    try {
      return await handleUpdate({ store, pushHosts: deps.pushHosts, log }, message);
    } catch (err) {
      // The bus answers {ok:false, error}; a malformed update is a bug in the sender, a
      // store that is down is retried by auth with backoff.
      if (unavailable.report(err, { subject: SUBJECTS.notifyUpdate })) throw err;
      if (err instanceof DgError) refusals.refused({ reason: err.message }, 'dg.notify.update refused');
      throw err;
    }
  }

  function onPresence(message: unknown): void {
    if (!PresenceMessageCheck.Check(message)) {
      refusals.refused({ reason: firstSchemaError(PresenceMessageCheck, message) }, 'dg.notify.presence refused');
      return;
    }
    if (!presence.apply(message, Date.now())) refusals.refused({ node: message.node }, 'too many tail nodes; presence refused');
  }

  /** Asks every tail node for its presence and recent publishes (after the subscriptions, so the answers find them). */
  function hello(): void {
    try {
      bus.publish(SUBJECTS.notifyHello, { instance } satisfies NotifyHello);
    } catch (err) {
      log.warn({ err }, 'could not publish dg.notify.hello; missed publishes wait for their logs to grow');
    }
  }

  function notReady(): string | null {
    if (vapid === null || closed) return 'notify not started';
    // Damage does not heal: 503 until an operator restores the store and restarts.
    const damage = store.damage();
    if (damage !== null) return `notify store damaged (${damage})`;
    return store.healthy() ? null : 'notify store unavailable';
  }

  return {
    routes: notifyRoutes(() => vapid?.publicKey ?? null),

    async start() {
      if (vapid !== null || closed) return;
      vapid = loadVapidKeys(deps.dataDir);
      delivery = new Delivery({
        store,
        presence,
        settings: { vapid, subject: deps.vapidSubject, ttlSec: limits.pushTtlSec, timeoutMs: limits.requestTimeoutMs, agent: deps.pushAgent },
        pushHosts: deps.pushHosts,
        intervalMs: deps.pushIntervalMs,
        limits,
        metrics,
        log,
        unavailable,
        gone: (user, device, endpoint) => {
          try {
            bus.publish(SUBJECTS.authPushGone, { user, device, endpoint } satisfies PushGone);
          } catch (err) {
            log.warn({ err }, 'could not publish dg.auth.push-gone');
          }
        },
        mayRead: async (user, device, site, logName) => {
          try {
            const r = await bus.request<AccessReply>(SUBJECTS.authAccess, { user, device, site, log: logName } satisfies AccessRequest, { timeoutMs: limits.requestTimeoutMs });
            return r !== null && typeof r === 'object' && r.ok === true && r.allowed === true && Array.isArray(r.rights) && r.rights.some((x) => x === 'read' || x === 'write' || x === 'admin');
          } catch (err) {
            log.warn({ err }, 'could not ask auth whether a device may read a log; push not sent');
            return false;
          }
        },
      });
      subs = [
        bus.subscribe(SUBJECTS.notifyUpdate, (m) => onUpdate(m), { queue: 'notify' }),
        bus.subscribe(SUBJECTS.notifyPublish, (m) => onPublish(m), { queue: 'notify' }),
        bus.subscribe(SUBJECTS.notifyPresence, (m) => onPresence(m)),
      ];
      // Publishes made while this process's bus was cut off reached nobody either.
      reconnects = bus.onReconnect?.(() => {
        if (!closed) hello();
      });
      hello();
    },

    ready() {
      return notReady() === null;
    },

    notReady,

    async close() {
      if (closed) return;
      closed = true;
      for (const s of subs) s.unsubscribe();
      subs = [];
      reconnects?.unsubscribe();
      await delivery?.close();
      await store.close();
    },
  };
}
