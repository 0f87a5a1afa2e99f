/**
 * AES-256-GCM through WebCrypto (`globalThis.crypto.subtle`, in browsers and Node 20): the
 * symmetric cipher of log entries, of the user's keychain and of keys kept at rest. A
 * 12-byte random nonce per message; with random nonces a key must not seal more than 2^32
 * messages, far beyond a site key epoch or a device's lifetime of saves.
 */
import { DgError } from '../../protocol/errors.js';
import { randomBytes } from '../bytes.js';

export const AES_KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (s === undefined) throw new DgError('UNAVAILABLE', 'WebCrypto is not available (a secure context is required in browsers)');
  return s;
}

/** WebCrypto wants ArrayBuffer-backed views; copies only when it must. */
function view(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}

/** An imported AES-256-GCM key (non-extractable). */
export class AesKey {
  private constructor(private readonly key: CryptoKey) {}

  static async import(raw: Uint8Array): Promise<AesKey> {
    if (raw.length !== AES_KEY_BYTES) throw new DgError('BAD_REQUEST', `AES key: must be ${AES_KEY_BYTES} bytes`);
    return new AesKey(await subtle().importKey('raw', view(raw), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']));
  }

  /** Ciphertext with its 16-byte tag appended. */
  async seal(nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    const ct = await subtle().encrypt({ name: 'AES-GCM', iv: view(nonce), additionalData: view(aad), tagLength: 128 }, this.key, view(plaintext));
    return new Uint8Array(ct);
  }

  /** The plaintext; BAD_REQUEST when the tag does not verify (wrong key, nonce, AAD, or tampering). */
  async open(nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    try {
      const pt = await subtle().decrypt({ name: 'AES-GCM', iv: view(nonce), additionalData: view(aad), tagLength: 128 }, this.key, view(sealed));
      return new Uint8Array(pt);
    } catch (err) {
      throw new DgError('BAD_REQUEST', 'ciphertext does not open (wrong key or tampered)', { cause: err });
    }
  }
}

/** nonce ‖ ciphertext ‖ tag under `key`, with a fresh random nonce. */
export async function sealBox(key: AesKey, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const nonce = randomBytes(NONCE_BYTES);
  const ct = await key.seal(nonce, plaintext, aad);
  const out = new Uint8Array(NONCE_BYTES + ct.length);
  out.set(nonce, 0);
  out.set(ct, NONCE_BYTES);
  return out;
}

/** Opens what `sealBox` made; BAD_REQUEST when it does not open. */
export async function openBox(key: AesKey, box: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  if (box.length < NONCE_BYTES + TAG_BYTES) throw new DgError('BAD_REQUEST', 'ciphertext: too short');
  return key.open(box.subarray(0, NONCE_BYTES), box.subarray(NONCE_BYTES), aad);
}
