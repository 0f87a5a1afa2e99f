/**
 * Site keys: made with the site (epoch 1), shared with a user or an email together with a
 * grant, rotated to a new epoch for the remaining members only, and accepted from envelopes.
 *
 * Who receives a site key: devices whose certificate verifies under their user's key chain
 * (directory.ts), and, for emails, devices whose identity attestation verifies under a
 * server key that is not revoked and carries their box key. Never anyone else.
 *
 * Whom a device accepts a site key from: a certified device of its own user, or a certified
 * device of the site's owner or of a user the server lists as an admin of the site
 * (GET /sites/:site/members). A key once held for an epoch is never replaced, and a key
 * is taken only up to the site's key epoch on the server (key-admission.ts).
 *
 * Rotation claims the epoch first (POST /sites/:site/rotated, a compare-and-set), then
 * saves the key, then sends it: of two admins rotating at once only one distributes, so
 * every member ends up with the same key for an epoch.
 */
import { normalizeEmail } from '../../protocol/email.js';
import { DgError } from '../../protocol/errors.js';
import { LOG_NAME_RE, RIGHTS, SITE_ID_RE, USER_ID_PATTERN, type Right } from '../../protocol/ids.js';
import { b64urlDecode, b64urlEncode, randomBytes } from '../bytes.js';
import { readGrant } from '../grants.js';
import { attestedDevices, type Recipient, type VerifiedUser } from './directory.js';
import { MAX_KEYS_PER_ENVELOPE, sealEnvelope, type EnvelopeBody } from './envelope.js';
import type { SiteMembers } from './key-api.js';
import { judgeKeys } from './key-admission.js';
import type { KeyContext } from './key-context.js';
import { SiteKeyring } from './site-keyring.js';

const USER_ID_RE = new RegExp(USER_ID_PATTERN);
/** What a grant's `email:` subject takes (grants.ts), once normalized. */
const EMAIL_RE = /^[^\s@]{1,200}@[^\s@]{1,64}$/;

export interface ShareSpec {
  logs?: string[];
  rights: Right[];
  /** Expiry of the grant, seconds since the epoch. */
  exp?: number;
}

export interface Delivery {
  /** Devices the keys were sent to. */
  devices: string[];
  /** Users or emails that could not be reached (no key, a broken chain, …), with why. */
  skipped: { who: string; reason: string }[];
}

/** A new site owned by the user, with its epoch 1 key made and saved before it is returned. */
export async function createEncryptedSite(ctx: KeyContext, name?: string): Promise<{ site: string; owner: string }> {
  const r = await ctx.client.createSite(name);
  ctx.ring.add(r.site, 1, randomBytes(32));
  await ctx.saveRing();
  return r;
}

/** A user's certified devices, or why there are none (a broken chain, …); NOT_FOUND (no such user) is thrown. */
async function lookUpUser(ctx: KeyContext, user: string): Promise<VerifiedUser | string> {
  try {
    return await ctx.verified({ user });
  } catch (err) {
    if (err instanceof DgError && err.code === 'NOT_FOUND') throw err;
    return err instanceof Error ? err.message : String(err);
  }
}

/** Adds the user's certified devices to `out` (`found`: looked up already). */
async function devicesOfUser(ctx: KeyContext, user: string, out: Map<string, Recipient>, d: Delivery, found?: VerifiedUser | string): Promise<void> {
  const v = found ?? (await lookUpUser(ctx, user).catch((err: unknown) => (err instanceof Error ? err.message : String(err))));
  if (typeof v === 'string') {
    d.skipped.push({ who: `user:${user}`, reason: v });
    return;
  }
  if (v.devices.length === 0) d.skipped.push({ who: `user:${user}`, reason: 'no certified device' });
  for (const r of v.devices) out.set(r.device, { device: r.device, boxKey: r.boxKey });
}

async function devicesOfEmail(ctx: KeyContext, email: string, out: Map<string, Recipient>, d: Delivery): Promise<void> {
  const before = out.size;
  for (const r of await attestedDevices(ctx.api, email, await ctx.serverKeys())) out.set(r.device, r);
  try {
    const v = await ctx.verified({ email });
    for (const r of v.devices) out.set(r.device, { device: r.device, boxKey: r.boxKey });
  } catch (err) {
    if (!(err instanceof DgError) || err.code !== 'NOT_FOUND') d.skipped.push({ who: `email:${email}`, reason: err instanceof Error ? err.message : String(err) });
  }
  if (out.size === before) d.skipped.push({ who: `email:${email}`, reason: 'no attested or certified device' });
}

