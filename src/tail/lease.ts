/**
 * `lease`, `release` and `attest`: access first (a lease token, the cache, or auth), then
 * the handle and leadership (leaders.ts). Leasing an existing handle again gives it the
 * access of now: when that changes whether its device may write, the other holders hear it.
 */
import { DgError } from '../protocol/errors.js';
import type { AttestArgs, LeaseArgs, ReleaseArgs } from '../protocol/tail-schemas.js';
import { verifyToken, type LeaseClaims } from '../protocol/token.js';
import { accessGrew } from './access-changes.js';
import type { TailContext } from './context.js';
import { logKey, type AccessGrant } from './live-log.js';
import { recheck } from './revocation.js';
import type { Session } from './session.js';

/**
 * The access a lease token proves, null when it was issued before that access was revoked
 * or grew (auth is asked instead), or a DgError UNAUTHORIZED.
 */
function leaseTokenAccess(ctx: TailContext, session: Session, args: LeaseArgs, token: string): AccessGrant | null {
  const v = verifyToken<LeaseClaims>(ctx.deps.ring, token, 'lease');
  if (!v.ok) {
    if (v.reason === 'unknown-kid') ctx.unknownKey();
    throw new DgError('UNAUTHORIZED', `lease token ${v.reason}`);
  }
  const c = v.claims;
  const auth = session.auth;
  if (auth === null || c.dev !== auth.device || c.sub !== auth.user || c.site !== args.site || c.log !== args.log || !Array.isArray(c.rights)) {
    throw new DgError('UNAUTHORIZED', 'lease token is for another device or log');
  }
  if (ctx.revoked.leaseTokenStale(c.sub, c.site, c.iat) || ctx.access.predatesGain(c.sub, c.site, c.iat)) return null;
  return { rights: c.rights, expiresAt: c.exp * 1000 };
}

export function handleLease(ctx: TailContext, session: Session, id: number, args: LeaseArgs): Promise<void> {
  const key = logKey(args.site, args.log);
  // Writes of this log still held for an earlier lease of the session were sent before this
  // one: they are decided first, so that a step-down cannot overtake them. A release of the
  // log sent before it takes effect first too: this lease finds the handle gone.
  const last = session.heldWrites.get(key)?.at(-1);
  const released = session.releasing.get(key);
  const before: Promise<unknown>[] = [];
  if (last !== undefined) before.push(new Promise<void>((resolve) => last.decided.push(resolve)));
  if (released !== undefined) before.push(released);
  const run = before.length === 0 ? lease(ctx, session, id, args) : Promise.allSettled(before).then(() => lease(ctx, session, id, args));
  session.leasing.set(key, run);
  const done = () => {
    if (session.leasing.get(key) === run) session.leasing.delete(key);
  };
  run.then(done, done);
  return run;
}

async function lease(ctx: TailContext, session: Session, id: number, args: LeaseArgs): Promise<void> {
  const auth = session.auth;
  if (auth === null) return;
  const redirect = ctx.deps.redirectFor(args.site);
  if (redirect !== null) return session.reply(id, { redirect });
  // Requests run concurrently, but a lease sent after an attest sees the access it gave.
  if (session.attests.size > 0) {
    await Promise.allSettled(session.attests);
    if (session.closing) return;
  }
  const generation = ctx.access.generation;
  const changes = ctx.access.changes;
  const access =
    (args.token !== undefined ? leaseTokenAccess(ctx, session, args, args.token) : null) ??
    (await ctx.access.check(auth.user, auth.device, args.site, args.log));
  if (session.closing) return;
  if (access === null || access.rights.length === 0) {
    // Leasing again gives the handle the access of now: with none, the handle the session
    // holds on the log goes (and its leadership ends), as after a revocation.
    const hid = ctx.logs.get(args.site, args.log)?.hid;
    const held = hid === undefined ? undefined : session.handles.get(hid);
    if (held !== undefined && !held.releasing) ctx.logs.revoke(held, 'revoked');
    return session.reply(id, { needproof: true });
  }
  // Answered inside the log's critical section: no event of another holder's lease can come
  // between the reply's snapshot (peers, leader, length) and the reply.
  const reply = await ctx.logs.acquire(session, args.site, args.log, access, args.lead ?? true, (r) => session.reply(id, r));
  // A revocation or a gain of access that arrived while the log was opening re-checked only
  // the handles that existed then: this one is checked now (after a revocation it dies with
  // a `revoke` event if it must; after a gain it takes the new access).
  const h = 'handle' in reply ? session.handles.get(reply.handle) : undefined;
  if (h === undefined) return;
  if (ctx.access.generation !== generation) void recheck(ctx, h, 'revoked');
  else if (ctx.access.changes !== changes) void recheck(ctx, h, 'grant', false);
}

export function handleRelease(ctx: TailContext, session: Session, id: number, args: ReleaseArgs): void {
  const h = session.handles.get(args.handle);
  if (h === undefined || h.releasing) return session.replyError(id, 'NOT_FOUND', 'no such handle');
  const log = h.log;
  const leasing = session.leasing.get(log.key);
  const held = session.heldWrites.get(log.key)?.at(-1);
  if (leasing === undefined && held === undefined) {
    ctx.logs.release(h);
    // After the outcomes of the writes sent before it, which still commit.
    log.replies.send(session, `{"re":${id}}`);
    return;
  }
  // A lease of this log sent before the release is still running, or writes sent before it
  // wait (for that lease, or for their device's write ids): the release takes effect once
  // they are decided (requests after the release find no handle already).
  h.releasing = true;
  const slot = log.replies.reserve(session);
  const after = () => {
    const now = session.handles.get(log.hid);
    if (now !== undefined) ctx.logs.release(now);
    log.replies.complete(slot, `{"re":${id}}`);
  };
  const decided = held === undefined ? undefined : new Promise<void>((resolve) => held.decided.push(resolve));
  const done = Promise.allSettled([leasing, decided]).then(after);
  session.releasing.set(log.key, done);
  const forget = () => {
    if (session.releasing.get(log.key) === done) session.releasing.delete(log.key);
  };
  done.then(forget, forget);
}

/**
 * Joins a grant through auth. Once auth has recorded it, this node's cached answers for the
 * user on that site are gone (before any lease that waits for this attest runs) and its live
 * handles there take the new access; other nodes hear of it from auth (dg.tail.access).
 */
export async function handleAttest(ctx: TailContext, session: Session, id: number, args: AttestArgs): Promise<void> {
  const auth = session.auth;
  if (auth === null) return;
  const joining = ctx.access.join(auth.user, auth.device, args.grant).then((r) => {
    accessGrew(ctx, auth.user, r.site);
    return r;
  });
  session.attests.add(joining);
  try {
    session.reply(id, await joining);
  } finally {
    session.attests.delete(joining);
  }
}
