/**
 * Direct reads of the monolith's auth SQLite file for tests: counting what was stored, and
 * adding a second device to a user (the OIDC device flow that will do this is not built yet).
 */
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { newDeviceKeys, type DeviceKeys } from '../helpers/auth-client.js';

function open(dataDir: string, readonly: boolean) {
  const db = new BetterSqlite3(join(dataDir, 'auth.db'), { readonly, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  return db;
}

/** Row counts of the auth tables. */
export function countRows(dataDir: string): Record<string, number> {
  const db = open(dataDir, true);
  try {
    const out: Record<string, number> = {};
    for (const t of ['users', 'devices', 'nonces', 'families', 'refresh_tokens', 'sites', 'grants', 'access', 'identities']) {
      out[t] = Number((db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n);
    }
    return out;
  } finally {
    db.close();
  }
}

/** Adds a new device to `user` (as a completed device flow would) and returns its keys. */
export function addDevice(dataDir: string, user: string, name = 'second device'): DeviceKeys {
  const keys = newDeviceKeys();
  const db = open(dataDir, false);
  try {
    db.prepare('INSERT INTO devices (id, user_id, box_key, name, created_at) VALUES (?, ?, ?, ?, ?)').run(keys.device, user, keys.boxKey, name, Date.now());
  } finally {
    db.close();
  }
  return keys;
}

export function rotationRequired(dataDir: string, site: string): boolean {
  const db = open(dataDir, true);
  try {
    return (db.prepare('SELECT rotation_required AS r FROM sites WHERE id = ?').get(site) as { r: number }).r === 1;
  } finally {
    db.close();
  }
}

/** Stores user key versions 1..`n` of `user` (placeholder keys and signatures), as if set one by one. */
export function fillUserKeys(dataDir: string, user: string, n: number): void {
  const db = open(dataDir, false);
  try {
    const insert = db.prepare('INSERT INTO user_keys (user_id, version, public_key, sig, prev_sig, created_at) VALUES (?, ?, ?, ?, ?, ?)');
    db.transaction(() => {
      for (let v = 1; v <= n; v++) insert.run(user, v, 'k'.repeat(43), 's'.repeat(86), v === 1 ? null : 'p'.repeat(86), Date.now());
    })();
  } finally {
    db.close();
  }
}
