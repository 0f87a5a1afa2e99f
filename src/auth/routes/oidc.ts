/**
 * OpenID Connect login (docs/protocol.md "OpenID Connect login"; the flow is in
 * oidc/login.ts): POST /oidc/start, GET /oidc/callback (the provider sends the browser
 * here), POST /oidc/complete.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { OidcCallbackQuery, OidcCompleteBody, OidcStartBody, type OidcCompleteReply, type OidcStartReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import type { AuthContext } from '../context.js';
import { completeLogin, handleCallback, startLogin } from '../oidc/login.js';
import { redirectWithState } from '../oidc/redirect.js';
import { IP_LIMITS, KEY_LIMITS, ipLimit, keyLimit } from '../rate-limits.js';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(reply: FastifyReply, title: string, text: string): FastifyReply {
  const html = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`;
  return reply
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
    .type('text/html; charset=utf-8')
    .send(html);
}

export function oidcRoutes(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: OidcStartBody }>(
    '/oidc/start',
    {
      schema: { body: OidcStartBody },
      config: ipLimit(IP_LIMITS.oidcStart),
      preHandler: keyLimit(app, 'oidc-start', KEY_LIMITS.oidcStart, (req) => (req.body as OidcStartBody).device),
    },
    async (req): Promise<OidcStartReply> => startLogin(ctx, req.body),
  );

  app.get<{ Querystring: OidcCallbackQuery }>(
    '/oidc/callback',
    { schema: { querystring: OidcCallbackQuery }, config: ipLimit(IP_LIMITS.oidcCallback) },
    async (req, reply) => {
      const raw = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
      const r = await handleCallback(ctx, req.query.state, raw);
      if (r.redirect !== null) {
        return reply.header('cache-control', 'no-store').redirect(redirectWithState(r.redirect, r.state, r.outcome.ok ? undefined : r.outcome.code), 303);
      }
      if (!r.outcome.ok) throw new DgError(r.outcome.code, r.outcome.message);
      return page(reply, 'Signed in', `Signed in as ${r.outcome.email}. Return to the app to finish.`);
    },
  );

  app.post<{ Body: OidcCompleteBody }>(
    '/oidc/complete',
    { schema: { body: OidcCompleteBody }, config: ipLimit(IP_LIMITS.oidcComplete) },
    async (req): Promise<OidcCompleteReply> => completeLogin(ctx, req.body),
  );
}
