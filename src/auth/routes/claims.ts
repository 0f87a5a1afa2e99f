/**
 * POST /claim {namespace, name} → {id}: a stable integer, unique in the namespace, for the
 * first user to claim the name (namespaces and names compare case-insensitively); the same user gets the
 * same id again; another user gets 409 TAKEN. A user holds at most MAX_CLAIMS_PER_USER names.
 */
import type { FastifyInstance } from 'fastify';
import { ClaimBody, type ClaimReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';

export const MAX_CLAIMS_PER_USER = 1000;

export function claimRoutes(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: ClaimBody }>(
    '/claim',
    { onRequest: bearerHook(ctx), schema: { body: ClaimBody }, preHandler: keyLimit(app, 'claim', KEY_LIMITS.claims, (req) => principal(req).user) },
    async (req): Promise<ClaimReply> => {
      const p = principal(req);
      const r = await ctx.store.claim({ namespace: req.body.namespace.toLowerCase(), name: req.body.name.toLowerCase(), user: p.user, now: ctx.now(), maxPerUser: MAX_CLAIMS_PER_USER });
      if (r.ok) return { id: r.id };
      if (r.reason === 'taken') throw new DgError('TAKEN', 'name: claimed by another user');
      throw new DgError('TOO_LARGE', `name: a user holds at most ${MAX_CLAIMS_PER_USER} claims`);
    },
  );
}
