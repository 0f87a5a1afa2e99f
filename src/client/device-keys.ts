/**
 * The device's identity: an Ed25519 signing key (its raw public key, base64url, is the
 * device id) and an X25519 box key (for envelopes), which the signing key signs. Generated on
 * the device; the secret keys never leave it (the SDK sends only public keys and signatures).
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { DgError } from '../protocol/errors.js';
import { boxKeyStatement } from '../protocol/key-statements.js';
import { b64urlDecode, b64urlEncode, utf8 } from './bytes.js';
import { Ed25519Signer } from './crypto/ed25519-sign.js';
import { verifyEd25519 } from './crypto/jws.js';
import { withLock, type JsonValue, type KeyStorage } from './key-storage.js';

/** The storage name of the device keys. */
export const DEVICE_KEYS_NAME = 'datagrove.device';
const AUTH_PREFIX = 'datagrove-auth-v1:';

export class DeviceKeys {
  /** base64url of the raw Ed25519 public key (43 chars). */
  readonly deviceId: string;
  /** base64url of the raw X25519 public key. */
  readonly boxKey: string;
  readonly publicKey: Uint8Array;
  private readonly signer: Ed25519Signer;

  private constructor(
    private readonly signSecret: Uint8Array,
    private readonly boxSecretKey: Uint8Array,
  ) {
    this.publicKey = ed25519.getPublicKey(signSecret);
    this.signer = new Ed25519Signer(signSecret);
    this.deviceId = b64urlEncode(this.publicKey);
    this.boxKey = b64urlEncode(x25519.getPublicKey(boxSecretKey));
  }

  /**
   * New random keys.
   *
   * @example
   * ```ts
   * import { DeviceKeys } from 'datagrove/client';
   * const keys = DeviceKeys.generate();
   * console.log(keys.deviceId.length); // 43
   * ```
   */
  static generate(): DeviceKeys {
    return new DeviceKeys(ed25519.utils.randomSecretKey(), x25519.utils.randomSecretKey());
  }

  /** Keys from their stored form (`toJSON()`); throws BAD_REQUEST when malformed. */
  static fromJSON(value: JsonValue): DeviceKeys {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new DgError('BAD_REQUEST', 'device keys: not an object');
    const sign = typeof value.sign === 'string' ? b64urlDecode(value.sign) : null;
    const box = typeof value.box === 'string' ? b64urlDecode(value.box) : null;
    if (sign?.length !== 32 || box?.length !== 32) throw new DgError('BAD_REQUEST', 'device keys: malformed secret key');
    return new DeviceKeys(sign, box);
  }

  /**
   * Loads the device keys from `storage`, creating and saving new ones the first time.
   *
   * @example
   * ```ts
   * import { DeviceKeys, MemoryKeyStorage } from 'datagrove/client';
   * const keys = await DeviceKeys.loadOrCreate(new MemoryKeyStorage());
   * ```
   */
  static async loadOrCreate(storage: KeyStorage): Promise<DeviceKeys> {
    const loadOrMake = async (): Promise<DeviceKeys> => {
      const stored = await storage.load(DEVICE_KEYS_NAME);
      if (stored !== null) return DeviceKeys.fromJSON(stored);
      const keys = DeviceKeys.generate();
      await storage.save(DEVICE_KEYS_NAME, keys.toJSON());
      return keys;
    };
    // Clients sharing the storage (tabs, processes) that start at once must not make a
    // device each, the last overwriting the others' keys: they take turns where they can.
    return withLock(storage, DEVICE_KEYS_NAME, loadOrMake);
  }

  /** The stored form, with the SECRET keys: keep it only in a KeyStorage. */
  toJSON(): { sign: string; box: string } {
    return { sign: b64urlEncode(this.signSecret), box: b64urlEncode(this.boxSecretKey) };
  }

  /** An Ed25519 signature of `message`, made here and now (@noble/curves, about 0.5 ms). */
  sign(message: Uint8Array): Uint8Array {
    return ed25519.sign(message, this.signSecret);
  }

