/** Users and devices (tables auth_users, auth_devices) of the PostgreSQL auth store. */
import type { DeviceRecord, NewDevice, Revoked } from '../store.js';
import { num, numOrNull, type Sql } from './sql.js';

interface DeviceRow {
  id: string;
  user_id: string;
  box_key: string;
  box_sig: string | null;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

function toDevice(r: DeviceRow): DeviceRecord {
  return { id: r.id, user: r.user_id, boxKey: r.box_key, boxSig: r.box_sig, name: r.name, createdAt: num(r.created_at), revokedAt: numOrNull(r.revoked_at) };
}

const DEVICE_COLUMNS = 'id, user_id, box_key, box_sig, name, created_at, revoked_at';

export async function deviceExists(sql: Sql, id: string): Promise<boolean> {
  return (await sql.rows(`SELECT 1 FROM ${sql.s}.auth_devices WHERE id = $1`, [id])).length > 0;
}

/** Throws (unique violation) when the user id exists, as the SQLite store does. */
export async function insertUser(sql: Sql, user: { id: string; createdAt: number }): Promise<void> {
  await sql.count(`INSERT INTO ${sql.s}.auth_users (id, created_at) VALUES ($1, $2)`, [user.id, user.createdAt]);
}

/**
 * Inserts the device for an existing user; false when the device id is taken or the user
 * does not exist. A concurrent insert of the same id waits for the other transaction and
 * then reports false (ON CONFLICT), so exactly one of several callers gets true.
 */
export async function insertDevice(sql: Sql, user: string, d: NewDevice): Promise<boolean> {
  const n = await sql.count(
    `INSERT INTO ${sql.s}.auth_devices (id, user_id, box_key, box_sig, name, created_at)
     SELECT $1, u.id, $3, $4, $5, $6 FROM ${sql.s}.auth_users u WHERE u.id = $2
     ON CONFLICT (id) DO NOTHING`,
    [d.id, user, d.boxKey, d.boxSig ?? null, d.name, d.createdAt],
  );
  return n === 1;
}

export async function getDevice(sql: Sql, id: string): Promise<DeviceRecord | null> {
  const rows = await sql.rows<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM ${sql.s}.auth_devices WHERE id = $1`, [id]);
  return rows[0] === undefined ? null : toDevice(rows[0]);
}

export async function listDevices(sql: Sql, user: string): Promise<DeviceRecord[]> {
  const rows = await sql.rows<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM ${sql.s}.auth_devices WHERE user_id = $1 ORDER BY created_at, id`, [user]);
  return rows.map(toDevice);
}

export async function setBoxSig(sql: Sql, device: string, boxKey: string, boxSig: string): Promise<boolean> {
  return (await sql.count(`UPDATE ${sql.s}.auth_devices SET box_sig = $1 WHERE id = $2 AND box_key = $3 AND revoked_at IS NULL`, [boxSig, device, boxKey])) === 1;
}

/** Marks the device revoked; true when this call did (the row lock makes it exactly one caller). */
export async function markDeviceRevoked(sql: Sql, id: string, now: number): Promise<boolean> {
  return (await sql.count(`UPDATE ${sql.s}.auth_devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [now, id])) === 1;
}

export async function devicesRevokedSince(sql: Sql, since: number): Promise<Revoked[]> {
  const rows = await sql.rows<{ id: string; revoked_at: string }>(
    `SELECT id, revoked_at FROM ${sql.s}.auth_devices WHERE revoked_at >= $1 ORDER BY revoked_at, id`,
    [since],
  );
  return rows.map((r) => ({ id: r.id, at: num(r.revoked_at) }));
}

/**
 * Share-locks the devices among `ids` (in id order) and tells which are live: a map from
 * each known id to whether it is not revoked. The lock makes a concurrent
 * `markDeviceRevoked` wait for this transaction (or this wait for it, and then see its
 * result), so a guard checked here cannot be overtaken by a revocation.
 */
export async function lockDevicesLive(sql: Sql, ids: readonly string[]): Promise<Map<string, boolean>> {
  if (ids.length === 0) return new Map();
  const rows = await sql.rows<{ id: string; live: boolean }>(
    `SELECT id, revoked_at IS NULL AS live FROM ${sql.s}.auth_devices WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE`,
    [[...new Set(ids)]],
  );
  return new Map(rows.map((r) => [r.id, r.live]));
}
