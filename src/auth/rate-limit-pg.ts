/**
 * Rate-limit counters in PostgreSQL, for auth processes that share a database: with the
 * plugin's default store each process counts alone, so a cluster of N auth processes would
 * allow N times every limit. This store (the @fastify/rate-limit store contract: `incr`,
 * `read`, `child`) counts in one table instead, so the limits hold for the cluster.
 *
 * Counting is the plugin's local store's: a fixed window per key, starting at the key's
 * first request and lasting `timeWindow` ms; the count restarts when it has passed. Each
 * `incr` is one atomic upsert, so concurrent requests on any process are all counted.
 * Keys are namespaced by route (a route's limit and another's never share a count).
 * Expired rows are deleted now and then by the process that notices. If the database
 * cannot be reached the request fails with 503 UNAVAILABLE (the credential endpoints need
 * it anyway).
 */
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import pg from 'pg';
import { mapError } from './pg/db.js';
import { checkOut } from '../protocol/pg-checkout.js';

interface Counter {
  current: number;
  ttl: number;
}

type Callback = (err: Error | null, res?: Counter) => void;

/** What the plugin passes to `child` at run time: the merged settings and the route. */
interface ChildOptions {
  routeInfo?: { method?: string | string[]; url?: string };
}

/** Rows older than this are deleted (longer than any window the routes use). */
const KEEP_MS = 60 * 60_000;
/** At most one sweep of expired rows per this many ms, per process. */
const SWEEP_EVERY_MS = 60_000;

export interface PgRateLimits {
  store: FastifyRateLimitStoreCtor;
  close(): Promise<void>;
}

/**
 * Opens a small pool on `url`, makes `<schema>.auth_rate_limits` when missing, and returns
 * the store class to hand to @fastify/rate-limit.
 */
export async function openPgRateLimits(url: string, schema: string): Promise<PgRateLimits> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    // A request waits for its count: a database that stops answering must fail it, not hold it.
    connectionTimeoutMillis: 5000,
    statement_timeout: 5000,
    idle_in_transaction_session_timeout: 30_000,
    application_name: `datagrove-limits:${schema}`,
  });
  pool.on('error', () => {
    // An idle client lost its connection: the pool replaces it; requests report their own errors.
  });
  const table = `"${schema}".auth_rate_limits`;
  const create = async () => {
    // Processes starting together would race on CREATE … IF NOT EXISTS: one at a time.
    const held = await checkOut(pool);
    const c = held.client;
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`datagrove.limits.${schema}`]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${table} (key text PRIMARY KEY, window_start bigint NOT NULL, count integer NOT NULL)`);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      held.release();
    }
  };
  try {
    // Another service's store may be creating the schema under its own lock: once more then.
    await create().catch(async (err: unknown) => {
      const code = (err as { code?: unknown }).code;
      if (code !== '23505' && code !== '42P06' && code !== '42P07') throw err;
      await create();
    });
  } catch (err) {
    await pool.end();
    throw err;
  }
  let lastSweep = Date.now();
  // A database that cannot be reached answers 503 UNAVAILABLE (retry), not 500.
  const unavailable = (err: Error): Error => {
    const mapped = mapError(err);
    return mapped instanceof Error ? mapped : err;
  };

  const incrSql = `
    INSERT INTO ${table} AS r (key, window_start, count) VALUES ($1, $2, 1)
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN r.window_start + $3 <= $2 THEN 1 ELSE r.count + 1 END,
      window_start = CASE WHEN r.window_start + $3 <= $2 THEN $2 ELSE r.window_start END
    RETURNING count, window_start`;
  const readSql = `SELECT count, window_start FROM ${table} WHERE key = $1`;

  const counter = (row: { count: unknown; window_start: unknown } | undefined, now: number, timeWindow: number): Counter => {
    if (row === undefined) return { current: 0, ttl: 0 };
    const start = Number(row.window_start);
    if (start + timeWindow <= now) return { current: 0, ttl: 0 };
    return { current: Number(row.count), ttl: start + timeWindow - now };
  };

  const sweep = (now: number) => {
    if (now - lastSweep < SWEEP_EVERY_MS) return;
    lastSweep = now;
    pool.query(`DELETE FROM ${table} WHERE window_start < $1`, [now - KEEP_MS]).catch(() => {
      // Best effort: the next sweep tries again.
    });
  };

  class PgRateLimitStore implements FastifyRateLimitStore {
    constructor(
      _options: unknown,
      private readonly prefix = '',
    ) {}

    incr(key: string, cb: Callback, timeWindow: number): void {
      const now = Date.now();
      pool.query<{ count: unknown; window_start: unknown }>(incrSql, [this.prefix + key, now, timeWindow]).then(
        (r) => {
          sweep(now);
          cb(null, counter(r.rows[0], now, timeWindow));
        },
        (err: Error) => cb(unavailable(err)),
      );
    }

    read(key: string, cb: Callback, timeWindow: number): void {
      const now = Date.now();
      pool.query<{ count: unknown; window_start: unknown }>(readSql, [this.prefix + key]).then(
        (r) => cb(null, counter(r.rows[0], now, timeWindow)),
        (err: Error) => cb(unavailable(err)),
      );
    }

    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): PgRateLimitStore {
      const info = (routeOptions as unknown as ChildOptions).routeInfo ?? {};
      const method = Array.isArray(info.method) ? info.method.join(',') : (info.method ?? '');
      // A route's limit counts under its method and path; a limiter made in code (no route)
      // under the keys it makes, which carry their own scope.
      return new PgRateLimitStore(routeOptions, info.url === undefined ? this.prefix : `${this.prefix}${method} ${info.url}|`);
    }
  }

  return { store: PgRateLimitStore, close: () => pool.end() };
}
