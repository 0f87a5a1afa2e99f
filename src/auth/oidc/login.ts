/**
 * OpenID Connect login of a device (code flow with PKCE S256, state and nonce):
 *
 * 1. start: the device proves its key (challenge signature, nonce single use); the server
 *    stores a login (state, PKCE verifier, ID token nonce, device, redirect) for 10 minutes
 *    and answers the provider's authorization URL.
 * 2. callback: the provider sends the browser back with `code` and `state`. The state is
 *    taken once (a replayed or unknown state is refused), the code is exchanged, and the
 *    email must be verified (`email_verified === true`). The browser gets a confirmation
 *    code (on a page, or in the redirect to the app); the server keeps the email and the
 *    code's hash 10 minutes for the device. Nothing is linked yet.
 * 3. complete: the same device proves its key again and presents the confirmation code; only
 *    then is the email linked to a user (a new user, or the device joins the email's user),
 *    the identity attestation signed, and a session (as /login gives) issued, once. So a
 *    login URL sent to someone else gives its starter nothing: the code stays with the
 *    browser that signed in (confirmation.ts).
 */
import * as client from 'openid-client';
import { SUBJECTS, type UserEvent } from '../../protocol/bus-messages.js';
import { DgError, type ErrorCode } from '../../protocol/errors.js';
import { OIDC_STATE_PATTERN, type OidcCompleteBody, type OidcCompleteReply, type OidcStartBody, type OidcStartReply } from '../../protocol/auth-schemas.js';
import { normalizeEmail } from '../../protocol/email.js';
import { signIdentityAttestation } from '../attestation.js';
import type { AuthContext } from '../context.js';
import { randomId } from '../crypto.js';
import { checkBoxSig, checkDeviceSignature, consumeNonce } from '../proof.js';
import { issueSession } from '../session.js';
import type { OidcLoginRecord, OidcOutcome } from '../store.js';
import { scopesOf } from './config.js';
import { confirmationMatches, newConfirmationCode } from './confirmation.js';
import { checkRedirect } from './redirect.js';

/** How long a started login waits for its callback, and a finished one for its device. */
export const OIDC_LOGIN_TTL_MS = 10 * 60_000;

const STATE_RE = new RegExp(OIDC_STATE_PATTERN);

export function callbackUrl(ctx: AuthContext): string {
  return `${ctx.deps.publicUrl().replace(/\/$/, '')}/auth/v1/oidc/callback`;
}

/** `proven` runs once the device proved its key (the route's per-device limit). */
export async function startLogin(ctx: AuthContext, b: OidcStartBody, proven: () => Promise<void>): Promise<OidcStartReply> {
  const count = (outcome: string) => ctx.metrics.oidcLogins.inc({ step: 'start', outcome });
  const spec = ctx.providers.spec(b.provider);
  checkDeviceSignature(b, count);
  const device = await ctx.store.getDevice(b.device);
  if (device !== null && device.revokedAt !== null) {
    count('revoked');
    throw new DgError('UNAUTHORIZED', 'device: revoked');
  }
  if (device === null && b.boxKey === undefined) throw new DgError('BAD_REQUEST', 'boxKey: required for a device new to the server');
  if (b.boxSig !== undefined) {
    if (b.boxKey === undefined) throw new DgError('BAD_REQUEST', 'boxSig: sent without boxKey');
    checkBoxSig(b.device, b.boxKey, b.boxSig);
  }
  const redirect = b.redirect === undefined ? null : checkRedirect(b.redirect, ctx.deps.origins, ctx.deps.publicUrl());
  const config = await ctx.providers.configuration(spec);
  await consumeNonce(ctx, b, count);
  await proven();

  const state = randomId(32);
  const verifier = client.randomPKCECodeVerifier();
  const oidcNonce = randomId(32);
  const now = ctx.now();
  await ctx.store.putOidcLogin({
    state,
    provider: spec.id,
    device: b.device,
    boxKey: b.boxKey ?? null,
    boxSig: b.boxSig ?? null,
    name: b.name ?? '',
    verifier,
    oidcNonce,
    redirect,
    createdAt: now,
    expiresAt: now + OIDC_LOGIN_TTL_MS,
  });
  const params: Record<string, string> = {
    redirect_uri: callbackUrl(ctx),
    scope: scopesOf(spec),
    state,
    nonce: oidcNonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  };
  if (spec.prompt !== undefined) params.prompt = spec.prompt;
  count('ok');
  return { url: client.buildAuthorizationUrl(config, params).href, state };
}

