/**
 * The user key's life on a device: made on the user's first device and published as version
 * 1; adopted from an envelope (after approval) or from words / a QR code; rotated (a new
 * version signed by the old one) after a device that held it is revoked; and, whenever this
 * device holds the newest version, its own device certificate under it.
 *
 * Crash safety: a new key is sealed at rest BEFORE its public half is published, so a
 * published key is never lost; if the publish loses a race (CONFLICT) the local copy is
 * dropped and the winner's key arrives by envelope.
 */
import { DgError } from '../../protocol/errors.js';
import { userKeyStatement } from '../../protocol/key-statements.js';
import { b64urlDecode, b64urlEncode, utf8 } from '../bytes.js';
import { signDeviceCertificate } from './certificate.js';
import { sealEnvelope, type EnvelopeBody } from './envelope.js';
import type { Refusal } from './key-admission.js';
import type { KeyContext } from './key-context.js';
import { loadKeychain, saveKeychain } from './keychain.js';
import { UserKey } from './user-key.js';

export type UserKeyState = 'ready' | 'awaiting-key';

const pendingName = (user: string) => `datagrove.user-key-next:${user}`;

async function publish(ctx: KeyContext, key: UserKey, version: number, prev: UserKey | null): Promise<boolean> {
  const statement = utf8(userKeyStatement(ctx.user, version, key.publicKey));
  try {
    await ctx.api.publishUserKey({
      publicKey: key.publicKey,
      version,
      sig: b64urlEncode(key.sign(statement)),
      ...(prev === null ? {} : { prevSig: b64urlEncode(prev.sign(statement)) }),
    });
    return true;
  } catch (err) {
    if (err instanceof DgError && err.code === 'CONFLICT') return false;
    throw err;
  }
}

/** Posts this device's certificate under `version` of the user key. */
export async function certifySelf(ctx: KeyContext, key: UserKey, version: number): Promise<void> {
  const me = ctx.client.keys;
  await ctx.api.postCertificate(signDeviceCertificate(key, { device: me.deviceId, boxKey: me.boxKey, user: ctx.user, keyVersion: version }));
}

/** Reports the keychain's keys above their site's epoch on the server (made up by whoever wrote them). */
function reportRefused(ctx: KeyContext, refused: Refusal[]): void {
  for (const r of refused) if (r.server !== null) ctx.report(new DgError('FORBIDDEN', `keychain: a key of site ${r.site} was not taken: ${r.why}`));
}

/**
 * Merges the keychain into the ring (reporting the keys it refuses) and writes back what it
 * lacked. Keys of sites whose epoch could not be read are left for the next time.
 */
export async function syncKeychain(ctx: KeyContext): Promise<void> {
  const held = ctx.held();
  if (held === null) return;
  const { stale, conflicts, refused } = await loadKeychain(ctx, held.key, ctx.user, held.version, ctx.ring);
  for (const c of conflicts) ctx.report(new DgError('CONFLICT', `keychain: another key for ${c} was refused`));
  reportRefused(ctx, refused);
  if (stale) await ctx.saveRing();
  else await ctx.persistRing();
}

/**
 * Brings this device's user key up to date with the directory: finishes an interrupted
 * rotation, makes the first key when the user has none, certifies this device under the
 * newest version it holds, and reads the keychain. 'awaiting-key' when another device must
 * first send the (newest) key.
 */
export async function settleUserKey(ctx: KeyContext): Promise<UserKeyState> {
  let dir = await ctx.verified({ user: ctx.user });
  const pending = await ctx.vault.load(pendingName(ctx.user));
  if (pending !== null && typeof pending === 'object' && !Array.isArray(pending) && typeof pending.seed === 'string' && typeof pending.version === 'number') {
    const seed = b64urlDecode(pending.seed);
    const key = seed === null ? null : UserKey.fromSeed(seed);
    // The publish may have happened before a crash: the chain says whether this key won.
    if (key !== null && dir.chain.find((k) => k.version === pending.version)?.publicKey === key.publicKey) await ctx.adoptUserKey(key, pending.version);
    await ctx.vault.remove(pendingName(ctx.user));
  }
  let held = ctx.held();
  if (held === null && dir.newest === 0) {
    const key = UserKey.generate();
    await ctx.vault.save(pendingName(ctx.user), { seed: b64urlEncode(key.seedBytes()), version: 1 });
    const won = await publish(ctx, key, 1, null);
    if (won) await ctx.adoptUserKey(key, 1);
    await ctx.vault.remove(pendingName(ctx.user));
    if (!won) return 'awaiting-key';
    dir = await ctx.verified({ user: ctx.user });
    held = ctx.held();
  }
  if (held === null) return 'awaiting-key';
  const mine = dir.chain.find((k) => k.version === held.version);
  if (mine?.publicKey !== held.key.publicKey) throw new DgError('FORBIDDEN', `user key: version ${held.version} in the directory is not the key this device holds`);
  if (held.version < dir.newest) return 'awaiting-key';
  if (!dir.devices.some((d) => d.device === ctx.client.device && d.keyVersion === held.version)) await certifySelf(ctx, held.key, held.version);
  await syncKeychain(ctx);
  return 'ready';
}

