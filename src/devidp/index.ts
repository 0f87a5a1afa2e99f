/**
 * A development OpenID Connect provider (`datagrove serve --dev-idp`): oidc-provider 8 in
 * the same process under /dev-idp, with a plain sign-in page (any email; a checkbox for
 * `email_verified`, on by default) and automatic consent. Auth sees it only as the OIDC
 * provider `dev` at `<public URL>/dev-idp`, like any other provider.
 *
 * It signs anyone in as any email, so it is off unless asked for and refuses to start with
 * NODE_ENV=production. State (sessions, codes, tokens) is in memory. oidc-provider is a
 * development dependency: it is loaded only when the dev IdP is switched on.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import type Provider from 'oidc-provider';
import type { Account, HelperContext } from 'oidc-provider';
import { DgError } from '../protocol/errors.js';
import { normalizeEmail } from '../protocol/email.js';
import { MemoryStore, memoryAdapter } from './memory-adapter.js';
import { errorPage, signInPage } from './pages.js';

export const DEV_IDP_PREFIX = '/dev-idp';
export const DEV_PROVIDER_ID = 'dev';
const CLIENT_ID = 'datagrove-dev';
const MAX_ACCOUNTS = 10_000;
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,190}$/;

/** The provider entry auth gets (the shape of one DATAGROVE_OIDC item). */
export interface DevProviderConfig {
  id: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  prompt: string;
}

export interface DevIdp {
  provider(): DevProviderConfig;
  /** Registers /dev-idp/* on the root app. */
  routes: FastifyPluginAsync;
}

export interface DevIdpDeps {
  /** The server's public URL, read when the first request arrives (port 0 is resolved by then). */
  publicUrl: () => string;
  /**
   * The origins of the apps the server sends a browser back to after a sign-in (its
   * `--origins`): the sign-in form's redirects end there, so the page's CSP allows them.
   */
  appOrigins?: readonly string[];
  log: FastifyBaseLogger;
  env?: NodeJS.ProcessEnv;
}

interface DevAccount {
  email: string;
  verified: boolean;
}

function trimSlash(u: string): string {
  return u.replace(/\/$/, '');
}