  /**
   * The same signature as `sign`, through WebCrypto where the runtime has Ed25519 (off the
   * main thread in Node, natively in browsers; the secret key imported once, not
   * extractable), else by @noble/curves. Log entries are signed with it: many signed at
   * once do not hold up the event loop.
   *
   * @example
   * ```ts
   * import { DeviceKeys, verifyDeviceSignature } from 'datagrove/client';
   * const keys = DeviceKeys.generate();
   * const msg = new TextEncoder().encode('hi');
   * verifyDeviceSignature(keys.deviceId, msg, await keys.signAsync(msg)); // true
   * ```
   */
  signAsync(message: Uint8Array): Promise<Uint8Array> {
    return this.signer.sign(message);
  }

  /** The challenge signature of PROTOCOL.md: Ed25519 over UTF-8 "datagrove-auth-v1:" + nonce, base64url. */
  signChallenge(nonce: string): string {
    return b64urlEncode(this.sign(utf8(AUTH_PREFIX + nonce)));
  }

  /**
   * The signature of this device's box key statement (`boxSig` on the wire), base64url:
   * other devices seal the user key to the box key only when it verifies (`verifyBoxSig`).
   */
  get boxSig(): string {
    return b64urlEncode(this.sign(utf8(boxKeyStatement(this.deviceId, this.boxKey))));
  }

  /** The X25519 shared secret with another box key (for envelope encryption). */
  boxSharedSecret(peerBoxKey: Uint8Array): Uint8Array {
    return x25519.getSharedSecret(this.boxSecretKey, peerBoxKey);
  }
}

/**
 * Verifies an Ed25519 signature by a device id (base64url public key).
 *
 * @example
 * ```ts
 * import { DeviceKeys, verifyDeviceSignature } from 'datagrove/client';
 * const keys = DeviceKeys.generate();
 * const msg = new TextEncoder().encode('hi');
 * verifyDeviceSignature(keys.deviceId, msg, keys.sign(msg)); // true
 * ```
 */
export function verifyDeviceSignature(deviceId: string, message: Uint8Array, signature: Uint8Array): boolean {
  return verifyEd25519(deviceId, message, signature);
}

/**
 * Whether `boxSig` is `device`'s signature of its box key statement for `boxKey`: the box key
 * is the device's own, not one put in its place by whoever relayed it.
 *
 * @example
 * ```ts
 * import { DeviceKeys, verifyBoxSig } from 'datagrove/client';
 * const keys = DeviceKeys.generate();
 * verifyBoxSig(keys.deviceId, keys.boxKey, keys.boxSig); // true
 * ```
 */
export function verifyBoxSig(device: string, boxKey: string, boxSig: string): boolean {
  const sig = b64urlDecode(boxSig);
  return sig !== null && verifyDeviceSignature(device, utf8(boxKeyStatement(device, boxKey)), sig);
}

const FINGERPRINT_PREFIX = 'datagrove-device-fingerprint-v1:';
const FINGERPRINT_GROUPS = 5;
/** Hash bytes per group: 40 bits taken mod 10000, so the bias toward low digits is negligible. */
const GROUP_BYTES = 5;

/**
 * A device id as people can compare it: 20 digits in 5 groups of 4 (about 66 bits). Group i
 * is bytes 5i to 5i+4 of SHA-256(UTF-8 "datagrove-device-fingerprint-v1:" + device id), read
 * as a big-endian number, mod 10000. An app approving a new device shows the request's
 * `fingerprint` and asks the person to compare all of it with what the new device shows
 * (`client.fingerprint`): a server can invent a device, not one with the same fingerprint.
 *
 * @example
 * ```ts
 * import { DeviceKeys, deviceFingerprint } from 'datagrove/client';
 * deviceFingerprint(DeviceKeys.generate().deviceId); // e.g. "0412 9931 5170 2263 8845"
 * ```
 */
export function deviceFingerprint(device: string): string {
  const h = sha256(utf8(FINGERPRINT_PREFIX + device));
  const groups: string[] = [];
  for (let i = 0; i < FINGERPRINT_GROUPS; i++) {
    let n = 0;
    for (let j = 0; j < GROUP_BYTES; j++) n = n * 256 + h[GROUP_BYTES * i + j]!;
    groups.push(String(n % 10_000).padStart(4, '0'));
  }
  return groups.join(' ');
}
