/**
 * The notify store on PostgreSQL (pg), for a cluster of notify processes sharing one
 * database. Each write is one transaction; the version compare-and-set locks the user's row
 * (`SELECT … FOR UPDATE`), so concurrent updates of one user are serialized.
 */
import pg from 'pg';
import { DgError } from '../protocol/errors.js';
import { checkOut, type CheckedOut } from '../protocol/pg-checkout.js';
import { pgFailure, pgStoreError } from '../protocol/pg-failure.js';
import type { NotifyStore, PushTarget, StoreChange, UserState, VersionResult } from './store.js';

export interface PgNotifyStoreOptions {
  /** Schema that holds the tables (created when missing); default `public`. */
  schema?: string;
  /** Connections in the pool; default 10. */
  poolSize?: number;
  /** How long opening a connection may take before it fails (ms); default 5 000. */
  connectTimeoutMs?: number;
  /** How long one statement (a lock wait included) may run before it fails (ms); default 15 000. */
  statementTimeoutMs?: number;
  /** How often health is probed with `SELECT 1` for /ready (ms); default 2 000. */
  healthProbeMs?: number;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

function schemaSql(): string {
  return `
CREATE TABLE IF NOT EXISTS notify_users (
  user_id TEXT PRIMARY KEY,
  version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_subs (
  user_id TEXT NOT NULL,
  device TEXT NOT NULL,
  site TEXT NOT NULL,
  muted_until BIGINT,
  PRIMARY KEY (user_id, device, site)
);
CREATE INDEX IF NOT EXISTS notify_subs_site ON notify_subs (site);
CREATE TABLE IF NOT EXISTS notify_push (
  user_id TEXT NOT NULL,
  device TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  p256dh TEXT NOT NULL,
  auth TEXT NOT NULL,
  PRIMARY KEY (user_id, device)
);
CREATE TABLE IF NOT EXISTS notify_pushed (
  user_id TEXT NOT NULL,
  device TEXT NOT NULL,
  site TEXT NOT NULL,
  log TEXT NOT NULL,
  length BIGINT NOT NULL,
  PRIMARY KEY (user_id, device, site, log)
);
CREATE TABLE IF NOT EXISTS notify_windows (
  user_id TEXT NOT NULL,
  device TEXT NOT NULL,
  site TEXT NOT NULL,
  until BIGINT NOT NULL,
  PRIMARY KEY (user_id, device, site)
);`;
}

interface TargetRow {
  user_id: string;
  device: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  pushed: string | null;
}

const TARGET_SELECT = `
SELECT s.user_id, s.device, p.endpoint, p.p256dh, p.auth, d.length AS pushed
FROM notify_subs s
JOIN notify_push p ON p.user_id = s.user_id AND p.device = s.device
LEFT JOIN notify_pushed d ON d.user_id = s.user_id AND d.device = s.device AND d.site = s.site AND d.log = $2
WHERE s.site = $1 AND (s.muted_until IS NULL OR s.muted_until <= $3)`;

function toTarget(r: TargetRow): PushTarget {
  return { user: r.user_id, device: r.device, endpoint: r.endpoint, keys: { p256dh: r.p256dh, auth: r.auth }, pushedLength: r.pushed === null ? 0 : Number(r.pushed) };
}

async function applyOne(c: pg.PoolClient, user: string, ch: StoreChange): Promise<void> {
  switch (ch.op) {
    case 'join':
      await c.query('INSERT INTO notify_subs (user_id, device, site, muted_until) VALUES ($1, $2, $3, NULL) ON CONFLICT DO NOTHING', [user, ch.device, ch.site]);
      break;
    case 'leave':
      await c.query('DELETE FROM notify_subs WHERE user_id = $1 AND device = $2 AND site = $3', [user, ch.device, ch.site]);
      await c.query('DELETE FROM notify_pushed WHERE user_id = $1 AND device = $2 AND site = $3', [user, ch.device, ch.site]);
      await c.query('DELETE FROM notify_windows WHERE user_id = $1 AND device = $2 AND site = $3', [user, ch.device, ch.site]);
      break;
    case 'mute':
    case 'unmute':
      await c.query('UPDATE notify_subs SET muted_until = $1 WHERE user_id = $2 AND device = $3 AND site = $4', [
        ch.op === 'mute' ? ch.until : null,
        user,
        ch.device,
        ch.site,
      ]);
      break;
    case 'push':
      await c.query(
        `INSERT INTO notify_push (user_id, device, endpoint, p256dh, auth) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, device) DO UPDATE SET endpoint = EXCLUDED.endpoint, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth`,
        [user, ch.device, ch.endpoint, ch.keys.p256dh, ch.keys.auth],
      );
      break;
    case 'unpush':
      await c.query('DELETE FROM notify_push WHERE user_id = $1 AND device = $2', [user, ch.device]);
      break;
  }
}

/** Opens the pool and creates the tables when missing. */
export async function openPgNotifyStore(url: string, options: PgNotifyStoreOptions = {}): Promise<NotifyStore> {
  const schema = options.schema ?? 'public';
  if (!IDENT.test(schema)) throw new Error(`invalid schema name '${schema}'`);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    options: `-c search_path=${schema}`,
    // Without these a database that stops answering holds pushes, subscription updates and
    // the schema lock at start-up forever.
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    statement_timeout: options.statementTimeoutMs ?? 15_000,
    // A transaction left open by a stalled node must not hold a user's version row forever.
    idle_in_transaction_session_timeout: 30_000,
    // Names the connections (PostgreSQL truncates it to 63 bytes) for pg_stat_activity.
    application_name: `datagrove-notify:${schema}`,
  });
  // Healthy until a connection fails; the next successful statement clears it.
  let healthy = true;
  pool.on('error', () => {
    // An idle client died (server restart); the pool replaces it on the next checkout.
    healthy = false;
  });
  /** pool.query that keeps `healthy` current: SQL errors do not count, lost connections do. */
  async function query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      const r = await pool.query<R>(text, values);
      healthy = true;
      return r;
    } catch (err) {
      if (!(err instanceof pg.DatabaseError)) healthy = false;
      throw err;
    }
  }
  try {
    // Concurrent processes may start together: serialize the DDL with an advisory lock.
    const held = await checkOut(pool);
    const init = held.client;
    try {
      await init.query('SELECT pg_advisory_lock(hashtext($1))', [`datagrove-notify-schema:${schema}`]);
      await init.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await init.query(schemaSql());
      await init.query('SELECT pg_advisory_unlock(hashtext($1))', [`datagrove-notify-schema:${schema}`]);
    } finally {
      held.release();
    }
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }

  // Probed now and then, so /ready turns 503 while the database is away even when no push or
  // update is asking it anything (and back to 200 once it answers again).
  let probing = false;
  const probe = setInterval(() => {
    if (probing) return;
    probing = true;
    query('SELECT 1', [])
      .catch(() => undefined)
      .finally(() => void (probing = false));
  }, options.healthProbeMs ?? 2000);
  probe.unref();

  async function connect(): Promise<CheckedOut> {
    try {
      const c = await checkOut(pool);
      healthy = true;
      return c;
    } catch (err) {
      healthy = false;
      throw err;
    }
  }

  /** Runs `fn` in one transaction; the user's version row is locked first. */
  async function tx<T>(user: string, fn: (c: pg.PoolClient, current: number) => Promise<T>): Promise<T> {
    const held = await connect();
    const c = held.client;
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO notify_users (user_id, version) VALUES ($1, 0) ON CONFLICT DO NOTHING', [user]);
      const r = await c.query<{ version: string }>('SELECT version FROM notify_users WHERE user_id = $1 FOR UPDATE', [user]);
      const out = await fn(c, Number(r.rows[0]?.version ?? 0));
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      held.release();
    }
  }

  const setVersion = (c: pg.PoolClient, user: string, version: number) =>
    c.query('UPDATE notify_users SET version = $2 WHERE user_id = $1', [user, version]);

  let open = true;
  const store: NotifyStore = {
    async applyChanges(user, version, changes): Promise<VersionResult> {
      return tx(user, async (c, current) => {
        if (version !== current + 1) return { ok: false, version: current };
        for (const ch of changes) await applyOne(c, user, ch);
        await setVersion(c, user, version);
        return { ok: true, version };
      });
    },
    async replaceState(user, version, state: UserState): Promise<VersionResult> {
      return tx(user, async (c, current) => {
        if (version < current) return { ok: false, version: current };
        await c.query('DELETE FROM notify_subs WHERE user_id = $1', [user]);
        await c.query('DELETE FROM notify_push WHERE user_id = $1', [user]);
        const subs = new Map(state.subscriptions.map((x) => [`${x.device}/${x.site}`, x]));
        if (subs.size > 0) {
          const list = [...subs.values()];
          await c.query(
            `INSERT INTO notify_subs (user_id, device, site, muted_until)
             SELECT $1, d, s, m FROM unnest($2::text[], $3::text[], $4::bigint[]) AS t(d, s, m)`,
            [user, list.map((x) => x.device), list.map((x) => x.site), list.map((x) => x.mutedUntil)],
          );
        }
        const push = new Map(state.push.map((x) => [x.device, x]));
        if (push.size > 0) {
          const list = [...push.values()];
          await c.query(
            `INSERT INTO notify_push (user_id, device, endpoint, p256dh, auth)
             SELECT $1, d, e, p, a FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(d, e, p, a)`,
            [user, list.map((x) => x.device), list.map((x) => x.endpoint), list.map((x) => x.keys.p256dh), list.map((x) => x.keys.auth)],
          );
        }
        for (const table of ['notify_pushed', 'notify_windows']) {
          await c.query(
            `DELETE FROM ${table} d WHERE d.user_id = $1 AND NOT EXISTS
             (SELECT 1 FROM notify_subs s WHERE s.user_id = d.user_id AND s.device = d.device AND s.site = d.site)`,
            [user],
          );
        }
        await setVersion(c, user, version);
        return { ok: true, version };
      });
    },
    async userState(user) {
      const held = await connect();
      const c = held.client;
      try {
        // One snapshot for the three reads.
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const v = await c.query<{ version: string }>('SELECT version FROM notify_users WHERE user_id = $1', [user]);
        const subs = await c.query<{ device: string; site: string; muted_until: string | null }>(
          'SELECT device, site, muted_until FROM notify_subs WHERE user_id = $1 ORDER BY device, site',
          [user],
        );
        const eps = await c.query<{ device: string; endpoint: string; p256dh: string; auth: string }>(
          'SELECT device, endpoint, p256dh, auth FROM notify_push WHERE user_id = $1 ORDER BY device',
          [user],
        );
        await c.query('COMMIT');
        return {
          version: Number(v.rows[0]?.version ?? 0),
          subscriptions: subs.rows.map((r) => ({ device: r.device, site: r.site, mutedUntil: r.muted_until === null ? null : Number(r.muted_until) })),
          push: eps.rows.map((r) => ({ device: r.device, endpoint: r.endpoint, keys: { p256dh: r.p256dh, auth: r.auth } })),
        };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        held.release();
      }
    },
    async targets(site, log, now) {
      const r = await query<TargetRow>(`${TARGET_SELECT} ORDER BY s.user_id, s.device`, [site, log, now]);
      return r.rows.map(toTarget);
    },
    async target(user, device, site, log, now) {
      const r = await query<TargetRow>(`${TARGET_SELECT} AND s.user_id = $4 AND s.device = $5`, [site, log, now, user, device]);
      const row = r.rows[0];
      return row === undefined ? null : toTarget(row);
    },
    async markPushed(user, device, site, log, length) {
      await query(
        `INSERT INTO notify_pushed (user_id, device, site, log, length)
         SELECT $1, $2, $3, $4, $5
         WHERE EXISTS (SELECT 1 FROM notify_subs WHERE user_id = $1 AND device = $2 AND site = $3)
         ON CONFLICT (user_id, device, site, log) DO UPDATE SET length = GREATEST(notify_pushed.length, EXCLUDED.length)`,
        [user, device, site, log, length],
      );
    },
    async removeEndpoint(user, device, endpoint) {
      const r = await query('DELETE FROM notify_push WHERE user_id = $1 AND device = $2 AND endpoint = $3', [user, device, endpoint]);
      return (r.rowCount ?? 0) > 0;
    },
    async claimWindow(user, device, site, now, intervalMs) {
      // The conflicting row is locked while its WHERE is checked: concurrent claims queue,
      // and only the first finds the window closed.
      const opened = await query(
        `INSERT INTO notify_windows (user_id, device, site, until) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, device, site) DO UPDATE SET until = EXCLUDED.until WHERE notify_windows.until <= $5
         RETURNING until`,
        [user, device, site, now + intervalMs, now],
      );
      if ((opened.rowCount ?? 0) > 0) return 0;
      const r = await query<{ until: string }>('SELECT until FROM notify_windows WHERE user_id = $1 AND device = $2 AND site = $3', [user, device, site]);
      const until = Number(r.rows[0]?.until ?? 0);
      // Closed again in between (or its subscription left): claim again a moment later.
      return until > now ? until : now + 1;
    },
    healthy() {
      return open && healthy;
    },
    // Damage is recorded by guardFailures, which sees every call's failure.
    damage() {
      return null;
    },
    async close() {
      if (!open) return;
      open = false;
      clearInterval(probe);
      await pool.end();
    },
  };
  return guardFailures(store, () => open);
}

/**
 * `store` with every call's database failure (pg-failure.ts) turned into UNAVAILABLE, as the
 * SQLite store turns a full disk: auth retries an update with backoff, delivery logs it once
 * per interval; a call after close is UNAVAILABLE too, not the pool's raw error.
 */
function guardFailures(store: NotifyStore, isOpen: () => boolean): NotifyStore {
  // The first SQLSTATE that said the data or an index is corrupt (XX001, XX002).
  let damaged: string | null = null;
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (!isOpen()) throw new DgError('UNAVAILABLE', 'notify store is closed');
      try {
        return await fn(...args);
      } catch (err) {
        if (pgFailure(err) === 'damaged') damaged ??= String((err as { code?: unknown }).code);
        throw pgStoreError('notify store', err);
      }
    };
  return {
    applyChanges: guard(store.applyChanges),
    replaceState: guard(store.replaceState),
    userState: guard(store.userState),
    targets: guard(store.targets),
    target: guard(store.target),
    markPushed: guard(store.markPushed),
    removeEndpoint: guard(store.removeEndpoint),
    claimWindow: guard(store.claimWindow),
    healthy: () => store.healthy(),
    damage: () => damaged,
    close: () => store.close(),
  };
}
