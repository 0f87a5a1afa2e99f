/**
 * Access that grew: a grant joined over HTTP or on any node (dg.tail.access), or with
 * `attest` on this one.
 *
 * Guarantees:
 * - The node's cached answers for that (user, site) go at once, so the next lease of any of
 *   the user's devices there asks auth and gets the wider rights; lease tokens of the pair
 *   issued before then are checked with auth too (they may state fewer rights).
 * - Each live handle of the user on the site is checked with auth again and takes its new
 *   access: when that lets its device write where it could not, the other holders get a
 *   `peer` join with `write: true` (and later leases list it in `writers`). A handle auth
 *   cannot be asked about keeps what it had; one auth says lost its access dies, as after a
 *   revocation.
 * - A notice this node missed delays the new rights until its cached answer ages out
 *   (`accessCacheTtlMs`) and the device leases again.
 */
import type { AccessChanged } from '../protocol/bus-messages.js';
import type { TailContext } from './context.js';
import { authTime, recheck } from './revocation.js';

/** Handles a dg.tail.access message (validated here: the bus carries plain JSON). */
export function onAccessChanged(ctx: TailContext, message: unknown): void {
  if (message === null || typeof message !== 'object') return;
  const { user, site, at } = message as Partial<Record<keyof AccessChanged, unknown>>;
  if (typeof user !== 'string' || typeof site !== 'string') return;
  accessGrew(ctx, user, site, authTime(at));
}

/** `user`'s access to `site` grew (at `authAt` on auth's clock, when known). */
export function accessGrew(ctx: TailContext, user: string, site: string, authAt?: number): void {
  ctx.access.grew(user, site, authAt);
  for (const s of ctx.sessions.ofUser(user)) {
    for (const h of s.handles.values()) if (h.log.site === site) void recheck(ctx, h, 'grant', false);
  }
}
