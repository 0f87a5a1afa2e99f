/**
 * Ed25519 verification of many signatures by a few devices (the writer signatures of log
 * entries): through WebCrypto where the runtime has Ed25519 (Node 20, current browsers),
 * which verifies off the main thread in Node and about 10 times faster than JavaScript,
 * with each device's public key imported once; through @noble/curves (the library the
 * device keys sign with) where it does not.
 *
 * Both follow RFC 8032 (noble with `zip215: false`: canonical encodings, no small-order
 * keys), and agree on every signature the Ed25519 signing algorithm makes. WebCrypto
 * (OpenSSL) takes a small-order key, under which signatures anyone can make verify for many
 * messages: a key is checked with noble when first imported, and one that is not canonical
 * or of small order verifies nothing, on either path. A device could
 * still craft, for its own messages only, a signature that one accepts and the other
 * refuses (they differ on the cofactor in the equation); no one can make either accept a
 * signature in another device's name.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { isStrongEd25519Key } from '../../protocol/ed25519-key.js';
import { arrayBufferView as view } from '../bytes.js';

/** Public keys kept imported (least recently used forgotten first). */
export const MAX_IMPORTED_KEYS = 10_000;

export class Ed25519Verifier {
  /** Imported keys by device id; null: WebCrypto refused the key (not a valid public key). */
  private readonly keys = new Map<string, Promise<CryptoKey | null>>();
  /** False once WebCrypto said it has no Ed25519: noble verifies from then on. */
  private native = globalThis.crypto?.subtle !== undefined;

  constructor(private readonly maxKeys = MAX_IMPORTED_KEYS) {}

  /** Whether `signature` is the signature of `message` by `publicKey` (whose id is `device`). Never rejects. */
  async verify(device: string, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    if (this.native) {
      const key = await this.key(device, publicKey);
      if (key !== undefined) {
        if (key === null) return false;
        try {
          return await globalThis.crypto.subtle.verify('Ed25519', key, view(signature), view(message));
        } catch {
          return false;
        }
      }
    }
    try {
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  }

  /** The imported key of `device`; undefined when WebCrypto has no Ed25519. */
  private async key(device: string, publicKey: Uint8Array): Promise<CryptoKey | null | undefined> {
    let k = this.keys.get(device);
    if (k === undefined) {
      k = isStrongEd25519Key(publicKey)
        ? globalThis.crypto.subtle.importKey('raw', view(publicKey), { name: 'Ed25519' }, false, ['verify']).catch((err: unknown) => {
            if (isUnsupported(err)) this.native = false;
            return null;
          })
        : Promise.resolve(null);
      if (this.keys.size >= this.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    } else {
      this.keys.delete(device); // most recently used last
    }
    this.keys.set(device, k);
    const key = await k;
    return key === null && !this.native ? undefined : key;
  }
}

function isUnsupported(err: unknown): boolean {
  // Runtimes without Ed25519 in WebCrypto answer NotSupportedError (some older ones a TypeError).
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'NotSupportedError' || name === 'TypeError';
}
