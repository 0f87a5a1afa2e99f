/**
 * The signed-in sessions (refresh families) of the caller's user: POST /logout → 204 ends the
 * caller's own; GET /sessions → the live ones on the user's live devices, newest first;
 * DELETE /sessions/:id → 204 ends one of them. Ending a session revokes its refresh and
 * access tokens and closes its live tail sessions (4403). Another user's session, or one
 * already ended, is NOT_FOUND: the answer never tells whether the id exists elsewhere.
 */
import type { FastifyInstance } from 'fastify';
import { MAX_SESSIONS_LISTED, SessionParams, type SessionsReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';
import { endSession, revokeFamily } from '../session.js';

export function sessionListRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);
  const preHandler = keyLimit(app, 'sessions', KEY_LIMITS.sessions, (req) => principal(req).device);

  app.post('/logout', { onRequest, preHandler }, async (req, reply) => {
    // A token whose family is already revoked never gets here (401 from the bearer hook).
    await revokeFamily(ctx, principal(req).family);
    return reply.code(204).send();
  });

  app.get('/sessions', { onRequest, preHandler }, async (req): Promise<SessionsReply> => {
    const p = principal(req);
    const families = await ctx.store.liveFamilies(p.user, ctx.now(), MAX_SESSIONS_LISTED);
    return { sessions: families.map((f) => ({ id: f.id, device: f.device, createdAt: f.createdAt, current: f.id === p.family })) };
  });

  app.delete<{ Params: SessionParams }>('/sessions/:id', { onRequest, preHandler, schema: { params: SessionParams } }, async (req, reply) => {
    if (!(await endSession(ctx, principal(req).user, req.params.id))) throw new DgError('NOT_FOUND', 'id: no live session of this user has this id');
    return reply.code(204).send();
  });
}