/** Sends `keys` of `site` to each recipient (several envelopes when there are many keys). */
async function deliver(ctx: KeyContext, site: string, keys: { epoch: number; key: Uint8Array }[], to: Map<string, Recipient>, d: Delivery, grant?: string): Promise<void> {
  to.delete(ctx.client.device);
  for (const r of to.values()) {
    if (ctx.revokedHere(r.device)) {
      d.skipped.push({ who: `device:${r.device}`, reason: 'revoked by this device' });
      continue;
    }
    try {
      for (let i = 0; i < keys.length; i += MAX_KEYS_PER_ENVELOPE) {
        const chunk = keys.slice(i, i + MAX_KEYS_PER_ENVELOPE).map((k) => ({ epoch: k.epoch, key: b64urlEncode(k.key) }));
        const body: EnvelopeBody = { t: 'site-keys', site, keys: chunk, ...(grant === undefined ? {} : { grant }) };
        await ctx.api.sendEnvelope(r.device, await sealEnvelope(ctx.client.keys, r, body));
      }
      d.devices.push(r.device);
    } catch (err) {
      if (!(err instanceof DgError) || (err.code !== 'NOT_FOUND' && err.code !== 'RATE_LIMITED')) throw err;
      d.skipped.push({ who: `device:${r.device}`, reason: err.message });
    }
  }
}

/** The target of a share as plain JavaScript may pass it: BAD_REQUEST naming what is wrong. */
function checkShare(site: unknown, to: unknown, spec: unknown): asserts spec is ShareSpec {
  if (typeof site !== 'string' || !SITE_ID_RE.test(site)) throw new DgError('BAD_REQUEST', 'site: must be a site id');
  if (to === null || typeof to !== 'object') throw new DgError('BAD_REQUEST', 'to: must be {email} or {user}');
  const t = to as Record<string, unknown>;
  if (('email' in t) === ('user' in t)) throw new DgError('BAD_REQUEST', 'to: give exactly one of email and user');
  if ('email' in t && (typeof t.email !== 'string' || !EMAIL_RE.test(normalizeEmail(t.email)))) throw new DgError('BAD_REQUEST', 'to.email: must be an email address');
  if ('user' in t && (typeof t.user !== 'string' || !USER_ID_RE.test(t.user))) throw new DgError('BAD_REQUEST', 'to.user: must be a user id');
  if (spec === null || typeof spec !== 'object') throw new DgError('BAD_REQUEST', 'spec: must be {rights, logs?, exp?}');
  const p = spec as Record<string, unknown>;
  if (!Array.isArray(p.rights) || p.rights.length === 0 || !p.rights.every((r) => (RIGHTS as readonly unknown[]).includes(r))) {
    throw new DgError('BAD_REQUEST', `spec.rights: must be a non-empty array of ${RIGHTS.map((r) => `'${r}'`).join(', ')}`);
  }
  if (p.logs !== undefined && (!Array.isArray(p.logs) || p.logs.length === 0 || !p.logs.every((l) => l === '*' || (typeof l === 'string' && LOG_NAME_RE.test(l))))) {
    throw new DgError('BAD_REQUEST', "spec.logs: must be a non-empty array of log names or '*'");
  }
  if (p.exp !== undefined && !Number.isSafeInteger(p.exp)) throw new DgError('BAD_REQUEST', 'spec.exp: must be whole seconds since 1970');
}

/**
 * Shares `site` with an email or a user: signs and declares a grant, then sends every key
 * of the site (all epochs, so the history opens) with the grant to their devices. A user
 * that does not exist is NOT_FOUND, and nothing is declared; an email is shared with even
 * when no device has signed in with it yet (the grant waits for it; keys are shared again
 * once it has a device).
 */
export async function shareSite(ctx: KeyContext, site: string, to: { email: string } | { user: string }, spec: ShareSpec): Promise<Delivery & { grant: string; hash: string }> {
  checkShare(site, to, spec);
  const keys = ctx.ring.keysOf(site);
  if (keys.length === 0) throw new DgError('FORBIDDEN', `site ${site}: this device holds no key of it`);
  // Looked up before anything is declared: a grant to nobody would stay live on the server.
  const found = 'user' in to ? await lookUpUser(ctx, to.user) : undefined;
  const sub = 'email' in to ? `email:${normalizeEmail(to.email)}` : `user:${to.user}`;
  const grant = ctx.client.signGrant({ sub, site, logs: spec.logs ?? ['*'], rights: spec.rights, ...(spec.exp === undefined ? {} : { exp: spec.exp }) });
  const hash = await ctx.client.declare(grant);
  const d: Delivery = { devices: [], skipped: [] };
  const recipients = new Map<string, Recipient>();
  if ('email' in to) await devicesOfEmail(ctx, normalizeEmail(to.email), recipients, d);
  else await devicesOfUser(ctx, to.user, recipients, d, found);
  await deliver(ctx, site, keys, recipients, d, grant);
  return { ...d, grant, hash };
}

/** Every device that should hold `site`'s keys now: the members' certified and attested devices. */
async function memberDevices(ctx: KeyContext, members: SiteMembers, d: Delivery): Promise<Map<string, Recipient>> {
  const out = new Map<string, Recipient>();
  for (const m of members.members) await devicesOfUser(ctx, m.user, out, d);
  for (const e of members.emails) await devicesOfEmail(ctx, e.email, out, d);
  if (members.more) d.skipped.push({ who: `site:${members.site}`, reason: 'the member list was cut at its limit' });
  return out;
}

