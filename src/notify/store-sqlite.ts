/**
 * The notify store on one SQLite file (better-sqlite3, WAL). better-sqlite3 is synchronous,
 * so every method runs its statements inside one `transaction()` and no other call can
 * interleave: the version compare-and-set needs no row lock. A storage failure (a full
 * disk, an I/O error, a lock held past the busy timeout) rejects with UNAVAILABLE and
 * writes nothing: a failed transaction is rolled back.
 */
import Database from 'better-sqlite3';
import { sqliteDamage, sqliteStoreError } from '../protocol/sqlite-failure.js';
import type { EndpointState, NotifyStore, PushTarget, StoreChange, SubscriptionState, UserState, VersionResult } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS notify_users (
  user_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_subs (
  user_id TEXT NOT NULL,
  device TEXT NOT NULL,
  site TEXT NOT NULL,
  muted_until INTEGER,
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
  length INTEGER NOT NULL,
  PRIMARY KEY (user_id, device, site, log)
);
CREATE TABLE IF NOT EXISTS notify_windows (
  user_id TEXT NOT NULL,
  device TEXT NOT NULL,
  site TEXT NOT NULL,
  until INTEGER NOT NULL,
  PRIMARY KEY (user_id, device, site)
);
`;

interface TargetRow {
  user_id: string;
  device: string;
  endpoint: string;
  p256dh: string;
  auth: string;
  pushed: number | null;
}

const TARGET_SELECT = `
SELECT s.user_id, s.device, p.endpoint, p.p256dh, p.auth, d.length AS pushed
FROM notify_subs s
JOIN notify_push p ON p.user_id = s.user_id AND p.device = s.device
LEFT JOIN notify_pushed d ON d.user_id = s.user_id AND d.device = s.device AND d.site = s.site AND d.log = @log
WHERE s.site = @site AND (s.muted_until IS NULL OR s.muted_until <= @now)`;

function toTarget(r: TargetRow): PushTarget {
  return { user: r.user_id, device: r.device, endpoint: r.endpoint, keys: { p256dh: r.p256dh, auth: r.auth }, pushedLength: r.pushed ?? 0 };
}

export interface SqliteNotifyStoreOptions {
  /** How long a call waits for another connection's lock on the file before it fails with UNAVAILABLE (default 5 000 ms). */
  busyTimeoutMs?: number;
}

export function openSqliteNotifyStore(path: string, options: SqliteNotifyStoreOptions = {}): NotifyStore {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  db.exec(SCHEMA);

  const s = {
    version: db.prepare<[string], { version: number }>('SELECT version FROM notify_users WHERE user_id = ?'),
    setVersion: db.prepare('INSERT INTO notify_users (user_id, version) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET version = excluded.version'),
    join: db.prepare('INSERT INTO notify_subs (user_id, device, site, muted_until) VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING'),
    joinMuted: db.prepare('INSERT INTO notify_subs (user_id, device, site, muted_until) VALUES (?, ?, ?, ?)'),
    leave: db.prepare('DELETE FROM notify_subs WHERE user_id = ? AND device = ? AND site = ?'),
    leavePushed: db.prepare('DELETE FROM notify_pushed WHERE user_id = ? AND device = ? AND site = ?'),
    mute: db.prepare('UPDATE notify_subs SET muted_until = ? WHERE user_id = ? AND device = ? AND site = ?'),
    push: db.prepare(
      'INSERT INTO notify_push (user_id, device, endpoint, p256dh, auth) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device) DO UPDATE SET endpoint = excluded.endpoint, p256dh = excluded.p256dh, auth = excluded.auth',
    ),
    unpush: db.prepare('DELETE FROM notify_push WHERE user_id = ? AND device = ?'),
    clearSubs: db.prepare('DELETE FROM notify_subs WHERE user_id = ?'),
    clearPush: db.prepare('DELETE FROM notify_push WHERE user_id = ?'),
    prunePushed: db.prepare(
      'DELETE FROM notify_pushed WHERE user_id = ? AND NOT EXISTS (SELECT 1 FROM notify_subs s WHERE s.user_id = notify_pushed.user_id AND s.device = notify_pushed.device AND s.site = notify_pushed.site)',
    ),
    subs: db.prepare<[string], { device: string; site: string; muted_until: number | null }>(
      'SELECT device, site, muted_until FROM notify_subs WHERE user_id = ? ORDER BY device, site',
    ),
    endpoints: db.prepare<[string], { device: string; endpoint: string; p256dh: string; auth: string }>(
      'SELECT device, endpoint, p256dh, auth FROM notify_push WHERE user_id = ? ORDER BY device',
    ),
    targets: db.prepare<{ site: string; log: string; now: number }, TargetRow>(`${TARGET_SELECT} ORDER BY s.user_id, s.device`),
    target: db.prepare<{ site: string; log: string; now: number; user: string; device: string }, TargetRow>(
      `${TARGET_SELECT} AND s.user_id = @user AND s.device = @device`,
    ),
    markPushed: db.prepare(`
      INSERT INTO notify_pushed (user_id, device, site, log, length)
      SELECT @user, @device, @site, @log, @length
      WHERE EXISTS (SELECT 1 FROM notify_subs WHERE user_id = @user AND device = @device AND site = @site)
      ON CONFLICT (user_id, device, site, log) DO UPDATE SET length = MAX(length, excluded.length)`),
    removeEndpoint: db.prepare('DELETE FROM notify_push WHERE user_id = ? AND device = ? AND endpoint = ?'),
    windowUntil: db.prepare<[string, string, string], { until: number }>('SELECT until FROM notify_windows WHERE user_id = ? AND device = ? AND site = ?'),
    openWindow: db.prepare(
      'INSERT INTO notify_windows (user_id, device, site, until) VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device, site) DO UPDATE SET until = excluded.until',
    ),
    leaveWindow: db.prepare('DELETE FROM notify_windows WHERE user_id = ? AND device = ? AND site = ?'),
    pruneWindows: db.prepare(
      'DELETE FROM notify_windows WHERE user_id = ? AND NOT EXISTS (SELECT 1 FROM notify_subs s WHERE s.user_id = notify_windows.user_id AND s.device = notify_windows.device AND s.site = notify_windows.site)',
    ),
  };

  const storedVersion = (user: string): number => s.version.get(user)?.version ?? 0;

  const applyOne = (user: string, c: StoreChange): void => {
    switch (c.op) {
      case 'join':
        s.join.run(user, c.device, c.site);
        break;
      case 'leave':
        s.leave.run(user, c.device, c.site);
        s.leavePushed.run(user, c.device, c.site);
        s.leaveWindow.run(user, c.device, c.site);
        break;
      case 'mute':
        s.mute.run(c.until, user, c.device, c.site);
        break;
      case 'unmute':
        s.mute.run(null, user, c.device, c.site);
        break;
      case 'push':
        s.push.run(user, c.device, c.endpoint, c.keys.p256dh, c.keys.auth);
        break;
      case 'unpush':
        s.unpush.run(user, c.device);
        break;
    }
  };

  const apply = db.transaction((user: string, version: number, changes: readonly StoreChange[]): VersionResult => {
    const current = storedVersion(user);
    if (version !== current + 1) return { ok: false, version: current };
    for (const c of changes) applyOne(user, c);
    s.setVersion.run(user, version);
    return { ok: true, version };
  });

  const replace = db.transaction((user: string, version: number, state: UserState): VersionResult => {
    const current = storedVersion(user);
    if (version < current) return { ok: false, version: current };
    s.clearSubs.run(user);
    s.clearPush.run(user);
    for (const sub of state.subscriptions) {
      s.leave.run(user, sub.device, sub.site);
      s.joinMuted.run(user, sub.device, sub.site, sub.mutedUntil);
    }
    for (const p of state.push) s.push.run(user, p.device, p.endpoint, p.keys.p256dh, p.keys.auth);
    s.prunePushed.run(user);
    s.pruneWindows.run(user);
    s.setVersion.run(user, version);
    return { ok: true, version };
  });

  const read = db.transaction((user: string): { version: number } & UserState => {
    const subscriptions: SubscriptionState[] = s.subs.all(user).map((r) => ({ device: r.device, site: r.site, mutedUntil: r.muted_until }));
    const push: EndpointState[] = s.endpoints.all(user).map((r) => ({ device: r.device, endpoint: r.endpoint, keys: { p256dh: r.p256dh, auth: r.auth } }));
    return { version: storedVersion(user), subscriptions, push };
  });

  // One transaction (IMMEDIATE: the write lock first), so two connections cannot both see no window.
  const claim = db.transaction((user: string, device: string, site: string, now: number, intervalMs: number): number => {
    const until = s.windowUntil.get(user, device, site)?.until;
    if (until !== undefined && until > now) return until;
    s.openWindow.run(user, device, site, now + intervalMs);
    return 0;
  });

  let open = true;
  let damaged: string | null = null;
  /** Runs one call's statements; a storage failure becomes UNAVAILABLE, and damage is remembered. */
  function guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      damaged ??= sqliteDamage(err);
      throw sqliteStoreError('notify store', err);
    }
  }
  return {
    async applyChanges(user, version, changes) {
      return guard(() => apply(user, version, changes));
    },
    async replaceState(user, version, state) {
      return guard(() => replace(user, version, state));
    },
    async userState(user) {
      return guard(() => read(user));
    },
    async targets(site, log, now) {
      return guard(() => s.targets.all({ site, log, now }).map(toTarget));
    },
    async target(user, device, site, log, now) {
      const r = guard(() => s.target.get({ site, log, now, user, device }));
      return r === undefined ? null : toTarget(r);
    },
    async markPushed(user, device, site, log, length) {
      guard(() => s.markPushed.run({ user, device, site, log, length }));
    },
    async removeEndpoint(user, device, endpoint) {
      return guard(() => s.removeEndpoint.run(user, device, endpoint).changes > 0);
    },
    async claimWindow(user, device, site, now, intervalMs) {
      return guard(() => claim.immediate(user, device, site, now, intervalMs));
    },
    healthy() {
      return open && db.open;
    },
    damage() {
      return damaged;
    },
    async close() {
      if (!open) return;
      open = false;
      db.close();
    },
  };
}
