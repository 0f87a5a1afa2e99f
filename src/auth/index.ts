/**
 * The auth service (PROTOCOL.md "Auth API", "Tokens and credentials"): device identity,
 * sessions, sites, grants and the access derived from them. A library: the composition root
 * gives it a store, the bus, the key ring and the attestation keys, mounts `routes` under
 * /auth/v1 and calls `start()`.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Subscription } from '../bus/bus.js';
import { subscribeBus } from './bus-handlers.js';
import { createContext, type AuthDeps } from './context.js';
import { authRoutes } from './routes/index.js';
import { openPgAuthStore as openPgStore, type PgAuthStoreOptions } from './pg/store.js';
import { SqliteAuthStore, type SqliteAuthStoreOptions } from './sqlite/store.js';
import type { AuthStore } from './store.js';

export type { AttestationKeyView, AuthDeps } from './context.js';
export type { OidcProviderConfig } from './oidc/config.js';
export type { AuthStore } from './store.js';
export type { PgAuthStoreOptions } from './pg/store.js';
export type { SqliteAuthStoreOptions } from './sqlite/store.js';

export interface AuthService {
  routes: FastifyPluginAsync;
  start(): Promise<void>;
  ready(): boolean;
  close(): Promise<void>;
}

/** How often expired nonces, refresh tokens and access rows are swept. */
const HOUSEKEEPING_MS = 60_000;
/** How often the store is asked whether it answers, for /ready (a database away turns it 503). */
const HEALTH_MS = 2_000;
/**
 * How often recent revocations are read from the store. Other auth processes sharing it
 * announce theirs on the bus, at most once: a lost message would leave a revoked device's or
 * family's access tokens good here until they expire. Reading the store bounds that to this.
 */
export const REVOCATION_SYNC_MS = 5_000;
/** Each read overlaps the one before by this: revocation times come from the revoking process's clock. */
const REVOCATION_SYNC_OVERLAP_MS = 60_000;

export function createAuth(deps: AuthDeps): AuthService {
  const ctx = createContext(deps);
  let subs: Subscription[] = [];
  let timer: NodeJS.Timeout | undefined;
  let healthTimer: NodeJS.Timeout | undefined;
  let syncTimer: NodeJS.Timeout | undefined;
  let started = false;
  let closed = false;
  let storeHealthy = true;

  const housekeeping = async () => {
    const now = ctx.now();
    ctx.revocations.prune(now);
    if (storeHealthy) await deps.store.prune(now);
  };
  let probing = false;
  const probeHealth = async () => {
    if (probing) return;
    probing = true;
    try {
      storeHealthy = await deps.store.healthy();
    } catch {
      storeHealthy = false;
    } finally {
      probing = false;
    }
  };

  /** Adds the devices and families revoked since `since` (by any process) to the revocation set. */
  const loadRevocations = async (since: number) => {
    const recent = await deps.store.revokedSince(since);
    for (const d of recent.devices) ctx.revocations.addDevice(d.id, d.at);
    for (const f of recent.families) ctx.revocations.addFamily(f.id, f.at);
  };
  let syncedAt = 0;
  let syncing = false;
  const syncRevocations = async () => {
    if (syncing || closed || !storeHealthy) return;
    syncing = true;
    try {
      const at = ctx.now();
      await loadRevocations(syncedAt - REVOCATION_SYNC_OVERLAP_MS);
      syncedAt = at;
    } catch (err) {
      if (closed) return;
      if (!ctx.unavailable.report(err, { task: 'revocation sync' })) deps.log.error({ err }, 'reading recent revocations failed');
    } finally {
      syncing = false;
    }
  };

  return {
    routes: authRoutes(ctx),
    async start() {
      if (started) return;
      const now = ctx.now();
      await loadRevocations(now - ctx.revocations.windowMs);
      syncedAt = now;
      subs = subscribeBus(ctx);
      await deps.store.prune(now);
      timer = setInterval(() => {
        housekeeping().catch((err: unknown) => {
          deps.log.error({ err }, 'auth housekeeping failed');
        });
      }, HOUSEKEEPING_MS);
      timer.unref();
      healthTimer = setInterval(() => void probeHealth(), HEALTH_MS);
      healthTimer.unref();
      syncTimer = setInterval(() => void syncRevocations(), REVOCATION_SYNC_MS);
      syncTimer.unref();
      started = true;
    },
    ready: () => started && !closed && storeHealthy,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      clearInterval(healthTimer);
      clearInterval(syncTimer);
      for (const s of subs) s.unsubscribe();
      await ctx.notify.close();
      await deps.store.close();
    },
  };
}

export function openSqliteAuthStore(path: string, options?: SqliteAuthStoreOptions): AuthStore {
  return new SqliteAuthStore(path, options);
}

/**
 * The PostgreSQL auth store of a cluster: tables created or migrated on open, inside
 * `options.schema` (default `public`, created if missing).
 */
export function openPgAuthStore(url: string, options?: PgAuthStoreOptions): Promise<AuthStore> {
  return openPgStore(url, options);
}
