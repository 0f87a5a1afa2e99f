/**
 * Ed25519 signing with a device's secret key, for the signatures of log entries: through
 * WebCrypto where the runtime has Ed25519 (Node 20, current browsers), which signs off the
 * main thread in Node and natively in browsers, so a batch signed concurrently does not
 * block the event loop; through @noble/curves (synchronous, about 0.5 ms a signature)
 * where it does not. The key is imported once, not extractable; whether the runtime has
 * Ed25519 is found out by that import.
 *
 * Ed25519 signatures are deterministic (RFC 8032): both paths give the same bytes for the
 * same key and message.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { arrayBufferView as view } from '../bytes.js';

/** DER of PKCS#8 (RFC 8410) for an Ed25519 private key, before its 32-byte seed. */
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const ED25519 = { name: 'Ed25519' };

export class Ed25519Signer {
  /** The imported key, on first use; null: no Ed25519 in this runtime's WebCrypto (noble signs). */
  private key: Promise<CryptoKey | null> | null = null;

  /** `seed`: the 32-byte secret key (RFC 8032), as @noble/curves takes it. */
  constructor(private readonly seed: Uint8Array) {}

  /** The Ed25519 signature of `message` (64 bytes). */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    this.key ??= importSeed(this.seed);
    const key = await this.key;
    if (key === null) return ed25519.sign(message, this.seed);
    return new Uint8Array(await globalThis.crypto.subtle.sign(ED25519, key, view(message)));
  }
}

async function importSeed(seed: Uint8Array): Promise<CryptoKey | null> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) return null; // e.g. a page served over plain HTTP
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + seed.length);
  pkcs8.set(PKCS8_PREFIX);
  pkcs8.set(seed, PKCS8_PREFIX.length);
  try {
    return await subtle.importKey('pkcs8', pkcs8, ED25519, false, ['sign']);
  } catch {
    // NotSupportedError (or a TypeError in some older runtimes): no Ed25519 here.
    return null;
  } finally {
    pkcs8.fill(0);
  }
}
