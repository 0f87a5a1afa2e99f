/**
 * The connection pool of the PostgreSQL auth store and its two ways to run SQL: one statement
 * on its own, or a callback inside one READ COMMITTED transaction. Both retry a deadlock or
 * serialization failure (the database rolled the work back, so running it again is safe) and
 * turn a lost or refused connection into UNAVAILABLE (503, retry), never into INTERNAL.
 *
 * A connection lost while COMMIT is in flight leaves the outcome unknown: the call rejects
 * with UNAVAILABLE although the transaction may have committed. Every compare-and-set of the
 * store is safe to re-ask (a repeated call fails its condition instead of writing twice).
 */
import pg from 'pg';
import { DgError } from '../../protocol/errors.js';
import { checkOut } from '../../protocol/pg-checkout.js';
import { pgStoreError } from '../../protocol/pg-failure.js';
import type { Sql, TxSql } from './sql.js';

/** Deadlock detected, serialization failure. */
const RETRY_CODES = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 3;

/** A failure of the database (down, still busy after the retries, damaged) as UNAVAILABLE. */
export function mapError(err: unknown): unknown {
  return pgStoreError('auth store', err);
}

function retryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRY_CODES.has(code);
}

const closedError = () => new DgError('UNAVAILABLE', 'auth store is closed');

export class PgDb implements Sql {
  readonly s: string;
  readonly #pool: pg.Pool;
  #closed = false;

  constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.s = `"${schema}"`;
  }

  async rows<R extends object>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    const r = await this.#retry(() => this.#pool.query(text, [...values]));
    return r.rows as R[];
  }

  async count(text: string, values: readonly unknown[] = []): Promise<number> {
    const r = await this.#retry(() => this.#pool.query(text, [...values]));
    return r.rowCount ?? 0;
  }

  /**
   * Runs `fn` in one transaction and commits (or rolls back, after `rollbackOnly()`) when it
   * resolves; rolls back when it rejects. `fn` may run more than once (deadlock retry), so it
   * must only touch the database.
   */
  async tx<T>(fn: (sql: TxSql) => Promise<T>): Promise<T> {
    return this.#retry(() => this.#once(fn));
  }

  async #once<T>(fn: (sql: TxSql) => Promise<T>): Promise<T> {
    const held = await checkOut(this.#pool);
    const client = held.client;
    let broken: Error | undefined;
    try {
      await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      let rollback = false;
      const sql: TxSql = {
        s: this.s,
        rows: async <R extends object>(text: string, values: readonly unknown[] = []) => (await client.query(text, [...values])).rows as R[],
        count: async (text: string, values: readonly unknown[] = []) => (await client.query(text, [...values])).rowCount ?? 0,
        rollbackOnly: () => {
          rollback = true;
        },
      };
      try {
        const out = await fn(sql);
        await client.query(rollback ? 'ROLLBACK' : 'COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
          // The connection is gone (the server rolls back on its own): drop the client.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        });
        throw err;
      }
    } finally {
      held.release(broken);
    }
  }

  async #retry<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError();
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt < MAX_ATTEMPTS && retryable(err) && !this.#closed) continue;
        throw mapError(err);
      }
    }
  }

  /** true when a round trip to the database succeeds. */
  async ping(): Promise<boolean> {
    if (this.#closed) return false;
    try {
      await this.#pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async end(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}
