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

export function createAuth(deps: AuthDeps): AuthService {
  const ctx = createContext(deps);
  let subs: Subscription[] = [];
  let timer: NodeJS.Timeout | undefined;
  let healthTimer: NodeJS.Timeout | undefined;
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

  return {
    routes: authRoutes(ctx),
    async start() {
      if (started) return;
      const now = ctx.now();
      const recent = await deps.store.revokedSince(now - ctx.revocations.windowMs);
      for (const d of recent.devices) ctx.revocations.addDevice(d.id, d.at);
      for (const f of recent.families) ctx.revocations.addFamily(f.id, f.at);
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
      started = true;
    },
    ready: () => started && !closed && storeHealthy,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      clearInterval(healthTimer);
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
