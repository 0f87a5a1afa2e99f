/**
 * `connect`: the access token, verified locally (HMAC, key ring, expiry) and against the
 * revocation set. The first one opens the session; a later one with a fresh token of the
 * same device extends it. A token of another sign-in (refresh family) of that device adds
 * the family: the session is closed when any of its families is revoked. It remembers the
 * families of its last 4 sign-ins: a fifth replaces the oldest, whose revocation no longer
 * concerns a session that a later sign-in of the same device has since vouched for.
 *
 * Every connect answered UNAUTHORIZED closes the socket with 4401, a first one or a later one
 * (a token of another device, say): a session never outlives a credential it was refused.
 */
import { DEVICE_ID_RE } from '../protocol/ids.js';
import { TAIL_CLOSE, type ConnectArgs, type ConnectReply } from '../protocol/tail-schemas.js';
import { verifyToken, type AccessClaims } from '../protocol/token.js';
import type { TailContext } from './context.js';
import type { Session } from './session.js';

/** Refresh families one session remembers from re-`connect` (each a sign-in of its device). */
const MAX_FAMILIES = 4;

function refuse(session: Session, id: number, message: string): void {
  session.replyError(id, 'UNAUTHORIZED', message);
  session.close(TAIL_CLOSE.unauthorized, 'unauthorized');
}

export function handleConnect(ctx: TailContext, session: Session, id: number, args: ConnectArgs): void {
  // The sweep closes a socket left without `connect` only once a second: one that comes after
  // the deadline but before the sweep is refused here, as the sweep would have refused it.
  if (session.auth === null && Date.now() - session.openedAt > ctx.limits.connectTimeoutMs) {
    refuse(session, id, `connect: must come within ${ctx.limits.connectTimeoutMs} ms of opening the socket`);
    return;
  }
  const v = verifyToken<AccessClaims>(ctx.deps.ring, args.token, 'access');
  if (!v.ok && v.reason === 'unknown-kid') ctx.unknownKey();
  const claims = v.ok ? v.claims : null;
  if (
    claims === null ||
    typeof claims.dev !== 'string' ||
    !DEVICE_ID_RE.test(claims.dev) ||
    typeof claims.fam !== 'string' ||
    ctx.revoked.isRevoked(claims.dev, claims.fam)
  ) {
    refuse(session, id, v.ok ? 'token revoked' : `token ${v.reason}`);
    return;
  }
  if (ctx.revoked.predatesKnown(claims.iat)) {
    // Auth was unreachable since this node started: a revocation of this token may be unknown.
    session.replyError(id, 'UNAVAILABLE', 'this node has not loaded the revocation list yet; retry shortly');
    return;
  }
  const current = session.auth;
  if (current !== null) {
    if (current.device !== claims.dev || current.user !== claims.sub) {
      refuse(session, id, 'a session belongs to one device: this token is of another');
      return;
    }
    if (!current.families.includes(claims.fam)) {
      if (current.families.length >= MAX_FAMILIES) current.families.shift();
      current.families.push(claims.fam);
    }
    current.exp = Math.max(current.exp, claims.exp);
  } else {
    if (ctx.sessions.countOf(claims.sub) >= ctx.limits.maxSessionsPerUser) {
      session.replyError(id, 'RATE_LIMITED', `at most ${ctx.limits.maxSessionsPerUser} sessions of one user on this node`);
      session.close(TAIL_CLOSE.rateLimited, 'too many sessions');
      return;
    }
    session.auth = { user: claims.sub, device: claims.dev, families: [claims.fam], exp: claims.exp };
    ctx.sessions.connected(session);
  }
  const { maxFrame, maxEntries, maxEntryBytes, maxHandles } = ctx.limits;
  const reply: ConnectReply = { session: session.id, user: claims.sub, device: claims.dev, limits: { maxFrame, maxEntries, maxEntryBytes, maxHandles } };
  session.reply(id, reply);
}
