/** Row mappers of the SQLite auth store: SQLite values to the store's records. */
import type { Right } from '../../protocol/ids.js';
import type { AccessRecord, DeviceRecord, GrantRecord, SiteRecord } from '../store.js';

export type Row = Record<string, unknown>;

export const num = (v: unknown): number => Number(v);
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
export const str = (v: unknown): string => String(v);
export const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export function toDevice(r: Row): DeviceRecord {
  return {
    id: str(r.id),
    user: str(r.user_id),
    boxKey: str(r.box_key),
    boxSig: strOrNull(r.box_sig),
    name: str(r.name),
    createdAt: num(r.created_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

export function toSite(r: Row): SiteRecord {
  return { id: str(r.id), owner: str(r.owner), name: str(r.name), keyEpoch: num(r.key_epoch), rotationRequired: num(r.rotation_required) === 1, createdAt: num(r.created_at) };
}

export function toGrant(r: Row): GrantRecord {
  return {
    hash: str(r.hash),
    jws: str(r.jws),
    issuer: str(r.issuer),
    subject: str(r.subject),
    site: str(r.site),
    logs: JSON.parse(str(r.logs)) as string[],
    rights: JSON.parse(str(r.rights)) as Right[],
    iat: num(r.iat),
    exp: numOrNull(r.exp),
    prf: strOrNull(r.prf),
    declaredAt: num(r.declared_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

export function toAccess(r: Row): AccessRecord {
  return {
    user: str(r.user_id),
    site: str(r.site),
    grant: str(r.grant_hash),
    logs: JSON.parse(str(r.logs)) as string[],
    rights: JSON.parse(str(r.rights)) as Right[],
    expiresAt: numOrNull(r.expires_at),
    createdAt: num(r.created_at),
  };
}
