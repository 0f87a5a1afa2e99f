/**
 * Sites: POST /sites (create, the caller's user owns it), GET /sites/:site (the caller's
 * rights and the key state), and POST /sites/:site/rotated {keyEpoch} (an addition to
 * PROTOCOL.md: an admin reports that the site key was rotated; keyEpoch must be the current
 * epoch + 1, and rotationRequired is cleared).
 */
import type { FastifyInstance } from 'fastify';
import { CreateSiteBody, RotatedBody, SiteParams, type CreateSiteReply, type SiteReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { isSiteAdmin, requireSite, siteRights } from '../access.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { randomId } from '../crypto.js';

export function siteRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);

  // Every field is optional, so a POST without a body creates a site too.
  const noBodyIsEmpty = async (req: { body: unknown }) => {
    if (req.body === undefined) req.body = {};
  };
  app.post<{ Body: CreateSiteBody }>('/sites', { onRequest, preValidation: noBodyIsEmpty, schema: { body: CreateSiteBody } }, async (req, reply): Promise<CreateSiteReply> => {
    const p = principal(req);
    const site = randomId(16);
    await ctx.store.createSite({ id: site, owner: p.user, name: req.body.name ?? '', createdAt: ctx.now() });
    void reply.code(201);
    return { site, owner: p.user };
  });

  app.get<{ Params: SiteParams }>('/sites/:site', { onRequest, schema: { params: SiteParams } }, async (req): Promise<SiteReply> => {
    const p = principal(req);
    const site = await requireSite(ctx, req.params.site);
    const rights = await siteRights(ctx, p.user, site);
    if (rights.length === 0) throw new DgError('FORBIDDEN', 'site: no access');
    return { site: site.id, owner: site.owner, rights, keyEpoch: site.keyEpoch, rotationRequired: site.rotationRequired };
  });

  app.post<{ Params: SiteParams; Body: RotatedBody }>(
    '/sites/:site/rotated',
    { onRequest, schema: { params: SiteParams, body: RotatedBody } },
    async (req): Promise<SiteReply> => {
      const p = principal(req);
      const site = await requireSite(ctx, req.params.site);
      if (!(await isSiteAdmin(ctx, p.user, site))) throw new DgError('FORBIDDEN', 'site: only an admin of every log may report a key rotation');
      if (!(await ctx.store.advanceKeyEpoch(site.id, req.body.keyEpoch))) {
        const now = await requireSite(ctx, site.id);
        throw new DgError('CONFLICT', `keyEpoch: must be the current key epoch + 1 (current ${now.keyEpoch})`);
      }
      const after = await requireSite(ctx, site.id);
      return { site: after.id, owner: after.owner, rights: await siteRights(ctx, p.user, after), keyEpoch: after.keyEpoch, rotationRequired: after.rotationRequired };
    },
  );
}
