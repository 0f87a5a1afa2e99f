/**
 * A single grant (PROTOCOL.md "Tokens and credentials"): a compact JWS with header
 * `{alg:"EdDSA", typ:"dg-grant+jwt"}` signed by the issuing device. This file decodes one,
 * checks its shape and its signature; grant-chain.ts decides whether it carries authority.
 */
import { GrantHeader, GrantPayload, MAX_GRANT_LENGTH } from '../protocol/auth-schemas.js';
import { RIGHTS, type Right } from '../protocol/ids.js';
import { sha256b64, verifyDeviceSignature } from './crypto.js';
import { readJwsPart } from './validation.js';

export interface ParsedGrant {
  /** base64url SHA-256 of the ASCII compact JWS. */
  hash: string;
  jws: string;
  payload: GrantPayload;
}

export type ParseResult = { ok: true; grant: ParsedGrant } | { ok: false; message: string };

/** Decodes and checks shape and signature. Never throws; `message` names the problem. */
export function parseGrant(jws: string): ParseResult {
  if (jws.length > MAX_GRANT_LENGTH) return { ok: false, message: 'grant: too long' };
  const parts = jws.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return { ok: false, message: 'grant: not a compact JWS' };
  const [h, p, s] = parts as [string, string, string];
  const header = readJwsPart('grant.header', GrantHeader, h);
  if (!header.ok) return header;
  const payload = readJwsPart('grant.payload', GrantPayload, p);
  if (!payload.ok) return payload;
  const claims = payload.value;
  if (claims.logs.includes('*') && claims.logs.length > 1) return { ok: false, message: 'grant.payload.logs: "*" must stand alone' };
  if (claims.exp !== undefined && claims.exp < claims.iat) return { ok: false, message: 'grant.payload.exp: before iat' };
  if (!verifyDeviceSignature(claims.iss, Buffer.from(`${h}.${p}`, 'ascii'), s)) {
    return { ok: false, message: 'grant: signature does not verify with the issuer key' };
  }
  return { ok: true, grant: { hash: sha256b64(Buffer.from(jws, 'ascii')), jws, payload: claims } };
}

/** `admin` implies `read` and `write`; `write` implies `read` (a writer re-reads the log to recover). */
export function expandRights(rights: readonly Right[]): Right[] {
  const set = new Set<Right>(rights);
  if (set.has('admin')) set.add('write');
  if (set.has('write')) set.add('read');
  return RIGHTS.filter((r) => set.has(r));
}

/** Every log of `child` is covered by `parent` (`*` covers all; a child `*` needs a parent `*`). */
export function logsWithin(child: readonly string[], parent: readonly string[]): boolean {
  if (parent.includes('*')) return true;
  if (child.includes('*')) return false;
  return child.every((l) => parent.includes(l));
}

export function logsCover(logs: readonly string[], log: string): boolean {
  return logs.includes('*') || logs.includes(log);
}

/** Every right of `child` is held by `parent` once implications are applied. */
export function rightsWithin(child: readonly Right[], parent: readonly Right[]): boolean {
  const have = expandRights(parent);
  return child.every((r) => have.includes(r));
}

/** A child expiry (seconds, undefined = none) no later than the parent's. */
export function expiryWithin(child: number | undefined | null, parent: number | undefined | null): boolean {
  if (parent === undefined || parent === null) return true;
  return child !== undefined && child !== null && child <= parent;
}