/**
 * Rotates `site` to a new key epoch (needs admin): claims the epoch on the server, saves the
 * new key, and sends it to the current members' devices only (a revoked device, or a
 * removed member, is not among them). Null when another admin claimed the epoch first.
 *
 * The new epoch is the server's + 1. A device holding a key for that epoch or a later one
 * means the server's epoch went back (or the server lies about it): rotating would claim
 * an epoch whose key this device already has, and writers would go on sealing under a key
 * the removed member may hold. That is refused (CONFLICT) before anything is claimed.
 */
export async function rotateSiteKey(ctx: KeyContext, site: string): Promise<(Delivery & { epoch: number }) | null> {
  const info = await ctx.client.siteInfo(site);
  if (!info.rights.includes('admin')) throw new DgError('FORBIDDEN', `site ${site}: only an admin rotates its key`);
  const epoch = info.keyEpoch + 1;
  const held = ctx.ring.newest(site);
  if (held !== undefined && held.epoch >= epoch) {
    throw new DgError('CONFLICT', `site ${site}: the server's key epoch for the site went back from ${held.epoch} to ${info.keyEpoch}; nothing was rotated`);
  }
  const key = randomBytes(32);
  if (!(await ctx.api.reportRotated(site, epoch))) return null;
  ctx.epochs.note(site, epoch);
  // Checked above; a key for the epoch taken since the claim could only come from a server
  // that lets it through: never report a rotation whose key was not taken.
  const added = ctx.ring.add(site, epoch, key);
  if (added !== 'new') throw new DgError('CONFLICT', `site ${site}: epoch ${epoch} was claimed on the server, but this device already holds a key for it; the new key was not taken or sent`);
  await ctx.saveRing();
  const d: Delivery = { devices: [], skipped: [] };
  await deliver(ctx, site, [{ epoch, key }], await memberDevices(ctx, await ctx.api.members(site), d), d);
  return { ...d, epoch };
}

/** Whether `from` is a certified device of `user`. */
async function isDeviceOf(ctx: KeyContext, user: string, from: string): Promise<boolean> {
  try {
    return (await ctx.verified({ user })).devices.some((d) => d.device === from);
  } catch {
    return false;
  }
}

/**
 * Takes site keys sent by `from`, after checking the sender may give them (see the file
 * comment). A grant that comes along is joined first (it must name this user, device or one
 * of its emails, for this site): the site's key epoch can then be read. Only keys up to that
 * epoch are taken (key-admission.ts); the others are refused and reported. When the epoch
 * cannot be read now (the server is not reached), this throws the read's error, so the
 * envelope is kept and opened again later.
 */
export async function acceptSiteKeys(ctx: KeyContext, from: string, body: Extract<EnvelopeBody, { t: 'site-keys' }>): Promise<number> {
  let trusted = await isDeviceOf(ctx, ctx.user, from);
  if (!trusted) {
    if (body.grant !== undefined) {
      const g = readGrant(body.grant);
      if (g === null || g.site !== body.site || g.iss !== from) throw new DgError('FORBIDDEN', 'site keys: the grant is not for this site or not by the sender');
      await ctx.client.join(body.site, body.grant);
    }
    const members = await ctx.api.members(body.site);
    const admins = [members.owner, ...members.members.filter((m) => m.rights.includes('admin') && m.user !== members.owner).map((m) => m.user)].slice(0, 16);
    for (const u of admins) if (!trusted && (await isDeviceOf(ctx, u, from))) trusted = true;
  }
  if (!trusted) throw new DgError('FORBIDDEN', `site keys for ${body.site}: the sender is not a certified device of an admin of the site`);
  const offered = new SiteKeyring();
  for (const k of body.keys) {
    const key = b64urlDecode(k.key);
    if (key?.length !== 32) throw new DgError('BAD_REQUEST', 'site keys: malformed key');
    if (offered.add(body.site, k.epoch, key) === 'conflict') throw new DgError('BAD_REQUEST', `site keys: epoch ${k.epoch} is not an epoch, or is given twice`);
  }
  const { take, refused, unsure } = await judgeKeys(ctx.ring, ctx.epochs, offered, ctx.epochs.mark());
  if (unsure.length > 0) throw unsure[0]!.error;
  for (const r of refused) ctx.report(new DgError('FORBIDDEN', `site keys for ${body.site} from ${from}: refused, ${r.why}`));
  let added = 0;
  for (const k of take.keysOf(body.site)) {
    const r = ctx.ring.add(body.site, k.epoch, k.key);
    if (r === 'new') added++;
    else if (r === 'conflict') ctx.report(new DgError('CONFLICT', `site keys: another key for ${body.site}#${k.epoch} was refused`));
  }
  if (added > 0) await ctx.saveRing();
  return added;
}
