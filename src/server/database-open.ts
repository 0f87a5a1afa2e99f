/**
 * Opening the databases at start, with failures that say which database failed: a SQLite
 * file by its role and path (a data directory holds three), PostgreSQL by its address
 * (`postgres://host:port/db`: never the user, the password or the query), the way the bus
 * names its own. The cause stays attached for the log.
 */
import { DgError } from '../protocol/errors.js';

/** `url` without credentials or query string, for messages. */
export function databaseAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//').replace(/\?.*$/, '');
  }
}

/** The innermost message: a store's own UNAVAILABLE wraps what the driver said. */
function rootMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof DgError && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

function codeOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof DgError && e.cause instanceof Error) e = e.cause;
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * Whether a PostgreSQL failure at start is one of reaching the database (network, name
 * lookup, TLS, authentication, a database that does not exist, a server shutting down),
 * not one of the statements run once connected.
 */
function isConnectFailure(err: unknown): boolean {
  const code = codeOf(err);
  // Node errors (ECONNREFUSED, ENOTFOUND, ETIMEDOUT…); SQLSTATE classes 08 (connection),
  // 28 (authorization), 3D (no such database), 53 (too many connections), 57P (shutdown).
  if (/^(E[A-Z]|08|28|3D|53|57P)/.test(code)) return true;
  return /connect|terminat|timeout|startup packet|SSL|password/i.test(rootMessage(err));
}

/**
 * Runs `open` (a PostgreSQL store or pool for `url`); a failure says it was the database,
 * at which address. Connection failures stay UNAVAILABLE (exit 1).
 */
export async function openPostgres<T>(url: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    const at = databaseAddress(url);
    if (isConnectFailure(err)) throw new DgError('UNAVAILABLE', `cannot connect to the database at ${at}: ${rootMessage(err)}`, { cause: err });
    const code = err instanceof DgError ? err.code : 'INTERNAL';
    throw new DgError(code, `the database at ${at}: ${rootMessage(err)}`, { cause: err });
  }
}

/** What to do about a SQLite file that cannot be opened, by SQLite's (or the OS's) code. */
function sqliteAdvice(err: unknown): string {
  const code = codeOf(err);
  if (/^SQLITE_(NOTADB|CORRUPT)/.test(code)) return 'it is damaged: restore the data directory from a backup with `datagrove restore`';
  if (/^SQLITE_(READONLY|CANTOPEN|PERM|AUTH)|^E(ACCES|PERM|ROFS)$/.test(code)) {
    return "the server's user must be able to read and write it and its directory (SQLite makes -wal and -shm files beside it)";
  }
  if (/^SQLITE_FULL|^ENOSPC$/.test(code)) return 'the disk is full';
  return '';
}

/**
 * Runs `open` on the SQLite database of `role` ('auth', 'tail', 'notify') at `path`; a
 * failure names the file and its role, says what was wrong, and what to do when that is
 * known.
 */
export function openSqliteFile<T>(role: string, path: string, open: (path: string) => T): T {
  try {
    return open(path);
  } catch (err) {
    const advice = sqliteAdvice(err);
    throw new Error(`cannot open the ${role} database ${path}: ${rootMessage(err)}${advice === '' ? '' : ` (${advice})`}`, { cause: err });
  }
}
