/**
 * Access decisions, shared by the HTTP routes (lease, join, declare, sites) and the bus
 * handlers (dg.auth.access, dg.auth.join). A site's owner holds every right on every log;
 * anyone else holds what the live (unexpired) access rows recorded by `join` give.
 */
import { SUBJECTS, type AccessChanged } from '../protocol/bus-messages.js';
import { DgError } from '../protocol/errors.js';
import { RIGHTS, type Right } from '../protocol/ids.js';
import type { AuthContext } from './context.js';
import { expandRights, logsCover, parseGrant } from './grant.js';
import { attestingDevices, linkOfParsed, linkOfRecord, verifyChain, type GrantLink, type VerifiedChain } from './grant-chain.js';
import type { AccessRecord, SiteRecord } from './store.js';

export interface AccessAnswer {
  rights: Right[];
  logs: string[];
  /** ms since the epoch; null for no expiry. */
  expiresAt: number | null;
}

const OWNER: AccessAnswer = { rights: [...RIGHTS], logs: ['*'], expiresAt: null };

async function liveRows(ctx: AuthContext, user: string, site: string): Promise<AccessRecord[]> {
  const now = ctx.now();
  return (await ctx.store.accessFor(user, site)).filter((r) => r.expiresAt === null || r.expiresAt > now);
}

/** The union of rows: rights and logs combined, the earliest expiry (when to ask again). */
function union(rows: AccessRecord[]): AccessAnswer {
  const rights = expandRights(rows.flatMap((r) => r.rights));
  const logs = rows.some((r) => r.logs.includes('*')) ? ['*'] : [...new Set(rows.flatMap((r) => r.logs))].sort();
  const exps = rows.map((r) => r.expiresAt).filter((e): e is number => e !== null);
  return { rights, logs, expiresAt: exps.length === 0 ? null : Math.min(...exps) };
}

/** What `user` may do on `log` of `site`, or null for nothing. */
export async function accessToLog(ctx: AuthContext, user: string, site: SiteRecord, log: string): Promise<AccessAnswer | null> {
  if (site.owner === user) return OWNER;
  const rows = (await liveRows(ctx, user, site.id)).filter((r) => logsCover(r.logs, log));
  return rows.length === 0 ? null : union(rows);
}

/** Every right `user` holds on some log of `site` (empty: none). */
export async function siteRights(ctx: AuthContext, user: string, site: SiteRecord): Promise<Right[]> {
  if (site.owner === user) return [...RIGHTS];
  return union(await liveRows(ctx, user, site.id)).rights;
}

/** Whether `user` is an admin of every log in `logs` on `site`. */
export async function isSiteAdmin(ctx: AuthContext, user: string, site: SiteRecord, logs: readonly string[] = ['*']): Promise<boolean> {
  if (site.owner === user) return true;
  const admin = (await liveRows(ctx, user, site.id)).filter((r) => r.rights.includes('admin'));
  if (admin.some((r) => r.logs.includes('*'))) return true;
  if (logs.includes('*')) return false;
  return logs.every((l) => admin.some((r) => r.logs.includes(l)));
}

/**
 * Whether `user` is an admin of `site` in the sense of `GET /sites/:site`'s `rights`: its
 * owner, or holding `admin` over any of its logs.
 */
export async function holdsSiteAdmin(ctx: AuthContext, user: string, site: SiteRecord): Promise<boolean> {
  if (site.owner === user) return true;
  return (await liveRows(ctx, user, site.id)).some((r) => r.rights.includes('admin'));
}

export async function requireSite(ctx: AuthContext, id: string): Promise<SiteRecord> {
  const site = await ctx.store.getSite(id);
  if (site === null) throw new DgError('NOT_FOUND', 'site: no such site');
  return site;
}

/** A live device of `user`, else UNAUTHORIZED (bus callers may hold a token of a device revoked since). */
export async function requireLiveDevice(ctx: AuthContext, user: string, device: string): Promise<void> {
  const d = await ctx.store.getDevice(device);
  if (d === null || d.revokedAt !== null || d.user !== user) throw new DgError('UNAUTHORIZED', 'device is unknown or revoked');
}

async function verifiedOrThrow(ctx: AuthContext, link: GrantLink): Promise<VerifiedChain> {
  const r = await verifyChain(ctx.store, link, Math.floor(ctx.now() / 1000));
  if (!r.ok) throw new DgError(r.code, r.message);
  return r.chain;
}

/** A grant just received as a compact JWS, before it is stored. */
type FreshGrant = GrantLink & { jws: string; iat: number };

/** A compact JWS grant parsed and signature-checked, or BAD_REQUEST. */
function parsedOrThrow(jws: string): FreshGrant {
  const r = parseGrant(jws);
  if (!r.ok) throw new DgError('BAD_REQUEST', r.message);
  return { ...linkOfParsed(r.grant), jws, iat: r.grant.payload.iat };
}

