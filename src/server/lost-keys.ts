/**
 * Key files are made on a data directory's first start, never over data that was made
 * with keys now missing. A directory whose auth.db holds users but whose hmac-keys.json is
 * gone (a partial copy, a restore that left the keys out) would otherwise start with new
 * keys and silently invalidate every token, attestation or push subscription made before;
 * the start is refused instead, naming the file and the ways on. A single process on
 * PostgreSQL (which may make its keys) is checked the same way against the tables of its
 * schema; the processes of a cluster never make keys (secrets.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { VAPID_FILE } from '../notify/index.js';
import { DgError } from '../protocol/errors.js';
import { openPostgres, openSqliteFile } from './database-open.js';
import { ATTESTATION_FILE, HMAC_FILE } from './secrets.js';

interface Holder {
  /** The database file, its role, and a table whose rows were made under the key. */
  db: string;
  role: string;
  table: string;
  /** The same table in the PostgreSQL schema. */
  pgTable: string;
  /** What its rows are, for the message. */
  rows: string;
}

interface KeyFile {
  file: string;
  /** What new keys would invalidate. */
  lost: string;
  holders: Holder[];
}

const USERS: Holder = { db: 'auth.db', role: 'auth', table: 'users', pgTable: 'auth_users', rows: 'users' };

const KEY_FILES: readonly KeyFile[] = [
  { file: HMAC_FILE, lost: 'every access and lease token', holders: [USERS] },
  { file: ATTESTATION_FILE, lost: 'every identity attestation', holders: [USERS] },
  {
    file: VAPID_FILE,
    lost: 'every push subscription (browsers bind them to the VAPID key)',
    holders: [
      { db: 'notify.db', role: 'notify', table: 'notify_push', pgTable: 'notify_push', rows: 'push subscriptions' },
      { db: 'auth.db', role: 'auth', table: 'push_endpoints', pgTable: 'auth_push_endpoints', rows: 'push subscriptions' },
    ],
  },
];

/** Whether `table` of the database at `path` has a row (false for a file without it). */
function hasRows(path: string, role: string, table: string): boolean {
  if (!existsSync(path) || statSync(path).size === 0) return false;
  return openSqliteFile(role, path, (p) => {
    const db = new Database(p, { fileMustExist: true });
    try {
      const known = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(table);
      return known !== undefined && db.prepare(`SELECT 1 FROM "${table}" LIMIT 1`).get() !== undefined;
    } finally {
      db.close();
    }
  });
}

/**
 * Throws when a key file of `files` is missing from `dir` while a database there holds
 * rows made under it. Run before any key file is made, with the directory locked.
 */
export function refuseLostKeys(dir: string, files: readonly string[]): void {
  const missing = missingKeyFiles(dir, files);
  if (missing.length === 0) return;
  const known = new Map<Holder, boolean>();
  const holds = (h: Holder): boolean => {
    let v = known.get(h);
    if (v === undefined) {
      v = hasRows(join(dir, h.db), h.role, h.table);
      known.set(h, v);
    }
    return v;
  };
  refuse(
    dir,
    missing.flatMap((k) => {
      const by = k.holders.find(holds);
      return by === undefined ? [] : [{ file: k.file, why: `${k.lost} (${by.db} holds ${by.rows})` }];
    }),
  );
}

/**
 * The same for a process on PostgreSQL: throws when a key file of `files` is missing from
 * `dir` while the tables of `schema` at `url` hold rows made under it.
 */
export async function refuseLostKeysPg(dir: string, files: readonly string[], url: string, schema: string): Promise<void> {
  const missing = missingKeyFiles(dir, files);
  if (missing.length === 0) return;
  const tables = [...new Set(missing.flatMap((k) => k.holders.map((h) => h.pgTable)))];
  const held = await openPostgres(url, async () => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    c.on('error', () => undefined); // a connection lost now fails the query below
    await c.connect();
    try {
      const found = new Set<string>();
      for (const t of tables) {
        const known = await c.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, t]);
        if (known.rowCount === 0) continue;
        const rows = await c.query(`SELECT 1 FROM "${schema}"."${t}" LIMIT 1`);
        if ((rows.rowCount ?? 0) > 0) found.add(t);
      }
      return found;
    } finally {
      await c.end().catch(() => undefined);
    }
  });
  refuse(
    dir,
    missing.flatMap((k) => {
      const by = k.holders.find((h) => held.has(h.pgTable));
      return by === undefined ? [] : [{ file: k.file, why: `${k.lost} (the database's ${schema}.${by.pgTable} holds ${by.rows})` }];
    }),
  );
}

function missingKeyFiles(dir: string, files: readonly string[]): KeyFile[] {
  return KEY_FILES.filter((k) => files.includes(k.file) && !existsSync(join(dir, k.file)));
}

function refuse(dir: string, refused: { file: string; why: string }[]): void {
  if (refused.length === 0) return;
  const names = refused.map((r) => r.file);
  throw new DgError(
    'BAD_REQUEST',
    `${names.join(' and ')} ${names.length > 1 ? 'are' : 'is'} missing from ${dir}, a data directory in use: new keys would invalidate ${refused.map((r) => r.why).join(', and ')}. ` +
      `Restore the key files from the backup of this directory; to start over with new keys on purpose, make them with \`datagrove keys init --data ${dir}\` and start again`,
  );
}
