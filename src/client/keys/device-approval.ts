/**
 * Approving a new device of the user: the user key goes to a device only when
 * - its identity attestation verifies under a server attestation key that is NOT revoked
 *   (GET /server-keys, fetched fresh each time) and names that very device;
 * - the attested email is one of this user's identities, and the device is a live device
 *   of this user whose box key is the attested one;
 * - the app's `approveDevice` callback (the person at this device) says yes.
 * Then the user key's seed goes to the device's box key in an HPKE envelope; the device
 * certifies itself once it has it (user-key-flows.ts `adoptSentUserKey`).
 */
import { b64urlEncode } from '../bytes.js';
import { decodeJws } from '../crypto/jws.js';
import { checkAttestation } from './attestation.js';
import { sealEnvelope } from './envelope.js';
import type { KeyContext } from './key-context.js';

export interface DeviceApprovalRequest {
  device: string;
  name: string;
  /** The attested email and provider of the device's sign-in. */
  email: string;
  provider: string;
  /** When the server attested the sign-in, ms since the epoch. */
  attestedAt: number;
  /** The identity attestation itself (compact JWS, already checked). */
  identity: string;
}

export type ApprovalOutcome =
  | 'shared'
  | 'declined'
  | 'already-certified'
  | 'no-user-key'
  | 'no-attestation'
  | 'malformed'
  | 'unknown-key'
  | 'revoked-key'
  | 'bad-signature'
  | 'wrong-issuer'
  | 'wrong-device'
  | 'not-a-device-of-this-user'
  | 'email-not-of-this-user'
  | 'box-key-mismatch';

export interface ApprovalResult {
  device: string;
  outcome: ApprovalOutcome;
}

/** Decides about one device (from a `device` event, or found uncertified by a review). */
export async function considerDevice(
  ctx: KeyContext,
  ev: { device: string; name: string; identity?: string },
  approve: (req: DeviceApprovalRequest) => Promise<boolean>,
): Promise<ApprovalResult> {
  const done = (outcome: ApprovalOutcome): ApprovalResult => ({ device: ev.device, outcome });
  const held = ctx.held();
  if (held === null) return done('no-user-key');
  const dir = await ctx.verified({ user: ctx.user });
  if (dir.devices.some((d) => d.device === ev.device && d.keyVersion === dir.newest)) return done('already-certified');
  const me = await ctx.client.me();
  const emails = new Set(me.identities.map((i) => i.email));
  let identity = ev.identity;
  if (identity === undefined) {
    // A review (or an event without one): the device's attestations under the user's emails;
    // one that checks out wins, else the first that names the device (its refusal says why).
    const keys = await ctx.serverKeys();
    const naming: string[] = [];
    for (const email of emails) for (const jws of await ctx.api.attestationsOf(email)) if (decodeJws(jws)?.payload.sub === ev.device) naming.push(jws);
    identity = naming.find((jws) => checkAttestation(jws, keys, ctx.issuer).ok) ?? naming[0];
  }
  if (identity === undefined) return done('no-attestation');
  const check = checkAttestation(identity, await ctx.serverKeys(), ctx.issuer);
  if (!check.ok) return done(check.reason);
  const a = check.attested;
  if (a.device !== ev.device) return done('wrong-device');
  const device = me.devices.find((d) => d.device === ev.device && !d.revoked);
  if (device === undefined) return done('not-a-device-of-this-user');
  if (!emails.has(a.email)) return done('email-not-of-this-user');
  if (a.box !== undefined && a.box !== device.boxKey) return done('box-key-mismatch');
  const yes = await approve({ device: ev.device, name: ev.name || device.name, email: a.email, provider: a.provider, attestedAt: a.iat * 1000, identity });
  if (!yes) return done('declined');
  const data = await sealEnvelope(ctx.client.keys, { device: ev.device, boxKey: device.boxKey }, { t: 'user-key', user: ctx.user, version: held.version, seed: b64urlEncode(held.key.seedBytes()) });
  await ctx.api.sendEnvelope(ev.device, data);
  return done('shared');
}

/** The user's live devices other than this one that have no certificate under the newest key. */
export async function uncertifiedDevices(ctx: KeyContext): Promise<{ device: string; name: string }[]> {
  const [me, dir] = await Promise.all([ctx.client.me(), ctx.verified({ user: ctx.user })]);
  const certified = new Set(dir.devices.filter((d) => d.keyVersion === dir.newest).map((d) => d.device));
  return me.devices.filter((d) => !d.revoked && d.device !== ctx.client.device && !certified.has(d.device)).map((d) => ({ device: d.device, name: d.name }));
}