export function createDevIdp(deps: DevIdpDeps): DevIdp {
  if ((deps.env ?? process.env).NODE_ENV === 'production') {
    throw new DgError('BAD_REQUEST', '--dev-idp is refused with NODE_ENV=production: it signs anyone in as any email');
  }
  deps.log.warn({ path: DEV_IDP_PREFIX }, 'dev identity provider enabled: anyone can sign in as any email');
  const secret = randomBytes(32).toString('base64url');
  const accounts = new Map<string, DevAccount>();
  let provider: Promise<Provider> | undefined;

  const issuer = () => `${trimSlash(deps.publicUrl())}${DEV_IDP_PREFIX}`;

  async function build(): Promise<Provider> {
    let mod: { default: typeof Provider };
    try {
      mod = (await import('oidc-provider')) as { default: typeof Provider };
    } catch (err) {
      throw new DgError('UNAVAILABLE', '--dev-idp needs the oidc-provider package (a development dependency): run npm install', { cause: err });
    }
    const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const p = new mod.default(issuer(), {
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: secret,
          redirect_uris: [`${trimSlash(deps.publicUrl())}/auth/v1/oidc/callback`],
          response_types: ['code'],
          grant_types: ['authorization_code'],
          token_endpoint_auth_method: 'client_secret_post',
        },
      ],
      adapter: memoryAdapter(new MemoryStore()),
      jwks: { keys: [{ ...jwk, kid: `dev-${randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' }] },
      cookies: { keys: [randomBytes(32).toString('base64url')], long: { httpOnly: true, sameSite: 'lax' }, short: { httpOnly: true, sameSite: 'lax' } },
      claims: { openid: ['sub'], email: ['email', 'email_verified'] },
      scopes: ['openid', 'email'],
      features: { devInteractions: { enabled: false } },
      // Seconds; short, since nothing here outlives a sign-in for long.
      ttl: { AuthorizationCode: 60, IdToken: 600, AccessToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `${DEV_IDP_PREFIX}/interaction/${interaction.uid}` },
      findAccount: async (_ctx: unknown, id: string): Promise<Account | undefined> => {
        const a = accounts.get(id);
        if (a === undefined) return undefined;
        return { accountId: id, claims: async () => ({ sub: id, email: a.email, email_verified: a.verified }) };
      },
      // Automatic consent: the one client is this server itself.
      loadExistingGrant: async (ctx: HelperContext) => {
        const clientId = ctx.oidc.client?.clientId;
        const accountId = ctx.oidc.session?.accountId;
        if (clientId === undefined || accountId === undefined) return undefined;
        const known = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(clientId);
        if (known !== undefined) {
          const g = await ctx.oidc.provider.Grant.find(known);
          if (g !== undefined) return g;
        }
        const grant = new ctx.oidc.provider.Grant({ clientId, accountId });
        grant.addOIDCScope('openid email');
        await grant.save();
        return grant;
      },
      renderError: async (ctx: HelperContext, out: { error?: string; error_description?: string }) => {
        ctx.type = 'html';
        ctx.body = errorPage(`${out.error ?? 'error'}: ${out.error_description ?? ''}`);
      },
    });
    deps.log.info({ issuer: issuer() }, 'dev identity provider started');
    return p;
  }

  const instance = (): Promise<Provider> => {
    provider ??= build().catch((err: unknown) => {
      provider = undefined;
      throw err;
    });
    return provider;
  };

  function accountFor(email: string, verified: boolean): string {
    const id = createHash('sha256').update(`${email}\u0000${verified ? 1 : 0}`).digest('base64url').slice(0, 22);
    if (!accounts.has(id) && accounts.size >= MAX_ACCOUNTS) {
      const oldest = accounts.keys().next().value;
      if (oldest !== undefined) accounts.delete(oldest);
    }
    accounts.set(id, { email, verified });
    return id;
  }

  /** oidc-provider sees paths without the prefix and finds its mount path through originalUrl. */
  function forward(p: Provider, req: IncomingMessage, res: ServerResponse): void {
    const original = req.url ?? '/';
    Object.assign(req, { originalUrl: original });
    req.url = original.slice(DEV_IDP_PREFIX.length) || '/';
    p.callback()(req, res);
  }

  // Browsers hold the redirects that follow a form post to `form-action` too: the sign-in
  // form's post ends at the OIDC callback (the public URL) and from there at the app.
  const formTargets = () => ["'self'", new URL(deps.publicUrl()).origin, ...(deps.appOrigins ?? [])].join(' ');
  const html = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action ${formTargets()}` });
    res.end(body);
  };

  const routes: FastifyPluginAsync = async (app) => {
    await app.register(async (scope) => {
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(String(body))));
      });

      scope.get<{ Params: { uid: string } }>(`${DEV_IDP_PREFIX}/interaction/:uid`, async (req, reply) => {
        const p = await instance();
        reply.hijack();
        try {
          const details = await p.interactionDetails(req.raw, reply.raw);
          html(reply.raw, 200, signInPage(`${DEV_IDP_PREFIX}/interaction/${encodeURIComponent(details.uid)}/login`, String(details.params.client_id ?? CLIENT_ID)));
        } catch {
          html(reply.raw, 400, errorPage('This sign-in expired or was already used.'));
        }
      });

      scope.post<{ Params: { uid: string }; Body: Record<string, string> | undefined }>(`${DEV_IDP_PREFIX}/interaction/:uid/login`, async (req, reply) => {
        const p = await instance();
        const email = normalizeEmail(String(req.body?.email ?? ''));
        const verified = req.body?.email_verified === 'yes';
        reply.hijack();
        try {
          const details = await p.interactionDetails(req.raw, reply.raw);
          if (!EMAIL_RE.test(email)) {
            html(reply.raw, 400, signInPage(`${DEV_IDP_PREFIX}/interaction/${encodeURIComponent(details.uid)}/login`, CLIENT_ID, `'${email}' is not an email address.`));
            return;
          }
          await p.interactionFinished(req.raw, reply.raw, { login: { accountId: accountFor(email, verified) } }, { mergeWithLastSubmission: false });
        } catch {
          html(reply.raw, 400, errorPage('This sign-in expired or was already used.'));
        }
      });
    });

    await app.register(async (scope) => {
      // Leave request bodies unread: oidc-provider parses them itself.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
      scope.all(`${DEV_IDP_PREFIX}/*`, async (req, reply) => {
        const p = await instance();
        reply.hijack();
        forward(p, req.raw, reply.raw);
      });
    });
  };

  return {
    provider: () => ({ id: DEV_PROVIDER_ID, issuer: issuer(), clientId: CLIENT_ID, clientSecret: secret, prompt: 'login' }),
    routes,
  };
}
