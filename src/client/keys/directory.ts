/**
 * Verified lookups in the key directory: a user's key chain (checked link by link and
 * against the pin, pins.ts) and the devices whose certificates verify under it. Only such
 * devices, and devices with a valid identity attestation for an email, ever receive keys.
 */
import { normalizeEmail } from '../../protocol/email.js';
import { DgError } from '../../protocol/errors.js';
import { verifyDeviceCertificate } from './certificate.js';
import type { KeyApi } from './key-api.js';
import type { KeyPins } from './pins.js';
import { verifyUserKeyChain, type UserKeyLink } from './user-key-chain.js';
import { checkAttestation, type ServerKey } from './attestation.js';

export interface Recipient {
  device: string;
  boxKey: string;
}

export interface VerifiedUser {
  user: string;
  chain: UserKeyLink[];
  /** The newest key version (0: the user has no key). */
  newest: number;
  /** Live devices with a certificate that verifies under the chain. */
  devices: (Recipient & { keyVersion: number })[];
  rotationRequired: boolean;
}

export async function verifiedUser(api: KeyApi, pins: KeyPins, who: { user: string } | { email: string }): Promise<VerifiedUser> {
  const d = await api.directory(who);
  if ('user' in who && d.user !== who.user) throw new DgError('INTERNAL', 'directory answered for another user');
  const chain = verifyUserKeyChain(d.user, d.userKeys);
  await pins.check(d.user, chain);
  const keyOf = (v: number) => chain.find((k) => k.version === v)?.publicKey;
  const devices: VerifiedUser['devices'] = [];
  for (const c of d.certificates) {
    const cert = verifyDeviceCertificate(c.certificate, keyOf);
    // The certificate must name this very device, box key and user: a server cannot reuse one.
    if (cert === null || cert.user !== d.user || cert.device !== c.device || cert.boxKey !== c.boxKey) continue;
    devices.push({ device: c.device, boxKey: c.boxKey, keyVersion: cert.keyVersion });
  }
  return { user: d.user, chain, newest: chain.at(-1)?.version ?? 0, devices, rotationRequired: d.rotationRequired };
}

/**
 * Devices attested for `email` (with their box keys) by a key of the server that is not
 * revoked. Attestations without a box key (made before it was added) are skipped.
 */
export async function attestedDevices(api: KeyApi, email: string, serverKeys: readonly ServerKey[]): Promise<Recipient[]> {
  const out: Recipient[] = [];
  const want = normalizeEmail(email);
  for (const jws of await api.attestationsOf(want)) {
    const r = checkAttestation(jws, serverKeys);
    if (!r.ok || r.attested.email !== want || r.attested.box === undefined) continue;
    out.push({ device: r.attested.device, boxKey: r.attested.box });
  }
  return out;
}
