/**
 * HPKE (RFC 9180) base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM,
 * through @hpke/core: how a device seals a secret to another device's box key (envelopes).
 * The sealed form is `enc (32 bytes) ‖ ciphertext`. Base mode does not authenticate the
 * sender; envelope.ts adds the sender's Ed25519 signature inside the ciphertext.
 */
import { Aes128Gcm, CipherSuite, HkdfSha256 } from '@hpke/core';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { DgError } from '../../protocol/errors.js';

const ENC_BYTES = 32;
let suite: CipherSuite | null = null;

function hpke(): CipherSuite {
  suite ??= new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  return suite;
}

/** Seals `plaintext` to the X25519 public key `recipient` (raw 32 bytes). */
export async function hpkeSeal(recipient: Uint8Array, plaintext: Uint8Array, info: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  if (recipient.length !== 32) throw new DgError('BAD_REQUEST', 'box key: must be 32 bytes');
  const s = hpke();
  const recipientPublicKey = await s.kem.deserializePublicKey(recipient);
  const { enc, ct } = await s.seal({ recipientPublicKey, info }, plaintext, aad);
  const out = new Uint8Array(ENC_BYTES + ct.byteLength);
  out.set(new Uint8Array(enc), 0);
  out.set(new Uint8Array(ct), ENC_BYTES);
  return out;
}

/** Opens what `hpkeSeal` made with the recipient's X25519 secret key; BAD_REQUEST when it does not open. */
export async function hpkeOpen(secretKey: Uint8Array, sealed: Uint8Array, info: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  if (sealed.length <= ENC_BYTES + 16) throw new DgError('BAD_REQUEST', 'envelope: too short');
  const s = hpke();
  try {
    const recipientKey = await s.kem.deserializePrivateKey(secretKey);
    const pt = await s.open({ recipientKey, enc: sealed.slice(0, ENC_BYTES), info }, sealed.slice(ENC_BYTES), aad);
    return new Uint8Array(pt);
  } catch (err) {
    throw new DgError('BAD_REQUEST', 'envelope: does not open with this device key', { cause: err });
  }
}
