/**
 * POST /lease {site, log} → {token, expiresIn, shard}: a lease token for one log (the fast
 * form of the caller's access, which tail verifies locally), and the shard serving the site.
 */
import type { FastifyInstance } from 'fastify';
import { LeaseBody, type LeaseReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { pickShard } from '../../protocol/shards.js';
import { newJti, signToken } from '../../protocol/token.js';
import { accessToLog, requireSite } from '../access.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';

export function leaseRoute(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: LeaseBody }>('/lease', { onRequest: bearerHook(ctx), schema: { body: LeaseBody } }, async (req): Promise<LeaseReply> => {
    const p = principal(req);
    const site = await requireSite(ctx, req.body.site);
    const access = await accessToLog(ctx, p.user, site, req.body.log);
    if (access === null) throw new DgError('FORBIDDEN', 'log: no access');
    const shard = pickShard(ctx.deps.shards().shards, site.id);
    if (shard === null) throw new DgError('UNAVAILABLE', 'no tail shard is available', { retryAfter: 5 });
    const iat = Math.floor(ctx.now() / 1000);
    // A lease never outlives the access it stands for.
    const exp = access.expiresAt === null ? iat + ctx.deps.accessTtlSec : Math.min(iat + ctx.deps.accessTtlSec, Math.floor(access.expiresAt / 1000));
    const token = signToken(ctx.deps.ring, { typ: 'lease', sub: p.user, dev: p.device, site: site.id, log: req.body.log, rights: access.rights, iat, exp, jti: newJti() });
    return { token, expiresIn: exp - iat, shard: { id: shard.id, url: shard.url } };
  });
}
