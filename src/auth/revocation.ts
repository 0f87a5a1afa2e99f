/**
 * Revoking a device or a grant, and its fan-out: the in-memory revocation set, the access rows
 * that depended on it, the sites whose keys must now be rotated, and the `dg.tail.revoke`
 * events that make tail close sessions and drop cached access.
 */
import { DgError } from '../protocol/errors.js';
import type { Principal } from './bearer.js';
import type { AuthContext } from './context.js';
import { holdsSiteAdmin } from './access.js';
import { linkOfRecord, subjectCovers, verifyChain } from './grant-chain.js';
import { publishRevoke } from './session.js';
import type { AccessRecord } from './store.js';

/** The distinct (user, site) pairs of `rows`, each with the time its access went. */
function pairs(rows: AccessRecord[], at: number): { user: string; site: string; at: number }[] {
  const seen = new Map<string, { user: string; site: string; at: number }>();
  for (const r of rows) seen.set(`${r.user}\u0000${r.site}`, { user: r.user, site: r.site, at });
  return [...seen.values()];
}

/** Whether an access row still stands: its chain verifies and its leaf still names the row's user. */
async function stillValid(ctx: AuthContext, row: AccessRecord): Promise<boolean> {
  const rec = await ctx.store.getGrant(row.grant);
  if (rec === null) return false;
  const r = await verifyChain(ctx.store, linkOfRecord(rec), Math.floor(ctx.now() / 1000));
  return r.ok && (await subjectCovers(ctx.store, rec.subject, row.user)).ok;
}

/**
 * Revokes a device of the caller's user. The device and its refresh families die at once, its
 * envelopes, subscriptions and push endpoint are removed (notify gets the new state); the
 * access rows whose chains relied on it (grants it issued, grants naming it, and through them
 * every descendant) are re-verified and the dead ones dropped; every site the user could read
 * (owned, joined, or named by a live grant to or from it, joined or not: the site key goes to
 * a grant's subjects with the grant), and every site where access was dropped, is marked
 * rotationRequired and returned.
 */
export async function revokeDevice(ctx: AuthContext, caller: Principal, device: string): Promise<string[]> {
  const target = await ctx.store.getDevice(device);
  if (target === null) throw new DgError('NOT_FOUND', 'device: no such device');
  if (target.user !== caller.user) throw new DgError('FORBIDDEN', 'device: belongs to another user');
  const user = target.user;
  const now = ctx.now();
  const { revoked, families } = await ctx.store.revokeDevice(device, now);
  ctx.revocations.addDevice(device, now);
  for (const f of families) ctx.revocations.addFamily(f, now);
  if (revoked) {
    ctx.metrics.revocations.inc({ kind: 'device' });
    ctx.deps.log.info({ device, user }, 'device revoked');
  }
  publishRevoke(ctx, { reason: 'device', device });
  // What the device leaves behind: envelopes waiting for it, its subscriptions and push endpoint.
  const purged = await ctx.store.purgeDevice(user, device, now);
  if (purged.profileVersion !== null) ctx.notify.replaced(user);

  const readable = new Set<string>(await ctx.store.sitesOwnedBy(user));
  const own = await ctx.store.accessOfUser(user);
  for (const r of own) if (r.expiresAt === null || r.expiresAt > now) readable.add(r.site);

  const devices = (await ctx.store.listDevices(user)).map((d) => d.id);
  const emails = [...new Set((await ctx.store.identitiesOf(user)).map((i) => i.email))];
  const touching = await ctx.store.findGrants({
    issuers: devices,
    subjects: [`user:${user}`, ...devices.map((d) => `device:${d}`), ...emails.map((e) => `email:${e}`)],
  });
  // The user could read these sites too, joined or not: a live grant names it (its subjects
  // are members, sent the site key with the grant) or one of its devices issued one (an
  // admin, through its proof). The revoked device may hold their keys.
  const nowSec = Math.floor(now / 1000);
  for (const g of touching) if (g.revokedAt === null && (g.exp === null || g.exp > nowSec)) readable.add(g.site);
  // The user's own rows too, whatever grant they rest on (each is re-verified; only the dead go).
  const candidates = new Map<string, AccessRecord>();
  for (const r of [...own, ...(await ctx.store.accessThroughGrants(touching.map((g) => g.hash)))]) candidates.set(`${r.user}\u0000${r.site}\u0000${r.grant}`, r);
  const dead: AccessRecord[] = [];
  for (const row of candidates.values()) if (!(await stillValid(ctx, row))) dead.push(row);
  await ctx.store.deleteAccess(dead, now);

  const rotate = [...new Set([...readable, ...dead.map((r) => r.site)])].sort();
  await ctx.store.markRotationRequired(rotate);
  if (dead.length > 0) publishRevoke(ctx, { reason: 'grant', access: pairs(dead, now) });
  return rotate;
}

/**
 * Revokes a declared grant, by its issuer's user or an admin of the site (the wire
 * contract's "a site admin": its owner, or a user holding `admin` over any of its logs,
 * whose `GET /sites/:site` rights include admin). Every access row through it (it or a descendant as the leaf) is dropped in the same
 * store transaction; the site is marked rotationRequired and returned.
 */
export async function revokeGrant(ctx: AuthContext, caller: Principal, hash: string): Promise<string[]> {
  const rec = await ctx.store.getGrant(hash);
  if (rec === null) throw new DgError('NOT_FOUND', 'grant: no declared grant has this hash');
  const issuer = await ctx.store.getDevice(rec.issuer);
  const site = await ctx.store.getSite(rec.site);
  if (site === null) throw new DgError('NOT_FOUND', 'grant: its site no longer exists');
  const allowed = issuer?.user === caller.user || (await holdsSiteAdmin(ctx, caller.user, site));
  if (!allowed) throw new DgError('FORBIDDEN', "grant: only its issuer's user or a site admin may revoke it");
  const now = ctx.now();
  const { revoked, dropped } = await ctx.store.revokeGrant(hash, now);
  if (revoked) {
    ctx.metrics.revocations.inc({ kind: 'grant' });
    ctx.deps.log.info({ grant: hash, site: site.id }, 'grant revoked');
  }
  await ctx.store.markRotationRequired([site.id]);
  publishRevoke(ctx, { reason: 'grant', access: pairs(dropped, now) });
  return [site.id];
}
