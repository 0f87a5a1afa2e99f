/**
 * Who is a member of a site, for the client that must encrypt a new site key to every
 * member and to nobody else (GET /sites/:site/members): the owner, every user with a live
 * access row (joined through a grant), and the subjects of every declared grant on the site
 * whose chain still verifies (users, devices' users, and emails, which may not have joined
 * yet). A grant whose chain died (a revoked issuer, proof or device) adds nobody.
 */
import { normalizeEmail } from '../protocol/email.js';
import type { MembersReply } from '../protocol/key-schemas.js';
import { RIGHTS, type Right } from '../protocol/ids.js';
import type { AuthContext } from './context.js';
import { expandRights } from './grant.js';
import { linkOfRecord, rememberingReads, verifyChain } from './grant-chain.js';
import type { SiteRecord } from './store.js';

/** Access rows and grants read per site; a longer list is cut and reported with `more`. */
export const MAX_MEMBER_ROWS = 1000;

export async function siteMembers(ctx: AuthContext, site: SiteRecord): Promise<MembersReply> {
  const now = ctx.now();
  const users = new Map<string, Set<Right>>([[site.owner, new Set(RIGHTS)]]);
  const emails = new Map<string, Set<Right>>();
  const add = (m: Map<string, Set<Right>>, key: string, rights: readonly Right[]) => {
    const set = m.get(key) ?? new Set<Right>();
    for (const r of rights) set.add(r);
    m.set(key, set);
  };
  const rows = await ctx.store.keys.accessOfSite(site.id, now, MAX_MEMBER_ROWS + 1);
  for (const r of rows.slice(0, MAX_MEMBER_ROWS)) add(users, r.user, r.rights);
  const grants = await ctx.store.keys.grantsOfSite(site.id, MAX_MEMBER_ROWS + 1);
  const nowSec = Math.floor(now / 1000);
  // The grants of a site share most of their proofs and issuers: each is read once.
  const reads = rememberingReads(ctx.store);
  for (const g of grants.slice(0, MAX_MEMBER_ROWS)) {
    if (g.exp !== null && g.exp <= nowSec) continue;
    if (!(await verifyChain(reads, linkOfRecord(g), nowSec)).ok) continue;
    if (g.subject.startsWith('user:')) add(users, g.subject.slice(5), g.rights);
    else if (g.subject.startsWith('device:')) {
      const d = await reads.getDevice(g.subject.slice(7));
      if (d !== null && d.revokedAt === null) add(users, d.user, g.rights);
    } else if (g.subject.startsWith('email:')) add(emails, normalizeEmail(g.subject.slice(6)), g.rights);
  }
  const list = <K extends string>(m: Map<string, Set<Right>>, key: K) =>
    [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, r]) => ({ [key]: k, rights: expandRights([...r]) }) as Record<K, string> & { rights: Right[] });
  return {
    site: site.id,
    owner: site.owner,
    members: list(users, 'user'),
    emails: list(emails, 'email'),
    more: rows.length > MAX_MEMBER_ROWS || grants.length > MAX_MEMBER_ROWS,
  };
}
