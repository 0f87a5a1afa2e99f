/**
 * Approving a new device of the user: the user key goes to a device only when
 * - its identity attestation verifies under a server attestation key that is NOT revoked
 *   (GET /server-keys, fetched fresh each time) and names that very device;
 * - the attested email is one of this user's identities, and the device is a live device
 *   of this user whose box key is the attested one;
 * - that box key is signed by the device's own key (its id is its public key): the server
 *   relays the box key and could otherwise swap in its own while the user approves the
 *   real device;
 * - the app's `approveDevice` callback (the person at this device) says yes, having shown
 *   the device's fingerprint for the person to compare with what the new device shows
 *   (the server could still invent a whole device, with a key of its own).
 * Then the user key's seed goes to the device's box key in an HPKE envelope; the device
 * certifies itself once it has it (user-key-flows.ts `adoptSentUserKey`).
 */
import { b64urlEncode } from '../bytes.js';
import { decodeJws } from '../crypto/jws.js';
import { deviceFingerprint, verifyBoxSig } from '../device-keys.js';
import { checkAttestation } from './attestation.js';
import { sealEnvelope } from './envelope.js';
import type { KeyContext } from './key-context.js';

export interface DeviceApprovalRequest {
  device: string;
  /**
   * The device's fingerprint (`deviceFingerprint`): show it and ask the person to compare it
   * with the one the new device shows (`client.fingerprint`) before saying yes.
   */
  fingerprint: string;
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
  | 'box-key-mismatch'
  /** The server lists no signature of the device's box key by the device. */
  | 'box-key-unsigned'
  /** The box key's signature does not verify with the device's key: not the device's box key. */
  | 'bad-box-signature';

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
  if (device.boxSig === undefined) return done('box-key-unsigned');
  if (!verifyBoxSig(ev.device, device.boxKey, device.boxSig)) return done('bad-box-signature');
  const yes = await approve({
    device: ev.device,
    fingerprint: deviceFingerprint(ev.device),
    name: ev.name || device.name,
    email: a.email,
    provider: a.provider,
    attestedAt: a.iat * 1000,
    identity,
  });
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

/**
 * Registers this device's signature of its box key when the server lists none that verifies
 * (a device registered without one, by an older SDK or an app's own sign-in), so that the
 * user's other devices can approve it. Does nothing when the server lists another box key.
 */
export async function signOwnBoxKey(ctx: KeyContext): Promise<void> {
  const keys = ctx.client.keys;
  const me = await ctx.client.me();
  const mine = me.devices.find((d) => d.device === keys.deviceId);
  if (mine === undefined || mine.boxKey !== keys.boxKey) return;
  if (mine.boxSig !== undefined && verifyBoxSig(keys.deviceId, mine.boxKey, mine.boxSig)) return;
  await ctx.api.putBoxSig(keys.deviceId, keys.boxSig);
}
