/**
 * One server per SQLite data directory. A SQLite file is one process's: two servers on one
 * directory would each lead the same logs, fence each other's leases over and over, and
 * each keep its own sessions, presence and revocations in memory.
 *
 * The lock is `datagrove.lock` in the directory: a small SQLite database on which the
 * server holds an exclusive lock (SQLite's POSIX advisory lock, `locking_mode=EXCLUSIVE`)
 * for as long as it runs. Guarantees:
 * - While a server holds it, no other process (or server in the same process) takes it.
 * - The kernel lets it go when the process ends, however it ends (a crash, SIGKILL, a
 *   container stopped): a lock is never stale, and there is nothing to clean up by hand.
 * - The holder's pid is in the file's header (`PRAGMA user_version`, a documented field of
 *   SQLite's file format that can be read without the lock), so a refused start names it. A
 *   clean stop sets it back to 0; a start that finds another pid there says that server did
 *   not stop cleanly.
 * Readers never take it: `datagrove backup` runs beside a serving process.
 * Like SQLite itself, it relies on the file system's locks: it holds on local disks, not on
 * network file systems that do not implement them.
 */
import { closeSync, openSync, readSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DgError } from '../protocol/errors.js';
import { createPrivateFiles } from './secrets.js';

export const LOCK_FILE = 'datagrove.lock';

/** Offset of `user_version` in a SQLite database header (4 bytes, big-endian). */
const USER_VERSION_OFFSET = 60;
/** Long enough for a lock taken at the same moment by another starting process to settle. */
const BUSY_TIMEOUT_MS = 500;

/**
 * Directories locked by this process. POSIX locks belong to a process, and closing any
 * descriptor of the file drops them all: the header of a file this process holds is never
 * read through a descriptor of its own.
 */
const heldHere = new Set<string>();

export interface DataDirLock {
  readonly path: string;
  /** The pid the file named when this process took it: a server that did not stop cleanly, or 0. */
  readonly previousPid: number;
  /** Lets the lock go (idempotent). */
  release(): void;
}

/** The pid in the lock file's header (0 when none, or unreadable). */
function holderPid(path: string): number {
  const buf = Buffer.alloc(4);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    return readSync(fd, buf, 0, 4, USER_VERSION_OFFSET) === 4 ? buf.readUInt32BE(0) : 0;
  } catch {
    return 0;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function inUse(dir: string, path: string, pid: number): DgError {
  const who = pid === 0 ? 'another datagrove process' : pid === process.pid ? `this process (pid ${pid})` : `another datagrove process (pid ${pid})`;
  return new DgError(
    'BAD_REQUEST',
    `the data directory ${dir} is in use by ${who}, which holds ${path}: stop it first, or give this server a data directory of its own (--data)`,
  );
}

/**
 * Takes the lock of `dir` (which exists) for this process, or throws naming the process
 * that holds it.
 */
export function lockDataDir(dir: string): DataDirLock {
  const path = join(dir, LOCK_FILE);
  createPrivateFiles(dir, [LOCK_FILE]);
  const key = realpathSync(path);
  if (heldHere.has(key)) throw inUse(dir, path, process.pid);
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new Error(`cannot open the lock file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let previousPid: number;
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // The file holds a pid only: no journal file beside it.
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    previousPid = Number(db.pragma('user_version', { simple: true }));
    db.pragma(`user_version = ${process.pid}`);
    db.exec('COMMIT');
  } catch (err) {
    db.close();
    if (String((err as { code?: unknown }).code).startsWith('SQLITE_BUSY')) throw inUse(dir, path, holderPid(path));
    throw new Error(`cannot take the lock file ${path}: ${(err as Error).message} (if no server runs on ${dir}, remove it)`, { cause: err });
  }
  heldHere.add(key);
  let held = true;
  return {
    path,
    previousPid,
    release() {
      if (!held) return;
      held = false;
      try {
        db.pragma('user_version = 0');
      } finally {
        db.close();
        heldHere.delete(key);
      }
    },
  };
}
