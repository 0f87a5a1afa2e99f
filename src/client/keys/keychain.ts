/**
 * The user's keychain: every site key the user's devices hold, sealed under the user key and
 * kept in the profile's app data (key `datagrove.keychain`), so that any device holding the
 * user key (approved, or restored from words on a fresh device) recovers every site the user
 * can read, and a device that receives a site key makes it available to its siblings.
 *
 *   value = {v: 1, ukv: user key version, box: base64url(nonce ‖ AES-256-GCM(ciphertext ‖ tag))}
 *   key   = HKDF(user root secret, "datagrove-user-root-v1", "keychain-v1")
 *   AAD   = "datagrove-keychain-v1\n" user "\n" ukv
 *
 * Saves merge: read the profile, open and merge what is there, seal, write with the
 * profile's version compare-and-set, retry on a stale version. Keys are only ever added
 * (but for made-up ones, below).
 * The profile's app data is at most 64 KiB in all, which holds roughly 900 site key epochs
 * (a save beyond it fails with TOO_LARGE and the keys stay on the devices that have them).
 *
 * Whoever holds the user key can write the keychain, a stolen device too: what it holds is
 * taken as any offered key is (key-admission.ts), only up to the site's key epoch on the
 * server. A load takes nothing above that (its caller reports it), and leaves the keys of
 * sites whose epoch could not be read for a later load; a save drops the keys above their
 * site's epoch from the keychain.
 */
import { DgError } from '../../protocol/errors.js';
import { b64urlDecode, b64urlEncode, fromUtf8, utf8 } from '../bytes.js';
import { AesKey, openBox, sealBox } from '../crypto/aes-gcm.js';
import type { KeyApi } from './key-api.js';
import { judgeKeys, type Judged } from './key-admission.js';
import type { ServerEpochs } from './server-epochs.js';
import { SiteKeyring } from './site-keyring.js';
import type { UserKey } from './user-key.js';

export const KEYCHAIN_DATA_KEY = 'datagrove.keychain';
const MAX_ATTEMPTS = 8;

async function keychainKey(key: UserKey): Promise<AesKey> {
  return AesKey.import(key.deriveKey('keychain-v1'));
}

const aad = (user: string, ukv: number) => utf8(`datagrove-keychain-v1\n${user}\n${ukv}`);

export async function sealKeychain(key: UserKey, user: string, ukv: number, ring: SiteKeyring): Promise<{ v: 1; ukv: number; box: string }> {
  const box = await sealBox(await keychainKey(key), utf8(JSON.stringify(ring.toJSON())), aad(user, ukv));
  return { v: 1, ukv, box: b64urlEncode(box) };
}

/**
 * The ring in a stored keychain value; null when there is none, or it is sealed under
 * another user key version (a rotation re-seals it under the new one). BAD_REQUEST when it
 * claims this version but does not open (tampered).
 */
export async function openKeychain(key: UserKey, user: string, ukv: number, value: unknown): Promise<SiteKeyring | null> {
  if (value === null || typeof value !== 'object') return null;
  const v = value as { v?: unknown; ukv?: unknown; box?: unknown };
  if (v.v !== 1 || v.ukv !== ukv || typeof v.box !== 'string') return null;
  const box = b64urlDecode(v.box);
  if (box === null) throw new DgError('BAD_REQUEST', 'keychain: malformed');
  return SiteKeyring.fromJSON(JSON.parse(fromUtf8(await openBox(await keychainKey(key), box, aad(user, ukv)))) as unknown);
}

/** Where a keychain is kept and judged: the HTTP calls, and the sites' key epochs on the server. */
export interface KeychainPlace {
  api: KeyApi;
  epochs: ServerEpochs;
}

/**
 * Reads the keychain into `ring` (merging what may be taken). `stale` when the stored one
 * lacks keys `ring` has, holds another key for an epoch `ring` has, or holds keys above
 * their site's epoch (a save replaces or drops them).
 */
export async function loadKeychain(
  place: KeychainPlace,
  key: UserKey,
  user: string,
  ukv: number,
  ring: SiteKeyring,
): Promise<{ stale: boolean; conflicts: string[] } & Pick<Judged, 'refused' | 'unsure'>> {
  const p = await place.api.profile();
  const mark = place.epochs.mark();
  const stored = (await openKeychain(key, user, ukv, p.data[KEYCHAIN_DATA_KEY])) ?? new SiteKeyring();
  const { take, refused, unsure } = await judgeKeys(ring, place.epochs, stored, mark);
  const { conflicts } = ring.merge(take);
  const back = new SiteKeyring();
  back.merge(stored);
  return { stale: back.merge(ring).added > 0 || conflicts.length > 0 || refused.some((r) => r.server !== null), conflicts, refused, unsure };
}

/**
 * Merges `ring` into the stored keychain (and the stored keys `ring` may take into `ring`),
 * sealed under version `ukv`. Stored keys above their site's epoch on the server are left
 * out; those that could not be judged now (the server was not reached, or this user has no
 * access to the site: a sibling device may) are written back as they were, untaken.
 */
export async function saveKeychain(place: KeychainPlace, key: UserKey, user: string, ukv: number, ring: SiteKeyring): Promise<void> {
  let p = await place.api.profile();
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const mark = place.epochs.mark();
    const value = p.data[KEYCHAIN_DATA_KEY] as { ukv?: unknown } | undefined;
    // Never overwrite a keychain sealed under a newer user key version with an older one.
    if (typeof value?.ukv === 'number' && value.ukv > ukv) throw new DgError('CONFLICT', `keychain: sealed under user key version ${value.ukv}, newer than ${ukv}`);
    const stored = await openKeychain(key, user, ukv, value).catch(() => null);
    const out = new SiteKeyring();
    if (stored !== null) {
      const { take, refused, unsure } = await judgeKeys(ring, place.epochs, stored, mark);
      ring.merge(take);
      out.merge(ring);
      const kept = new Set([...unsure.map((u) => u.site), ...refused.filter((r) => r.server === null).map((r) => r.site)]);
      for (const site of kept) for (const k of stored.keysOf(site)) out.add(site, k.epoch, k.key);
    } else {
      out.merge(ring);
    }
    const r = await place.api.setProfileData(p.version, KEYCHAIN_DATA_KEY, await sealKeychain(key, user, ukv, out));
    if (r.ok) return;
    p = r.current;
  }
  throw new DgError('UNAVAILABLE', 'keychain: the profile kept changing; try again');
}
