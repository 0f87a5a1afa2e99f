/**
 * GET /profile and POST /profile {version, changes} (profile.ts holds the rules). After a
 * successful update, the notification part goes to notify in the background, and what it set
 * for a device revoked meanwhile is purged before the reply.
 */
import type { FastifyInstance } from 'fastify';
import { ProfileBody, type ProfileReply, type ProfileUpdateReply } from '../../protocol/auth-schemas.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { profileReply, purgeRevokedNamed, updateProfile } from '../profile.js';

export function profileRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);

  app.get('/profile', { onRequest }, async (req): Promise<ProfileReply> => profileReply(await ctx.store.getProfile(principal(req).user)));

  app.post<{ Body: ProfileBody }>('/profile', { onRequest, schema: { body: ProfileBody } }, async (req): Promise<ProfileUpdateReply> => {
    const p = principal(req);
    const r = await updateProfile(ctx, p.user, req.body.version, req.body.changes);
    if (r.applied !== null && r.reply.ok) {
      ctx.notify.updated(p.user, r.reply.version, r.applied);
      await purgeRevokedNamed(ctx, p.user, r.applied);
    }
    return r.reply;
  });
}
