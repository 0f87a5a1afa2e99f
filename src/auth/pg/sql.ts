/**
 * What the table-group files of the PostgreSQL auth store (users.ts, refresh.ts, …) need
 * from the database: run one parameterized statement, either on its own (its own
 * transaction) or inside a transaction that store.ts opened. Table names are qualified with
 * `s`, the quoted schema, so the store never depends on the connection's search_path (which
 * poolers in transaction mode do not keep).
 */

export interface Sql {
  /** The quoted schema name: `${sql.s}.auth_users`. */
  readonly s: string;
  /** Runs one statement with `$n` parameters and returns its rows. */
  rows<R extends object>(text: string, values?: readonly unknown[]): Promise<R[]>;
  /** Runs one statement and returns how many rows it inserted, updated or deleted. */
  count(text: string, values?: readonly unknown[]): Promise<number>;
}

/** The handle of an open transaction. */
export interface TxSql extends Sql {
  /** Ends the transaction with ROLLBACK instead of COMMIT once the callback returns. */
  rollbackOnly(): void;
}

/** A bigint column (pg returns int8 as a string) as a number; refuses what a number cannot hold. */
export function num(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new Error(`auth store: not a safe integer: ${String(v)}`);
  return n;
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}
