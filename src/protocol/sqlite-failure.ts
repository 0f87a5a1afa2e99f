/**
 * SQLite failures that say the storage cannot be used now, not that a statement is wrong:
 * a full disk (SQLITE_FULL), an I/O error (SQLITE_IOERR_*), another connection's lock held
 * past the busy timeout (SQLITE_BUSY, SQLITE_LOCKED), a file that became read-only or
 * cannot be opened, memory exhausted, a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB). The
 * stores of auth and notify answer these `UNAVAILABLE` (503: a dependency is down; retry
 * with backoff), as their PostgreSQL stores answer a lost connection, never `INTERNAL`
 * (500, a bug). Constraint violations and misuse keep their own errors.
 */
import { DgError } from './errors.js';

const STORAGE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|NOMEM|PROTOCOL|CORRUPT|NOTADB)/;

/** Whether `err` is a better-sqlite3 error of the storage, by its extended result code. */
export function isSqliteStorageFailure(err: unknown): boolean {
  if (!(err instanceof Error) || err.name !== 'SqliteError') return false;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && STORAGE_CODES.test(code);
}

/**
 * The result code (SQLITE_CORRUPT or SQLITE_NOTADB, without its extended part) when `err`
 * says the file's content is damaged, not merely unusable for a while; else null.
 */
export function sqliteDamage(err: unknown): string | null {
  if (!(err instanceof Error) || err.name !== 'SqliteError') return null;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? (/^SQLITE_(CORRUPT|NOTADB)/.exec(code)?.[0] ?? null) : null;
}

/**
 * `err` as callers of `store` ('auth store', 'notify store') see it: a storage failure
 * becomes `UNAVAILABLE` with the SQLite error as its cause (logged, never sent); anything
 * else is returned as it is.
 */
export function sqliteStoreError(store: string, err: unknown): unknown {
  return isSqliteStorageFailure(err) ? new DgError('UNAVAILABLE', `${store} is unavailable`, { cause: err }) : err;
}