/**
 * Restores the user key on this device from its words or QR payload: it must be the newest
 * version of this user's chain (older words stop working after a rotation).
 */
export async function importUserKey(ctx: KeyContext, key: UserKey): Promise<number> {
  const dir = await ctx.verified({ user: ctx.user });
  const link = dir.chain.find((k) => k.publicKey === key.publicKey);
  if (link === undefined) throw new DgError('FORBIDDEN', 'user key: this is not a key of the signed-in user');
  if (link.version !== dir.newest) {
    throw new DgError('FORBIDDEN', `user key: these are the words of version ${link.version}, but the key was rotated to version ${dir.newest}; use the newest words, or approve this device from another one`);
  }
  await ctx.adoptUserKey(key, link.version);
  await certifySelf(ctx, key, link.version);
  await syncKeychain(ctx);
  return link.version;
}

/** Takes a user key sent by another device of the user (after it approved this one). */
export async function adoptSentUserKey(ctx: KeyContext, body: Extract<EnvelopeBody, { t: 'user-key' }>): Promise<boolean> {
  if (body.user !== ctx.user) throw new DgError('FORBIDDEN', 'user key envelope: for another user');
  const seed = b64urlDecode(body.seed);
  if (seed === null) throw new DgError('BAD_REQUEST', 'user key envelope: malformed seed');
  const key = UserKey.fromSeed(seed);
  const dir = await ctx.verified({ user: ctx.user });
  const link = dir.chain.find((k) => k.publicKey === key.publicKey);
  if (link === undefined) throw new DgError('FORBIDDEN', 'user key envelope: not a key of this user');
  const held = ctx.held();
  if (held !== null && held.version >= link.version) return false;
  await ctx.adoptUserKey(key, link.version);
  if (link.version === dir.newest) {
    await certifySelf(ctx, key, link.version);
    await syncKeychain(ctx);
  }
  return true;
}

/**
 * Publishes a new version of the user key (after a device that held it was revoked), signed
 * by the current one; re-seals the keychain under it and sends it to the user's other live,
 * certified devices. false when another device rotated first (its key arrives by envelope).
 */
export async function rotateUserKey(ctx: KeyContext): Promise<boolean> {
  const held = ctx.held();
  if (held === null) throw new DgError('FORBIDDEN', 'user key: this device does not hold it');
  const dir = await ctx.verified({ user: ctx.user });
  if (held.version !== dir.newest) return false;
  // Everything the keychain holds under the old key moves to the new one: what could not be
  // judged now would be lost with the old keychain, so the rotation waits for the server.
  const { unsure, refused } = await loadKeychain(ctx, held.key, ctx.user, held.version, ctx.ring);
  reportRefused(ctx, refused);
  if (unsure.length > 0) throw new DgError('UNAVAILABLE', `keychain: the key epoch of site ${unsure[0]!.site} could not be read: ${unsure[0]!.error.message}`, { cause: unsure[0]!.error });
  const next = UserKey.generate();
  const version = held.version + 1;
  await ctx.vault.save(pendingName(ctx.user), { seed: b64urlEncode(next.seedBytes()), version });
  const won = await publish(ctx, next, version, held.key);
  if (won) await ctx.adoptUserKey(next, version);
  await ctx.vault.remove(pendingName(ctx.user));
  if (!won) return false;
  await certifySelf(ctx, next, version);
  await saveKeychain(ctx, next, ctx.user, version, ctx.ring);
  const body: EnvelopeBody = { t: 'user-key', user: ctx.user, version, seed: b64urlEncode(next.seedBytes()) };
  for (const d of dir.devices) {
    if (d.device === ctx.client.device || ctx.revokedHere(d.device)) continue;
    try {
      await ctx.api.sendEnvelope(d.device, await sealEnvelope(ctx.client.keys, d, body));
    } catch (err) {
      // A device revoked meanwhile (NOT_FOUND) simply does not get it.
      if (!(err instanceof DgError) || err.code !== 'NOT_FOUND') throw err;
    }
  }
  return true;
}
