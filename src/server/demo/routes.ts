/**
 * The demo web app of the monolith: a chat page at `/`, its script and stylesheet, and the
 * browser SDK bundle that `npm run build:client` writes to dist/client. The page talks to
 * this server through the SDK only, as any app would.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { sendError } from '../http-errors.js';
import { DEMO_CSS, DEMO_HTML } from './page.js';
import { DEMO_SCRIPT } from './script.js';

/** The SDK bundle. This module sits three levels below the package root in src/ and in dist/ alike. */
export const SDK_BUNDLE = fileURLToPath(new URL('../../../dist/client/datagrove-client.browser.js', import.meta.url));

export interface DemoOptions {
  /** The tail URLs of the shard map: the page's WebSockets go there, so its CSP allows them. */
  tailUrls: () => string[];
}

/** A WebSocket origin as it may stand in a header (the URLs come from validated configuration). */
const WS_ORIGIN = /^wss?:\/\/[A-Za-z0-9.:[\]-]+$/;

/**
 * Nothing but this server's own files: no inline code, no other host, no framing. A tail
 * URL of the shard map may name another host than the page's (the public URL), so it is
 * listed by its exact origin.
 */
function contentSecurityPolicy(tailUrls: string[]): string {
  const ws = [...new Set(tailUrls.map((u) => new URL(u).origin))].filter((o) => WS_ORIGIN.test(o));
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${ws.join(' ')}`.trimEnd(),
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export function demoRoutes(opts: DemoOptions) {
  return async (app: FastifyInstance): Promise<void> => {
    // The files change with the server (and the bundle with each build) under the same URLs.
    const send = (reply: FastifyReply, type: string, body: string | Buffer) =>
      reply
        .header('content-type', type)
        .header('content-security-policy', contentSecurityPolicy(opts.tailUrls()))
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(body);
    app.get('/', async (_req, reply) => send(reply, 'text/html; charset=utf-8', DEMO_HTML));
    app.get('/demo/app.js', async (_req, reply) => send(reply, 'text/javascript; charset=utf-8', DEMO_SCRIPT));
    app.get('/demo/app.css', async (_req, reply) => send(reply, 'text/css; charset=utf-8', DEMO_CSS));
    app.get('/demo/datagrove-client.js', async (_req, reply) => {
      // Read at each request: a bundle built after the server started is served at once.
      const bundle = await readFile(SDK_BUNDLE).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (bundle === null) return sendError(reply, 'NOT_FOUND', 'the SDK bundle is not built: run npm run build:client');
      return send(reply, 'text/javascript; charset=utf-8', bundle);
    });
  };
}
