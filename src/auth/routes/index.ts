/**
 * The auth HTTP API (PROTOCOL.md "Auth API"), a fastify plugin mounted under /auth/v1. Bodies
 * and params are validated by TypeBox's compiled checkers (no coercion); errors reach the
 * client through the server's error handler as `{error:{code, message}}`.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { AuthContext } from '../context.js';
import { typeboxValidatorCompiler } from '../validation.js';
import { challengeRoute } from './challenge.js';
import { claimRoutes } from './claims.js';
import { deviceRoutes } from './devices.js';
import { envelopeRoutes } from './envelopes.js';
import { grantRoutes } from './grants.js';
import { keyRoutes } from './keys.js';
import { leaseRoute } from './lease.js';
import { meRoute } from './me.js';
import { oidcRoutes } from './oidc.js';
import { profileRoutes } from './profile.js';
import { publicRoutes } from './public.js';
import { refreshRoute } from './refresh.js';
import { revokeRoute } from './revoke.js';
import { sessionRoutes } from './session.js';
import { sessionListRoutes } from './sessions.js';
import { siteRoutes } from './sites.js';

export function authRoutes(ctx: AuthContext): FastifyPluginAsync {
  return async (app) => {
    app.setValidatorCompiler(typeboxValidatorCompiler);
    // A store that cannot be used (a full disk, a database away) fails every request alike:
    // the server's error handler answers 503; its cause is logged here, once per 10 s.
    app.addHook('onError', async (req, _reply, err) => {
      ctx.unavailable.report(err, { route: req.routeOptions.url });
    });
    challengeRoute(app, ctx);
    sessionRoutes(app, ctx);
    refreshRoute(app, ctx);
    sessionListRoutes(app, ctx);
    meRoute(app, ctx);
    siteRoutes(app, ctx);
    grantRoutes(app, ctx);
    leaseRoute(app, ctx);
    revokeRoute(app, ctx);
    publicRoutes(app, ctx);
    oidcRoutes(app, ctx);
    deviceRoutes(app, ctx);
    profileRoutes(app, ctx);
    claimRoutes(app, ctx);
    envelopeRoutes(app, ctx);
    keyRoutes(app, ctx);
  };
}
