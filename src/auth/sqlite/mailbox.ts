/**
 * The SQLite side of claims (names unique per namespace, dense ids from a per-namespace
 * counter) and envelopes (a bounded mailbox per recipient device, with a share per sender
 * and a share for other users). Checks and writes share one IMMEDIATE transaction, so limits
 * and uniqueness hold under concurrent calls.
 */
import type { Database } from 'better-sqlite3';
import type { ClaimResult, EnvelopeLimits, EnvelopePut, EnvelopeRecord } from '../store.js';
import { statements, type StatementLookup } from './statements.js';

type Row = Record<string, unknown>;

function toEnvelope(r: Row): EnvelopeRecord {
  return {
    id: String(r.id),
    to: String(r.to_device),
    from: String(r.from_device),
    data: String(r.data),
    at: Number(r.at),
    expiresAt: Number(r.expires_at),
  };
}

export class SqliteMailbox {
  readonly #db: Database;
  readonly #s: StatementLookup;

  constructor(db: Database) {
    this.#db = db;
    this.#s = statements(db, (p) => ({
      getClaim: p('SELECT user_id, id FROM claims WHERE namespace = ? AND name = ?'),
      countClaims: p('SELECT count(*) AS n FROM claims WHERE user_id = ?'),
      nextId: p('INSERT INTO claim_counters (namespace, last) VALUES (?, 1) ON CONFLICT (namespace) DO UPDATE SET last = last + 1 RETURNING last'),
      insertClaim: p('INSERT INTO claims (namespace, name, user_id, id, created_at) VALUES (?, ?, ?, ?, ?)'),
      liveDevice: p('SELECT user_id FROM devices WHERE id = ? AND revoked_at IS NULL'),
      deviceUser: p('SELECT user_id FROM devices WHERE id = ?'),
      // What the recipient holds: in all, from this sender, and from devices not of its user.
      countEnvelopes: p(`
        SELECT count(*) AS total, coalesce(sum(from_device = @from), 0) AS sender,
               coalesce(sum(from_device NOT IN (SELECT id FROM devices WHERE user_id = @user)), 0) AS others
        FROM envelopes WHERE to_device = @to AND expires_at > @now`),
      insertEnvelope: p('INSERT INTO envelopes (id, to_device, from_device, data, at, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
      listEnvelopes: p('SELECT * FROM envelopes WHERE to_device = ? AND expires_at > ? ORDER BY at, id LIMIT ?'),
      deleteEnvelope: p('DELETE FROM envelopes WHERE id = ? AND to_device = ?'),
      prune: p('DELETE FROM envelopes WHERE expires_at <= ?'),
      pruneRevoked: p('DELETE FROM envelopes WHERE to_device IN (SELECT id FROM devices WHERE revoked_at IS NOT NULL)'),
    }));
  }


  async claim(c: { namespace: string; name: string; user: string; now: number; maxPerUser: number }): Promise<ClaimResult> {
    return this.#db
      .transaction((): ClaimResult => {
        const existing = this.#s('getClaim').get(c.namespace, c.name) as Row | undefined;
        if (existing !== undefined) {
          return String(existing.user_id) === c.user ? { ok: true, id: Number(existing.id), created: false } : { ok: false, reason: 'taken' };
        }
        if (Number((this.#s('countClaims').get(c.user) as Row).n) >= c.maxPerUser) return { ok: false, reason: 'limit' };
        const id = Number((this.#s('nextId').get(c.namespace) as Row).last);
        this.#s('insertClaim').run(c.namespace, c.name, c.user, id, c.now);
        return { ok: true, id, created: true };
      })
      .immediate();
  }

  async putEnvelope(e: EnvelopeRecord, limits: EnvelopeLimits, now: number): Promise<EnvelopePut> {
    return this.#db
      .transaction((): EnvelopePut => {
        const recipient = this.#s('liveDevice').get(e.to) as Row | undefined;
        if (recipient === undefined) return 'no-device';
        const user = String(recipient.user_id);
        const held = this.#s('countEnvelopes').get({ from: e.from, user, to: e.to, now }) as Row;
        if (Number(held.sender) >= limits.perSender) return 'sender-full';
        if (Number(held.total) >= limits.perDevice) return 'full';
        const sender = this.#s('deviceUser').get(e.from) as Row | undefined;
        if (sender?.user_id !== user && Number(held.others) >= limits.fromOtherUsers) return 'full';
        this.#s('insertEnvelope').run(e.id, e.to, e.from, e.data, e.at, e.expiresAt);
        return 'ok';
      })
      .immediate();
  }

  async listEnvelopes(device: string, now: number, limit: number): Promise<EnvelopeRecord[]> {
    return (this.#s('listEnvelopes').all(device, now, limit) as Row[]).map(toEnvelope);
  }

  async deleteEnvelope(id: string, device: string): Promise<boolean> {
    return this.#s('deleteEnvelope').run(id, device).changes === 1;
  }

  prune(now: number): void {
    this.#s('prune').run(now);
    this.#s('pruneRevoked').run();
  }
}
