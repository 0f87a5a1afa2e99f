/**
 * The live refresh families of a user (its signed-in sessions) in the SQLite auth store. A
 * family is live while it is not revoked, its device is live and it holds an unexpired live
 * refresh token; the revocation re-checks all of it in its one UPDATE.
 */
import type { Database } from 'better-sqlite3';
import type { FamilyRecord } from '../store.js';
import { num, str, type Row } from './rows.js';
import { statements, type StatementLookup } from './statements.js';

/** The conditions under which family `f` is live at `now` (the statement's parameter `@now`). */
const LIVE = `
  f.revoked_at IS NULL
  AND EXISTS (SELECT 1 FROM devices d WHERE d.id = f.device AND d.user_id = f.user_id AND d.revoked_at IS NULL)
  AND EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family = f.id AND t.state = 'live' AND t.expires_at > @now)`;

export class SqliteFamilies {
  readonly #s: StatementLookup;

  constructor(db: Database) {
    this.#s = statements(db, (p) => ({
      live: p(`
        SELECT f.id, f.user_id, f.device, f.created_at FROM families f
        WHERE f.device IN (SELECT id FROM devices WHERE user_id = @user) AND f.user_id = @user AND ${LIVE}
        ORDER BY f.created_at DESC, f.id DESC LIMIT @limit`),
      revokeLive: p(`UPDATE families AS f SET revoked_at = @now WHERE f.id = @id AND f.user_id = @user AND ${LIVE}`),
    }));
  }

  async liveFamilies(user: string, now: number, limit: number): Promise<FamilyRecord[]> {
    return (this.#s('live').all({ user, now, limit }) as Row[]).map((r) => ({ id: str(r.id), user: str(r.user_id), device: str(r.device), createdAt: num(r.created_at) }));
  }

  async revokeLiveFamily(user: string, id: string, now: number): Promise<boolean> {
    return this.#s('revokeLive').run({ user, id, now }).changes === 1;
  }
}
