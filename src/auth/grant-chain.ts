/**
 * Whether a grant carries authority (PROTOCOL.md "Tokens and credentials"). A grant is valid
 * when its signature verifies (checked once, by parseGrant, before it is stored), it is not
 * revoked or expired, its issuer is a live device of user U, and either U owns the site (no
 * `prf`) or `prf` is the hash of a declared, valid grant on the same site that gives U, one of
 * U's live devices, or an email attested for U the right `admin`, with `logs`, `rights` and
 * `exp` no wider than its own. Chains are at most 8 grants deep; a revoked grant or a revoked
 * device anywhere in the chain invalidates it, and so does revoking the last live device
 * through which an email that a proof names is attested.
 */
import { normalizeEmail } from '../protocol/email.js';
import type { Right } from '../protocol/ids.js';
import type { ParsedGrant } from './grant.js';
import { expiryWithin, logsWithin, rightsWithin } from './grant.js';
import type { AuthStore, GrantRecord } from './store.js';

/** The store reads a chain check makes (so that a caller checking many chains can cache them). */
export type ChainStore = Pick<AuthStore, 'getSite' | 'getDevice' | 'getGrant' | 'identitiesOf' | 'listDevices'>;

/**
 * `store` with its chain reads remembered, for checking many chains at one moment (the
 * members of a site share most of their proofs). Each read is made once; use it for one
 * request only, never across changes.
 */
