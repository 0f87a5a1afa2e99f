/**
 * Backups of a data directory that holds SQLite databases (the monolith's): `datagrove
 * backup` copies it while the server runs, `datagrove restore` makes a copy servable again.
 *
 * Guarantees:
 * - A backup runs beside a serving process and never blocks its writes: each database is
 *   copied with `VACUUM INTO`, which reads one snapshot in one read transaction. Each copy
 *   is a consistent snapshot of its own database; the databases are copied one after
 *   another (auth, tail, notify), not at one instant.
 * - Every copy is checked (`PRAGMA quick_check`) and synced before it takes its name. The
 *   key files follow (mode 0600; left out on request), and the manifest
 *   (`datagrove-backup.json`: every file with its size and SHA-256) comes last: a
 *   directory without one is not a backup. A backup marks its directory before it copies
 *   anything (`datagrove-backup.json.partial`, replaced by the manifest at the end), so a
 *   backup killed half-way (kill -9, a power cut) leaves a directory that is refused by
 *   `serve` and `restore` alike, even when every database and key file was copied.
 * - A backup is never served as it is: the server refuses a data directory that holds a
 *   manifest. `restore` checks every file against the manifest, copies them into an empty
 *   data directory, and lifts the tail store's epochs (LogStore.liftEpochs) before the
 *   databases take their names, so a restored store never hands out an epoch twice. It
 *   holds the directory's lock (data-dir-lock.ts) from before it checks that the directory
 *   is empty until every file has its name: a server started on the directory meanwhile is
 *   refused, instead of serving files the restore then renames over.
 * - Entries acknowledged after the backup was taken are not in it. A client that holds
 *   more of a log than a restored server finds out when it opens the log from its
 *   position (the SDK refuses: `from` is beyond the log's length).
 */
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { VAPID_FILE } from '../notify/index.js';
import { DgError } from '../protocol/errors.js';
import { openSqliteLogStore } from '../tail/index.js';
import { LOCK_FILE, lockDataDir } from './data-dir-lock.js';
import { ATTESTATION_FILE, HMAC_FILE } from './secrets.js';

/** The tail service's SQLite file in a data directory. */
export const TAIL_DB = 'tail.db';
/**
 * The databases of a data directory, in the order they are copied: notify before tail, so
 * the lengths notify recorded as pushed never run ahead of the logs copied after them (a
 * restored device would not be pushed for entries written again at those positions).
 */
export const DATABASE_FILES = ['auth.db', 'notify.db', TAIL_DB] as const;
/** The key files of a data directory (see secrets.ts and notify/vapid.ts). */
export const KEY_FILES = [HMAC_FILE, ATTESTATION_FILE, VAPID_FILE] as const;
/** The file that makes a directory a complete backup. */
export const BACKUP_MANIFEST = 'datagrove-backup.json';

const PARTIAL = '.partial';
/** Marks a backup being written: its manifest's temporary file, there from the start. */
const UNFINISHED = BACKUP_MANIFEST + PARTIAL;

interface ManifestFile {
  name: string;
  bytes: number;
  sha256: string;
}

interface Manifest {
  format: 1;
  createdAt: string;
  files: ManifestFile[];
}

export interface BackupReport {
  files: ManifestFile[];
}

export interface RestoreReport {
  files: string[];
  /** Logs whose epochs were lifted. */
  logs: number;
}

function bad(message: string): DgError {
  return new DgError('BAD_REQUEST', message);
}

