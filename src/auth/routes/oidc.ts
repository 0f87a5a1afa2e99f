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

function page(reply: FastifyReply, title: string, paragraphs: string[], code?: string): FastifyReply {
  const body = paragraphs.map((t) => `<p>${escapeHtml(t)}</p>`);
  if (code !== undefined) {
    body.splice(1, 0, `<p style="font-size:2rem;font-family:ui-monospace,monospace;letter-spacing:.1em"><strong id="code">${escapeHtml(code)}</strong></p>`);
  }
  const html = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><meta name="referrer" content="no-referrer"><title>${escapeHtml(title)}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem"><h1>${escapeHtml(title)}</h1>${body.join('')}</body></html>`;
  return reply
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
    .type('text/html; charset=utf-8')
    .send(html);
}

export function oidcRoutes(app: FastifyInstance, ctx: AuthContext): void {
  // The per-device and per-login counts start once the device proved its key (a fresh nonce
  // signed): device ids and states are not secrets, and requests anyone can make with a bad
  // signature must not spend a device's sign-ins or a login's tries at its code.
  const starts = keyLimit(app, 'oidc-start', KEY_LIMITS.oidcStart, (req) => (req.body as OidcStartBody).device);
  const tries = keyLimit(app, 'oidc-complete', KEY_LIMITS.oidcComplete, (req) => (req.body as OidcCompleteBody).state);

  app.post<{ Body: OidcStartBody }>(
    '/oidc/start',
    { schema: { body: OidcStartBody }, config: ipLimit(IP_LIMITS.oidcStart) },
    async (req): Promise<OidcStartReply> => startLogin(ctx, req.body, () => starts(req)),
  );

  app.get<{ Querystring: OidcCallbackQuery }>(
    '/oidc/callback',
    // No HEAD twin: a HEAD (a link preview, a prefetch) would use up the login's state and code.
    { schema: { querystring: OidcCallbackQuery }, config: ipLimit(IP_LIMITS.oidcCallback), exposeHeadRoute: false },
    async (req, reply) => {
      const raw = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
      const r = await handleCallback(ctx, req.query.state, raw);
      if (r.redirect !== null) {
        const to = r.outcome.ok ? redirectWithState(r.redirect, r.state, { code: r.outcome.code }) : redirectWithState(r.redirect, r.state, { error: r.outcome.code });
        return reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(to, 303);
      }
      if (!r.outcome.ok) throw new DgError(r.outcome.code, r.outcome.message);
      return page(
        reply,
        'Signed in',
        [
          `Signed in as ${r.outcome.email}. To finish, enter this code in the app where you started signing in:`,
          'Enter it only into an app you opened yourself, on your own device. Nobody needs it otherwise: if you did not start signing in just now, close this page and nothing happens.',
        ],
        r.outcome.code,
      );
    },
  );

  app.post<{ Body: OidcCompleteBody }>(
    '/oidc/complete',
    { schema: { body: OidcCompleteBody }, config: ipLimit(IP_LIMITS.oidcComplete) },
    // Tries per login bound the guessing of its confirmation code.
    async (req): Promise<OidcCompleteReply> => completeLogin(ctx, req.body, () => tries(req)),
  );
}