/** What an openid-client failure means for the caller; details go to the log only. */
function exchangeError(err: unknown): DgError {
  if (err instanceof DgError) return err;
  if (err instanceof client.AuthorizationResponseError) return new DgError('FORBIDDEN', `provider: the sign-in was refused (${err.error})`, { cause: err });
  if (err instanceof client.ResponseBodyError) return new DgError('UNAUTHORIZED', `code: the provider refused it (${err.error})`, { cause: err });
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError' || (err instanceof TypeError && /fetch/i.test(err.message))) {
    return new DgError('UNAVAILABLE', 'provider: unreachable during the code exchange; sign in again', { cause: err });
  }
  return new DgError('UNAUTHORIZED', "provider: its answer did not validate", { cause: err });
}

/** Exchanges the code and returns the verified email (else FORBIDDEN). */
async function verifiedEmail(ctx: AuthContext, login: OidcLoginRecord, rawQuery: string): Promise<string> {
  const spec = ctx.providers.spec(login.provider);
  const config = await ctx.providers.configuration(spec);
  const current = new URL(callbackUrl(ctx));
  current.search = rawQuery;
  const tokens = await client.authorizationCodeGrant(config, current, {
    pkceCodeVerifier: login.verifier,
    expectedState: login.state,
    expectedNonce: login.oidcNonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  if (claims === undefined) throw new DgError('UNAUTHORIZED', 'provider: no ID token');
  let email: unknown = claims.email;
  let verified: unknown = claims.email_verified;
  // Providers that keep the ID token small put the email claims in userinfo only.
  if (typeof email !== 'string' || verified === undefined) {
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    email = info.email;
    verified = info.email_verified;
  }
  if (typeof email !== 'string' || email.trim() === '' || email.length > 254 || email.includes('\u0000')) throw new DgError('FORBIDDEN', 'email: the provider gave no email');
  if (verified !== true) throw new DgError('FORBIDDEN', 'email: not verified by the provider');
  return normalizeEmail(email);
}

/** Links the verified email and the device, signs the attestation, tells the user's sessions. */
async function linkLogin(ctx: AuthContext, login: OidcLoginRecord, email: string): Promise<{ user: string; identity: string; newDevice: boolean }> {
  const known = await ctx.store.getDevice(login.device);
  const box = known?.boxKey ?? login.boxKey ?? undefined;
  const identity = await signIdentityAttestation(ctx, { device: login.device, email, provider: login.provider, ...(box === undefined ? {} : { box }) });
  const linked = await ctx.store.linkIdentity({
    email,
    provider: login.provider,
    device: { id: login.device, boxKey: login.boxKey, boxSig: login.boxSig, name: login.name },
    newUser: randomId(16),
    attestation: identity,
    now: ctx.now(),
  });
  if (!linked.ok) {
    const why = {
      'device-revoked': 'device: revoked',
      'device-of-another-user': 'device: belongs to another user than this email',
      'box-key-required': 'boxKey: required for a device new to the server',
    }[linked.reason];
    throw new DgError(linked.reason === 'box-key-required' ? 'BAD_REQUEST' : 'FORBIDDEN', why);
  }
  if (linked.newDevice && !linked.newUser) {
    const device = await ctx.store.getDevice(login.device);
    const event: UserEvent = { user: linked.user, event: { ev: 'device', device: login.device, name: device?.name ?? login.name, identity } };
    try {
      ctx.deps.bus.publish(SUBJECTS.tailUser, event);
    } catch (err) {
      ctx.deps.log.warn({ err }, 'could not publish a device event');
    }
  }
  ctx.deps.log.info({ user: linked.user, device: login.device, provider: login.provider, newUser: linked.newUser, newDevice: linked.newDevice }, 'OIDC login');
  return { user: linked.user, identity, newDevice: linked.newDevice };
}

export interface CallbackResult {
  state: string;
  redirect: string | null;
  /** The verified email and the confirmation code for the browser, or why the sign-in failed. */
  outcome: { ok: true; email: string; code: string } | { ok: false; code: ErrorCode; message: string };
}

/** Takes the state once, exchanges the code, and stores the verified email with a confirmation code's hash. */
export async function handleCallback(ctx: AuthContext, state: string | undefined, rawQuery: string): Promise<CallbackResult> {
  const count = (outcome: string) => ctx.metrics.oidcLogins.inc({ step: 'callback', outcome });
  // A state this server never makes (e.g. one with U+0000, which PostgreSQL cannot compare) is unknown.
  const login = state === undefined || !STATE_RE.test(state) ? null : await ctx.store.takeOidcCallback(state, ctx.now());
  if (login === null) {
    count('bad-state');
    throw new DgError('UNAUTHORIZED', 'state: unknown, expired or already used; sign in again');
  }
  let stored: OidcOutcome;
  let result: CallbackResult['outcome'];
  try {
    const email = await verifiedEmail(ctx, login, rawQuery);
    const { code, hash } = newConfirmationCode();
    stored = { ok: true, email, confirmation: hash };
    result = { ok: true, email, code };
  } catch (err) {
    const e = exchangeError(err);
    if (e.code === 'INTERNAL' || e.cause !== undefined) ctx.deps.log.warn({ err: e.cause ?? e, provider: login.provider }, 'OIDC callback refused');
    const code = (['FORBIDDEN', 'UNAUTHORIZED', 'UNAVAILABLE', 'BAD_REQUEST'] as ErrorCode[]).includes(e.code) ? e.code : 'UNAUTHORIZED';
    stored = { ok: false, code: code as 'FORBIDDEN', message: e.message };
    result = stored;
  }
  await ctx.store.finishOidcLogin(login.state, stored, ctx.now() + OIDC_LOGIN_TTL_MS);
  count(stored.ok ? 'ok' : stored.code.toLowerCase());
  return { state: login.state, redirect: login.redirect, outcome: result };
}

/** `proven` runs once the device that started the login proved its key, before the code is checked (the route's tries per login). */
export async function completeLogin(ctx: AuthContext, b: OidcCompleteBody, proven: () => Promise<void>): Promise<OidcCompleteReply> {
  const count = (outcome: string) => ctx.metrics.oidcLogins.inc({ step: 'complete', outcome });
  const login = await ctx.store.getOidcLogin(b.state);
  if (login === null || login.expiresAt <= ctx.now()) {
    count('bad-state');
    throw new DgError('UNAUTHORIZED', 'state: unknown, expired or already collected');
  }
  const proof = { device: login.device, nonce: b.nonce, sig: b.sig };
  checkDeviceSignature(proof, count);
  if (login.phase !== 'done') throw new DgError('CONFLICT', 'state: the sign-in at the provider has not finished yet');
  await consumeNonce(ctx, proof, count);
  await proven();
  const pending = login.outcome;
  // A wrong code leaves the login in place for another try (the route limits tries per login).
  if (pending !== null && pending.ok && !('confirmation' in pending && confirmationMatches(b.code, pending.confirmation))) {
    count('bad-code');
    throw new DgError('UNAUTHORIZED', 'code: not the confirmation code of this sign-in');
  }
  const outcome = await ctx.store.takeOidcOutcome(b.state, login.device, ctx.now());
  if (outcome === null) {
    count('bad-state');
    throw new DgError('UNAUTHORIZED', 'state: unknown, expired or already collected');
  }
  if (!outcome.ok) {
    count(outcome.code.toLowerCase());
    throw new DgError(outcome.code, outcome.message);
  }
  const linked = await linkLogin(ctx, login, outcome.email);
  const device = await ctx.store.getDevice(login.device);
  if (device === null || device.revokedAt !== null || device.user !== linked.user) throw new DgError('UNAUTHORIZED', 'device: unknown or revoked');
  const session = await issueSession(ctx, linked.user, login.device);
  count('ok');
  return { ...session, identity: linked.identity, newDevice: linked.newDevice };
}
