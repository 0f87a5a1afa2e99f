/**
 * The SQLite side of profiles: version and app data in `profiles`, notification
 * subscriptions and push endpoints in their own tables. A write replaces the whole state in
 * one IMMEDIATE transaction, guarded by the version (compare-and-set).
 */
import type { Database } from 'better-sqlite3';
import type { ProfileRecord, ProfileState } from '../store.js';
import { statements, type StatementLookup } from './statements.js';

type Row = Record<string, unknown>;

export class SqliteProfiles {
  readonly #db: Database;
  readonly #s: StatementLookup;

  constructor(db: Database) {
    this.#db = db;
    this.#s = statements(db, (p) => ({
      get: p('SELECT version, data FROM profiles WHERE user_id = ?'),
      subs: p('SELECT device, site, muted_until FROM subscriptions WHERE user_id = ? ORDER BY device, site'),
      push: p('SELECT device, endpoint, p256dh, auth FROM push_endpoints WHERE user_id = ? ORDER BY device'),
      insert: p('INSERT INTO profiles (user_id, version, data, updated_at) VALUES (?, 1, ?, ?) ON CONFLICT (user_id) DO NOTHING'),
      update: p('UPDATE profiles SET version = version + 1, data = ?, updated_at = ? WHERE user_id = ? AND version = ?'),
      bump: p('UPDATE profiles SET version = version + 1, updated_at = ? WHERE user_id = ? RETURNING version'),
      clearSubs: p('DELETE FROM subscriptions WHERE user_id = ?'),
      clearPush: p('DELETE FROM push_endpoints WHERE user_id = ?'),
      addSub: p('INSERT INTO subscriptions (user_id, device, site, muted_until) VALUES (?, ?, ?, ?)'),
      addPush: p('INSERT INTO push_endpoints (device, user_id, endpoint, p256dh, auth) VALUES (?, ?, ?, ?, ?)'),
      dropSubs: p('DELETE FROM subscriptions WHERE user_id = ? AND device = ?'),
      dropPush: p('DELETE FROM push_endpoints WHERE user_id = ? AND device = ?'),
      dropEnvelopes: p('DELETE FROM envelopes WHERE to_device = ?'),
    }));
  }


  async getProfile(user: string): Promise<ProfileRecord> {
    return this.#db
      .transaction((): ProfileRecord => {
        const row = this.#s('get').get(user) as Row | undefined;
        return {
          version: row === undefined ? 0 : Number(row.version),
          data: row === undefined ? {} : (JSON.parse(String(row.data)) as Record<string, unknown>),
          subscriptions: (this.#s('subs').all(user) as Row[]).map((r) => ({
            device: String(r.device),
            site: String(r.site),
            mutedUntil: r.muted_until === null ? null : Number(r.muted_until),
          })),
          push: (this.#s('push').all(user) as Row[]).map((r) => ({
            device: String(r.device),
            endpoint: String(r.endpoint),
            keys: { p256dh: String(r.p256dh), auth: String(r.auth) },
          })),
        };
      })
      .deferred();
  }

  async putProfile(user: string, version: number, next: ProfileState, now: number): Promise<boolean> {
    return this.#db
      .transaction((): boolean => {
        const data = JSON.stringify(next.data);
        const written = version === 0 ? this.#s('insert').run(user, data, now).changes : this.#s('update').run(data, now, user, version).changes;
        if (written !== 1) return false;
        this.#s('clearSubs').run(user);
        this.#s('clearPush').run(user);
        for (const s of next.subscriptions) this.#s('addSub').run(user, s.device, s.site, s.mutedUntil);
        for (const p of next.push) this.#s('addPush').run(p.device, user, p.endpoint, p.keys.p256dh, p.keys.auth);
        return true;
      })
      .immediate();
  }

  async purgeDevice(user: string, device: string, now: number): Promise<{ profileVersion: number | null }> {
    return this.#db
      .transaction((): { profileVersion: number | null } => {
        this.#s('dropEnvelopes').run(device);
        const removed = this.#s('dropSubs').run(user, device).changes + this.#s('dropPush').run(user, device).changes;
        if (removed === 0) return { profileVersion: null };
        const r = this.#s('bump').get(now, user) as Row | undefined;
        return { profileVersion: r === undefined ? null : Number(r.version) };
      })
      .immediate();
  }
}
