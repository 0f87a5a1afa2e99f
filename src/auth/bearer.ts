/**
 * Bearer authentication of auth's own routes: the access token must verify (signature, kid,
 * expiry, type) and its device and refresh family must not be revoked. Every refusal is the
 * same UNAUTHORIZED on the wire; the reason only feeds the metrics.
 */
import type { FastifyRequest } from 'fastify';
import { DgError } from '../protocol/errors.js';
import { verifyToken, type AccessClaims } from '../protocol/token.js';
import type { AuthContext } from './context.js';

export interface Principal {
  user: string;
  device: string;
  family: string;
}

const principals = new WeakMap<FastifyRequest, Principal>();

const MAX_AUTHORIZATION = 4096;

export function checkAccessToken(ctx: AuthContext, token: string): Principal | null {
  const r = verifyToken<AccessClaims>(ctx.deps.ring, token, 'access', Math.floor(ctx.now() / 1000));
  if (!r.ok) {
    if (r.reason === 'unknown-kid') ctx.unknownKey();
    ctx.metrics.tokenChecks.inc({ outcome: r.reason });
    return null;
  }
  const c = r.claims;
  if (typeof c.dev !== 'string' || typeof c.fam !== 'string') {
    ctx.metrics.tokenChecks.inc({ outcome: 'malformed' });
    return null;
  }
  if (ctx.revocations.isRevoked(c.dev, c.fam)) {
    ctx.metrics.tokenChecks.inc({ outcome: 'revoked' });
    return null;
  }
  ctx.metrics.tokenChecks.inc({ outcome: 'ok' });
  return { user: c.sub, device: c.dev, family: c.fam };
}

/** The onRequest hook of Bearer routes: refuses, or records the caller for `principal()`. */
export function bearerHook(ctx: AuthContext) {
  return async (req: FastifyRequest): Promise<void> => {
    const header = req.headers.authorization;
    const m = typeof header === 'string' && header.length <= MAX_AUTHORIZATION ? /^Bearer ([A-Za-z0-9._-]+)$/i.exec(header) : null;
    if (m === null || m[1] === undefined) {
      ctx.metrics.tokenChecks.inc({ outcome: 'missing' });
      throw new DgError('UNAUTHORIZED', 'authorization: a Bearer access token is required');
    }
    const p = checkAccessToken(ctx, m[1]);
    if (p === null) throw new DgError('UNAUTHORIZED', 'authorization: access token is invalid, expired or revoked');
    principals.set(req, p);
  };
}

/** The authenticated caller of a Bearer route. */
export function principal(req: FastifyRequest): Principal {
  const p = principals.get(req);
  if (p === undefined) throw new DgError('INTERNAL', 'internal error', { cause: new Error('route without bearerHook') });
  return p;
}
