/** GET /me: the caller's user, device, the user's devices and attested identities. */
import type { FastifyInstance } from 'fastify';
import type { MeReply } from '../../protocol/auth-schemas.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';

export function meRoute(app: FastifyInstance, ctx: AuthContext): void {
  app.get('/me', { onRequest: bearerHook(ctx) }, async (req): Promise<MeReply> => {
    const p = principal(req);
    const devices = await ctx.store.listDevices(p.user);
    const identities = new Map<string, { email: string; provider: string }>();
    for (const i of await ctx.store.identitiesOf(p.user)) identities.set(`${i.email}\u0000${i.provider}`, { email: i.email, provider: i.provider });
    return {
      user: p.user,
      device: p.device,
      devices: devices.map((d) => ({
        device: d.id,
        boxKey: d.boxKey,
        ...(d.boxSig === null ? {} : { boxSig: d.boxSig }),
        name: d.name,
        createdAt: d.createdAt,
        revoked: d.revokedAt !== null,
      })),
      identities: [...identities.values()],
    };
  });
}
