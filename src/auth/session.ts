/**
 * Sessions: an access token (short, HMAC, verified locally) plus a refresh token (opaque,
 * single use, rotated on every refresh, grouped in a family per login). Refresh is idempotent
 * per `(refresh, guid)`: the first rotation stores its answer sealed under the presented token
 * and a retry with the same guid gets the same bytes back; the same token with any other guid
 * is a reuse, which revokes the whole family (a stolen token was used, by the thief or by the
 * victim, and it cannot be told which).
 */
import { SUBJECTS, type RevokeEvent } from '../protocol/bus-messages.js';
import { DgError } from '../protocol/errors.js';
import { newJti, signToken } from '../protocol/token.js';
import { REFRESH_PATTERN, type RefreshReply, type SessionReply } from '../protocol/auth-schemas.js';
import { REFRESH_TTL_MS, type AuthContext } from './context.js';
import { constantTimeEqual, openAnswer, randomId, sealAnswer, sha256b64 } from './crypto.js';
import type { RefreshRecord } from './store.js';

export function mintAccess(ctx: AuthContext, user: string, device: string, family: string): string {
  const iat = Math.floor(ctx.now() / 1000);
  return signToken(ctx.deps.ring, { typ: 'access', sub: user, dev: device, fam: family, iat, exp: iat + ctx.deps.accessTtlSec, jti: newJti() });
}

function newRefreshToken(): { token: string; hash: string } {
  const token = randomId(32);
  return { token, hash: sha256b64(token) };
}

/** Starts a new refresh family for a device that just proved itself (signup, login). */
export async function issueSession(ctx: AuthContext, user: string, device: string): Promise<SessionReply> {
  const now = ctx.now();
  const family = randomId(16);
  const refresh = newRefreshToken();
  await ctx.store.createFamily({ id: family, user, device, createdAt: now }, { hash: refresh.hash, expiresAt: now + REFRESH_TTL_MS });
  return { user, device, access: mintAccess(ctx, user, device, family), refresh: refresh.token, expiresIn: ctx.deps.accessTtlSec };
}

/** (user, site) pairs per dg.tail.revoke message: a large revocation goes out in several, each well under a bus message's size limit. */
export const REVOKE_PAIRS_PER_MESSAGE = 1000;

export function publishRevoke(ctx: AuthContext, event: RevokeEvent): void {
  const access = event.access;
  if (access !== undefined && access.length > REVOKE_PAIRS_PER_MESSAGE) {
    for (let i = 0; i < access.length; i += REVOKE_PAIRS_PER_MESSAGE) {
      publishRevoke(ctx, { ...event, access: access.slice(i, i + REVOKE_PAIRS_PER_MESSAGE) });
    }
    return;
  }
  try {
    ctx.deps.bus.publish(SUBJECTS.tailRevoke, event);
  } catch (err) {
    // The revocation is stored; tail nodes poll dg.auth.revoked and auth nodes read the store, so a closed bus loses nothing durable.
    ctx.deps.log.warn({ err, reason: event.reason }, 'could not publish a revocation');
  }
}

export async function revokeFamily(ctx: AuthContext, family: string): Promise<void> {
  const now = ctx.now();
  await ctx.store.revokeFamily(family, now);
  familyRevoked(ctx, family, now);
}

/**
 * Ends one live session (refresh family) of `user`, on any of its devices: false when
 * `family` is not one (another user's, revoked, expired, or unknown look the same).
 */
export async function endSession(ctx: AuthContext, user: string, family: string): Promise<boolean> {
  const now = ctx.now();
  if (!(await ctx.store.revokeLiveFamily(user, family, now))) return false;
  familyRevoked(ctx, family, now);
  return true;
}

/** After the store revoked it: this node refuses its tokens at once, and the tail closes its live sessions (4403). */
function familyRevoked(ctx: AuthContext, family: string, now: number): void {
  ctx.revocations.addFamily(family, now);
  ctx.metrics.revocations.inc({ kind: 'family' });
  publishRevoke(ctx, { reason: 'family', family });
}

const unauthorized = () => new DgError('UNAUTHORIZED', 'refresh token is invalid, expired or revoked');

const reused = () => new DgError('REFRESH_REUSED', 'refresh token was already used; its session is revoked');
const refreshShape = new RegExp(REFRESH_PATTERN);

/**
 * The answer to a refresh token that was already rotated: a replay (the same guid), or a
 * reuse (another guid), which is REFRESH_REUSED every time, also once its family is revoked.
 */
async function answerRotated(ctx: AuthContext, rec: RefreshRecord, refresh: string, guid: string): Promise<string> {
  const replay = rec.guid !== null && constantTimeEqual(rec.guid, guid);
  if (rec.familyRevoked || rec.deviceRevoked) {
    ctx.metrics.refreshes.inc({ outcome: replay ? 'invalid' : 'reused' });
    throw replay ? unauthorized() : reused();
  }
  if (replay && rec.answer !== null) {
    const answer = openAnswer(refresh, rec.answer);
    if (answer === null) throw new DgError('INTERNAL', 'internal error', { cause: new Error('stored refresh answer does not open') });
    ctx.metrics.refreshes.inc({ outcome: 'replay' });
    return answer;
  }
  await revokeFamily(ctx, rec.family);
  ctx.metrics.refreshes.inc({ outcome: 'reused' });
  ctx.deps.log.warn({ family: rec.family, device: rec.device }, 'refresh token reused: family revoked');
  throw reused();
}

/** Rotates `refresh`; resolves with the JSON text of the answer (the same text on a replay). */
export async function refreshSession(ctx: AuthContext, refresh: string, guid: string): Promise<string> {
  if (!refreshShape.test(refresh)) {
    ctx.metrics.refreshes.inc({ outcome: 'invalid' });
    throw unauthorized();
  }
  const hash = sha256b64(refresh);
  const rec = await ctx.store.getRefresh(hash);
  if (rec === null) {
    ctx.metrics.refreshes.inc({ outcome: 'invalid' });
    throw unauthorized();
  }
  if (rec.state === 'rotated') return answerRotated(ctx, rec, refresh, guid);
  const now = ctx.now();
  if (rec.familyRevoked || rec.deviceRevoked || rec.expiresAt <= now) {
    ctx.metrics.refreshes.inc({ outcome: 'invalid' });
    throw unauthorized();
  }
  const next = newRefreshToken();
  const reply: RefreshReply = { access: mintAccess(ctx, rec.user, rec.device, rec.family), refresh: next.token, expiresIn: ctx.deps.accessTtlSec };
  const text = JSON.stringify(reply);
  const rotated = await ctx.store.rotateRefresh(hash, {
    guid,
    answer: sealAnswer(refresh, text),
    now,
    next: { hash: next.hash, expiresAt: now + REFRESH_TTL_MS },
  });
  if (rotated) {
    ctx.metrics.refreshes.inc({ outcome: 'ok' });
    return text;
  }
  // Lost a race with a concurrent refresh, revocation or expiry: answer from the stored state.
  const current = await ctx.store.getRefresh(hash);
  if (current === null || current.state !== 'rotated') {
    ctx.metrics.refreshes.inc({ outcome: 'invalid' });
    throw unauthorized();
  }
  return answerRotated(ctx, current, refresh, guid);
}
