/** POST /revoke {device} or {grant} → {rotate:[site]}: see revocation.ts for the fan-out. */
import type { FastifyInstance } from 'fastify';
import { RevokeBody, type RevokeReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { revokeDevice, revokeGrant } from '../revocation.js';

export function revokeRoute(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: RevokeBody }>('/revoke', { onRequest: bearerHook(ctx), schema: { body: RevokeBody } }, async (req): Promise<RevokeReply> => {
    const p = principal(req);
    const { device, grant } = req.body;
    if ((device === undefined) === (grant === undefined)) throw new DgError('BAD_REQUEST', 'body: exactly one of device or grant');
    const rotate = device !== undefined ? await revokeDevice(ctx, p, device) : await revokeGrant(ctx, p, grant as string);
    return { rotate };
  });
}