/** Flushes a file or a directory (its entries) to the disk. */
function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The file's SHA-256, read in pieces: a database may be larger than memory. */
function sha256Of(path: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

function fileEntry(dir: string, name: string): ManifestFile {
  const path = join(dir, name);
  return { name, bytes: statSync(path).size, sha256: sha256Of(path) };
}

/** Makes `dir` (mode 0700) unless it exists; refuses a path that is not a directory. */
function makeDir(dir: string, what: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw bad(`${what} ${dir} is not a directory`);
  } else {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
}

/** Makes `dir` (mode 0700), refusing one that exists with anything in it but `ignore`. */
function emptyDir(dir: string, what: string, ignore?: string): void {
  makeDir(dir, what);
  if (readdirSync(dir).some((f) => f !== ignore)) throw bad(`${what} ${dir} is not empty`);
  chmodSync(dir, 0o700);
}

/** Copies `name` from `from` to `to` as a private file, synced. */
function copyPrivate(from: string, to: string, name: string): void {
  const dest = join(to, name);
  copyFileSync(join(from, name), dest);
  chmodSync(dest, 0o600);
  syncPath(dest);
}

/** A consistent copy of the database at `src` in `dest` (which must not exist), checked and synced. */
function copyDatabase(src: string, dest: string): void {
  const db = new Database(src, { readonly: true, fileMustExist: true });
  try {
    db.prepare('VACUUM INTO ?').run(dest);
  } finally {
    db.close();
  }
  const copy = new Database(dest, { readonly: true, fileMustExist: true });
  try {
    const check = copy.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(`the copy of ${src} fails its integrity check: ${String(check)}`);
  } finally {
    copy.close();
  }
  chmodSync(dest, 0o600);
  syncPath(dest);
}

export interface BackupOptions {
  /**
   * Copy the key files too (default true). Without them a restored server does not start
   * until they are copied in (lost-keys.ts): new keys would end every token, attestation
   * and push subscription of before.
   */
  keys?: boolean;
}

/**
 * Copies the databases and key files of `dataDir` into `dest` (made, or empty), while a
 * server may be running on `dataDir`.
 */
export function backupDataDir(dataDir: string, dest: string, options: BackupOptions = {}): BackupReport {
  if (!existsSync(dataDir) || !statSync(dataDir).isDirectory()) throw bad(`no data directory at ${dataDir}`);
  if (existsSync(join(dataDir, BACKUP_MANIFEST)) || existsSync(join(dataDir, UNFINISHED))) throw bad(`${dataDir} is itself a backup: restore it first (datagrove restore)`);
  const databases = DATABASE_FILES.filter((f) => existsSync(join(dataDir, f)));
  const keys = options.keys === false ? [] : KEY_FILES.filter((f) => existsSync(join(dataDir, f)));
  if (databases.length === 0) throw bad(`${dataDir} holds no database (${DATABASE_FILES.join(', ')})`);
  emptyDir(dest, 'the backup directory');
  try {
    // First of all, so that no moment of an interrupted backup leaves a directory that
    // looks like a data directory (refuseBackupDir): the manifest replaces it at the end.
    writeFileSync(join(dest, UNFINISHED), '', { mode: 0o600 });
    syncPath(join(dest, UNFINISHED));
    syncPath(dest);
    for (const name of databases) {
      const partial = join(dest, name + PARTIAL);
      copyDatabase(join(dataDir, name), partial);
      renameSync(partial, join(dest, name));
    }
    for (const name of keys) copyPrivate(dataDir, dest, name);
    const files = [...databases, ...keys].map((name) => fileEntry(dest, name));
    const manifest: Manifest = { format: 1, createdAt: new Date().toISOString(), files };
    const tmp = join(dest, UNFINISHED);
    writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    syncPath(tmp);
    renameSync(tmp, join(dest, BACKUP_MANIFEST));
    syncPath(dest);
    return { files };
  } catch (err) {
    // A failed backup (a full disk, a damaged database) leaves the directory empty again.
    clear(dest);
    throw err;
  }
}

/** Removes what a failed backup or restore wrote into `dir`, which was empty before it (but `keep`). */
function clear(dir: string, keep?: string): void {
  for (const entry of readdirSync(dir)) if (entry !== keep) rmSync(join(dir, entry), { force: true, recursive: true });
}

function readManifest(backup: string): Manifest {
  const path = join(backup, BACKUP_MANIFEST);
  if (!existsSync(path)) throw bad(`${backup} is not a complete backup (it has no ${BACKUP_MANIFEST})`);
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw bad(`${path} is not valid JSON`);
  }
  const known = new Set<string>([...DATABASE_FILES, ...KEY_FILES]);
  const ok =
    typeof m === 'object' &&
    m !== null &&
    (m as Manifest).format === 1 &&
    Array.isArray((m as Manifest).files) &&
    (m as Manifest).files.every((f) => typeof f === 'object' && f !== null && known.has(f.name) && Number.isSafeInteger(f.bytes) && typeof f.sha256 === 'string');
  if (!ok) throw bad(`${path} is not a backup manifest this server reads`);
  return m as Manifest;
}

/**
 * Puts the backup in `backup` into `dataDir` (made, or empty) and lifts its tail epochs.
 * Nothing in `dataDir` takes a database's name before the whole restore is done.
 */
export async function restoreDataDir(backup: string, dataDir: string): Promise<RestoreReport> {
  const manifest = readManifest(backup);
  for (const f of manifest.files) {
    const path = join(backup, f.name);
    if (!existsSync(path)) throw bad(`${path} is missing from the backup`);
    if (statSync(path).size !== f.bytes || sha256Of(path) !== f.sha256) throw bad(`${path} does not match the backup's manifest`);
  }
  makeDir(dataDir, 'the data directory to restore into');
  // Locked before it is found empty: a server that starts on it meanwhile is refused (or
  // holds it already, and the restore is refused), never served files renamed over it.
  const lock = lockDataDir(dataDir);
  try {
    emptyDir(dataDir, 'the data directory to restore into', LOCK_FILE);
    return await restoreInto(backup, manifest, dataDir);
  } finally {
    lock.release();
  }
}

/** The restore proper, into the empty `dataDir` whose lock the caller holds. */
async function restoreInto(backup: string, manifest: Manifest, dataDir: string): Promise<RestoreReport> {
  const names = manifest.files.map((f) => f.name);
  let logs = 0;
  try {
    for (const name of names) {
      const partial = name + PARTIAL;
      copyFileSync(join(backup, name), join(dataDir, partial));
      chmodSync(join(dataDir, partial), 0o600);
    }
    if (names.includes(TAIL_DB)) {
      const store = openSqliteLogStore(join(dataDir, TAIL_DB + PARTIAL));
      try {
        logs = await store.liftEpochs();
      } finally {
        await store.close();
      }
    }
    for (const name of names) syncPath(join(dataDir, name + PARTIAL));
    for (const name of names) renameSync(join(dataDir, name + PARTIAL), join(dataDir, name));
    syncPath(dataDir);
  } catch (err) {
    clear(dataDir, LOCK_FILE);
    throw err;
  }
  return { files: names, logs };
}

/** Throws unless `dataDir` may be served: a backup must be restored first. */
export function refuseBackupDir(dataDir: string): void {
  if (existsSync(join(dataDir, UNFINISHED)) && !existsSync(join(dataDir, BACKUP_MANIFEST))) {
    throw bad(
      `${dataDir} is an unfinished backup (it holds ${UNFINISHED} and no ${BACKUP_MANIFEST}: the backup was interrupted): ` +
        'it is neither a backup nor a data directory; take a new backup (datagrove backup) and restore that',
    );
  }
  if (existsSync(join(dataDir, BACKUP_MANIFEST))) {
    throw bad(`${dataDir} is a backup (it holds ${BACKUP_MANIFEST}): restore it into a data directory with \`datagrove restore --from ${dataDir} --data DIR\`, which makes it safe to serve`);
  }
}
