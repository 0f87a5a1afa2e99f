/**
 * POST /declare {grant} → 201 {hash}: verify a grant and store it (so it can serve as a proof
 * or be joined by hash). POST /join {site, grant} → {site, logs, rights, expiresAt}: verify a
 * grant naming the caller and record the access it gives.
 */
import type { FastifyInstance } from 'fastify';
import { DeclareBody, JoinBody, type DeclareReply, type JoinReplyBody } from '../../protocol/auth-schemas.js';
import { declareGrant, joinGrant } from '../access.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';

export function grantRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);
  const preHandler = keyLimit(app, 'grants', KEY_LIMITS.grants, (req) => principal(req).device);

  app.post<{ Body: DeclareBody }>('/declare', { onRequest, preHandler, schema: { body: DeclareBody } }, async (req, reply): Promise<DeclareReply> => {
    principal(req);
    const hash = await declareGrant(ctx, req.body.grant);
    void reply.code(201);
    return { hash };
  });

  app.post<{ Body: JoinBody }>('/join', { onRequest, preHandler, schema: { body: JoinBody } }, async (req): Promise<JoinReplyBody> => {
    const p = principal(req);
    return joinGrant(ctx, { user: p.user, device: p.device, grant: req.body.grant, site: req.body.site });
  });
}
