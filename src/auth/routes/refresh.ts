/**
 * POST /refresh {refresh, guid} → {access, refresh, expiresIn}: rotation with reuse detection
 * (session.ts). The answer is sent as stored text, so a retry gets the same bytes.
 */
import type { FastifyInstance } from 'fastify';
import { RefreshBody } from '../../protocol/auth-schemas.js';
import type { AuthContext } from '../context.js';
import { sha256b64 } from '../crypto.js';
import { IP_LIMITS, KEY_LIMITS, ipLimit, keyLimit } from '../rate-limits.js';
import { refreshSession } from '../session.js';

export function refreshRoute(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: RefreshBody }>(
    '/refresh',
    {
      schema: { body: RefreshBody },
      config: ipLimit(IP_LIMITS.refresh),
      // Keyed by the token's hash: the limiter's memory never holds a usable token.
      preHandler: keyLimit(app, 'refresh', KEY_LIMITS.refresh, (req) => sha256b64((req.body as RefreshBody).refresh)),
    },
    async (req, reply) => {
      const text = await refreshSession(ctx, req.body.refresh, req.body.guid);
      return reply.type('application/json; charset=utf-8').send(text);
    },
  );
}