async function storeGrant(ctx: AuthContext, g: FreshGrant): Promise<void> {
  await ctx.store.putGrant({
    hash: g.hash, jws: g.jws, issuer: g.iss, subject: g.sub, site: g.site, logs: g.logs, rights: g.rights,
    iat: g.iat, exp: g.exp, prf: g.prf, declaredAt: ctx.now(),
  });
}

/** Verifies a grant and stores it so that it can serve as a proof or be joined by hash. */
export async function declareGrant(ctx: AuthContext, jws: string): Promise<string> {
  const g = parsedOrThrow(jws);
  // Declaring again changes nothing, but a revoked grant must not be answered as if valid.
  const known = await ctx.store.getGrant(g.hash);
  if (known !== null && known.revokedAt !== null) throw new DgError('FORBIDDEN', 'grant: revoked');
  await verifiedOrThrow(ctx, g);
  await storeGrant(ctx, g);
  return g.hash;
}

export interface JoinInput {
  user: string;
  device: string;
  /** A compact JWS or the hash of a declared grant. */
  grant: string;
  /** When given, the grant must be for this site. */
  site?: string;
}

/**
 * How a grant's subject names the joining caller: null when it does not; else the device
 * sets it rests on (one set, when it names an email: the user's live devices attested for
 * it; none when it names the caller's user or device outright).
 */
async function callerCover(ctx: AuthContext, sub: string, input: JoinInput): Promise<string[][] | null> {
  if (sub === `user:${input.user}` || sub === `device:${input.device}`) return [];
  if (!sub.startsWith('email:')) return null;
  const attested = await attestingDevices(ctx.store, sub.slice(6), input.user);
  return attested.length === 0 ? null : [attested];
}

/**
 * Verifies a grant that names the caller (its device, its user, or an email attested for its
 * user) and records the access it gives. Idempotent: joining again refreshes the same row.
 * Every tail node hears of it (dg.tail.access) and stops answering leases of that user on
 * that site from what it cached before.
 *
 * The chain is checked before the row is written, and a revocation may land in between. The
 * store refuses the row in that case only for what the guard names, so it names everything
 * the access rests on: every grant of the chain, every issuer and device subject, the
 * joining device, and, for each email in the chain or naming the caller, the devices
 * through which it is attested. A concurrent revocation then either finds the row in its
 * sweep or makes the store refuse it.
 */
export async function joinGrant(ctx: AuthContext, input: JoinInput): Promise<AccessAnswer & { site: string }> {
  // An unknown site is NOT_FOUND before anything about the grant is considered.
  if (input.site !== undefined && (await ctx.store.getSite(input.site)) === null) throw new DgError('NOT_FOUND', 'site: no such site');
  let link: GrantLink;
  let fresh: FreshGrant | null = null;
  if (input.grant.includes('.')) {
    fresh = parsedOrThrow(input.grant);
    link = fresh;
  } else {
    const rec = await ctx.store.getGrant(input.grant);
    if (rec === null) throw new DgError('NOT_FOUND', 'grant: no declared grant has this hash');
    link = linkOfRecord(rec);
  }
  if (input.site !== undefined && input.site !== link.site) throw new DgError('BAD_REQUEST', 'site: the grant is for another site');
  const chain = await verifiedOrThrow(ctx, link);
  const cover = await callerCover(ctx, link.sub, input);
  if (cover === null) throw new DgError('FORBIDDEN', 'grant: does not name the caller');
  if (fresh !== null) await storeGrant(ctx, fresh);
  const row: AccessRecord = {
    user: input.user, site: link.site, grant: link.hash, logs: link.logs, rights: expandRights(link.rights),
    expiresAt: chain.expiresAt, createdAt: ctx.now(),
  };
  const ok = await ctx.store.putAccess(row, { grants: chain.grants, devices: [...chain.devices, input.device], anyOf: [...chain.attested, ...cover] });
  if (!ok) throw new DgError('FORBIDDEN', 'grant: revoked, or a device its chain rests on was revoked');
  publishAccessChanged(ctx, { user: input.user, site: link.site, at: row.createdAt });
  return { site: link.site, logs: row.logs, rights: row.rights, expiresAt: row.expiresAt };
}

/**
 * Tells every tail node that a user's access to a site grew. Published after the row is
 * stored, so a node that asks auth on hearing it gets the new access. At most once: a lost
 * message only delays the new rights until tail's cached answers age out (accessCacheTtlMs).
 */
function publishAccessChanged(ctx: AuthContext, event: AccessChanged): void {
  try {
    ctx.deps.bus.publish(SUBJECTS.tailAccess, event);
  } catch (err) {
    ctx.deps.log.warn({ err, site: event.site }, 'could not publish a join; tail nodes learn of it when their cached access ages out');
  }
}