export function rememberingReads(store: ChainStore): ChainStore {
  const memo = new Map<string, Promise<unknown>>();
  const once = <A extends unknown[], R>(name: string, f: (...a: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      const key = `${name}\u0000${args.join('\u0000')}`;
      let p = memo.get(key) as Promise<R> | undefined;
      if (p === undefined) memo.set(key, (p = f(...args)));
      return p;
    };
  return {
    getSite: once('site', (id: string) => store.getSite(id)),
    getDevice: once('device', (id: string) => store.getDevice(id)),
    getGrant: once('grant', (hash: string) => store.getGrant(hash)),
    identitiesOf: once('identities', (user: string) => store.identitiesOf(user)),
    listDevices: once('devices', (user: string) => store.listDevices(user)),
  };
}

export const MAX_CHAIN_DEPTH = 8;

/** One grant of a chain, from a freshly parsed JWS or from the store. */
export interface GrantLink {
  hash: string;
  iss: string;
  sub: string;
  site: string;
  logs: string[];
  rights: Right[];
  exp: number | null;
  prf: string | null;
  revokedAt: number | null;
}

export interface VerifiedChain {
  leaf: GrantLink;
  /** The user of the leaf's issuing device. */
  issuerUser: string;
  /** Hashes from the leaf to the root. */
  grants: string[];
  /** Devices the chain rests on one by one (issuers, and device subjects of proofs): revoking any breaks it. */
  devices: string[];
  /**
   * For each proof naming an email: the live devices through which it is attested for the
   * issuer's user. The proof holds while one device of the set is live, so revoking the last
   * of them breaks the chain as surely as revoking an issuer.
   */
  attested: string[][];
  /** ms since the epoch; null when the chain never expires (then no grant of it has `exp`). */
  expiresAt: number | null;
}

export type ChainResult = { ok: true; chain: VerifiedChain } | { ok: false; code: 'FORBIDDEN' | 'NOT_FOUND'; message: string };

export function linkOfParsed(g: ParsedGrant): GrantLink {
  const p = g.payload;
  return { hash: g.hash, iss: p.iss, sub: p.sub, site: p.site, logs: p.logs, rights: p.rights, exp: p.exp ?? null, prf: p.prf ?? null, revokedAt: null };
}

export function linkOfRecord(g: GrantRecord): GrantLink {
  return { hash: g.hash, iss: g.issuer, sub: g.subject, site: g.site, logs: g.logs, rights: g.rights, exp: g.exp, prf: g.prf, revokedAt: g.revokedAt };
}

/**
 * Whether grant subject `sub` names `user`, and what that rests on: `user:<user>` (nothing),
 * a live device of the user (`device`, the device), or an email attested for the user
 * (`attested`, the user's live devices attested for it: it names the user while one is live).
 */
export type SubjectCover = { ok: false } | { ok: true; device?: string; attested?: string[] };

export async function subjectCovers(store: ChainStore, sub: string, user: string): Promise<SubjectCover> {
  if (sub.startsWith('user:')) return sub.slice(5) === user ? { ok: true } : { ok: false };
  if (sub.startsWith('device:')) {
    const d = await store.getDevice(sub.slice(7));
    return d !== null && d.revokedAt === null && d.user === user ? { ok: true, device: d.id } : { ok: false };
  }
  if (sub.startsWith('email:')) {
    const attested = await attestingDevices(store, sub.slice(6), user);
    return attested.length > 0 ? { ok: true, attested } : { ok: false };
  }
  return { ok: false };
}

/** The live devices of `user` attested for `email` (any case), in id order; none: the email is not attested for the user. */
export async function attestingDevices(store: ChainStore, email: string, user: string): Promise<string[]> {
  const want = normalizeEmail(email);
  const ids = new Set((await store.identitiesOf(user)).filter((i) => i.email === want).map((i) => i.device));
  if (ids.size === 0) return [];
  return (await store.listDevices(user))
    .filter((d) => d.revokedAt === null && ids.has(d.id))
    .map((d) => d.id)
    .sort();
}

/** Verifies the chain of `leaf` against the store at `nowSec` (JWT seconds). Never throws on bad input. */
export async function verifyChain(store: ChainStore, leaf: GrantLink, nowSec: number): Promise<ChainResult> {
  const fail = (message: string, code: 'FORBIDDEN' | 'NOT_FOUND' = 'FORBIDDEN'): ChainResult => ({ ok: false, code, message });
  const site = await store.getSite(leaf.site);
  if (site === null) return fail('grant: no such site', 'NOT_FOUND');
  const grants: string[] = [];
  const devices = new Set<string>();
  const attested: string[][] = [];
  let issuerUser = '';
  let cur = leaf;
  for (let depth = 1; ; depth++) {
    if (depth > MAX_CHAIN_DEPTH) return fail(`grant: chain deeper than ${MAX_CHAIN_DEPTH}`);
    const which = depth === 1 ? 'grant' : `grant: proof at depth ${depth}`;
    grants.push(cur.hash);
    if (cur.revokedAt !== null) return fail(depth === 1 ? 'grant: revoked' : `${which} is revoked`);
    if (cur.exp !== null && cur.exp <= nowSec) return fail(depth === 1 ? 'grant: expired' : `${which} has expired`);
    const issuer = await store.getDevice(cur.iss);
    if (issuer === null || issuer.revokedAt !== null) return fail(depth === 1 ? 'grant: issuer is not a live device' : `${which}: issuer is not a live device`);
    devices.add(issuer.id);
    if (depth === 1) issuerUser = issuer.user;
    if (cur.prf === null) {
      if (site.owner !== issuer.user) return fail(depth === 1 ? 'grant: issuer does not own the site and gives no proof' : `${which}: issuer does not own the site`);
      break;
    }
    const rec = await store.getGrant(cur.prf);
    if (rec === null) return fail(depth === 1 ? 'grant: proof is not a declared grant' : `${which}: its proof is not a declared grant`, 'NOT_FOUND');
    const parent = linkOfRecord(rec);
    if (parent.site !== cur.site) return fail('grant: proof is for another site');
    if (!parent.rights.includes('admin')) return fail('grant: proof does not give admin');
    const cover = await subjectCovers(store, parent.sub, issuer.user);
    if (!cover.ok) return fail("grant: proof does not name the issuer's user");
    if (cover.device !== undefined) devices.add(cover.device);
    if (cover.attested !== undefined) attested.push(cover.attested);
    if (!logsWithin(cur.logs, parent.logs)) return fail('grant: logs wider than its proof');
    if (!rightsWithin(cur.rights, parent.rights)) return fail('grant: rights wider than its proof');
    if (!expiryWithin(cur.exp, parent.exp)) return fail('grant: expiry later than its proof');
    cur = parent;
  }
  return {
    ok: true,
    chain: { leaf, issuerUser, grants, devices: [...devices], attested, expiresAt: leaf.exp === null ? null : leaf.exp * 1000 },
  };
}
