/**
 * The user key: one per user, made on the user's first device and carried to the others
 * (an envelope after approval, BIP39 words, or a QR code). It is 32 random bytes, the seed;
 * everything else is derived from it with HKDF-SHA256 (salt "datagrove-user-key-v1"):
 * - info "sign": the Ed25519 secret key that signs device certificates and user key
 *   statements (its public half is published as a version of the user's key chain);
 * - info "root": the root secret, from which the keychain key is derived (keychain.ts).
 * Deriving both from one seed makes the 24 words (or the QR code) the whole backup.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { entropyToMnemonic, mnemonicToEntropy, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { DgError } from '../../protocol/errors.js';
import { b64urlDecode, b64urlEncode, bytesEqual, concatBytes, randomBytes, utf8 } from '../bytes.js';
import { derive32, sha256Bytes } from '../crypto/kdf.js';

export const SEED_BYTES = 32;
/** The prefix of the QR payload (and its checksum label). */
export const QR_PREFIX = 'dgk1:';
const CHECKSUM_BYTES = 4;
const SALT = 'datagrove-user-key-v1';

function checksum(seed: Uint8Array): Uint8Array {
  return sha256Bytes(concatBytes([utf8(QR_PREFIX), seed])).subarray(0, CHECKSUM_BYTES);
}

export class UserKey {
  /** base64url of the raw Ed25519 public key (published as a user key version). */
  readonly publicKey: string;
  private readonly signSecret: Uint8Array;
  private readonly root: Uint8Array;

  private constructor(private readonly seed: Uint8Array) {
    this.signSecret = derive32(seed, SALT, 'sign');
    this.root = derive32(seed, SALT, 'root');
    this.publicKey = b64urlEncode(ed25519.getPublicKey(this.signSecret));
  }

  /** A new random user key (the user's first device). */
  static generate(): UserKey {
    return new UserKey(randomBytes(SEED_BYTES));
  }

  static fromSeed(seed: Uint8Array): UserKey {
    if (seed.length !== SEED_BYTES) throw new DgError('BAD_REQUEST', `user key: the seed must be ${SEED_BYTES} bytes`);
    return new UserKey(new Uint8Array(seed));
  }

  /**
   * The key from its 24 BIP39 words (English list; case, extra spaces and line breaks are
   * ignored); BAD_REQUEST when a word is unknown or the checksum fails.
   *
   * @example
   * ```ts
   * const key = UserKey.fromWords(words);
   * ```
   */
  static fromWords(words: string): UserKey {
    const normalized = words.trim().toLowerCase().split(/\s+/).join(' ');
    if (normalized.split(' ').length !== 24 || !validateMnemonic(normalized, wordlist)) {
      throw new DgError('BAD_REQUEST', 'words: not 24 valid BIP39 words (English), or the checksum does not match');
    }
    return new UserKey(mnemonicToEntropy(normalized, wordlist));
  }

  /** The key from its QR payload (`dgk1:` + base64url(seed ‖ 4-byte checksum)); BAD_REQUEST when malformed. */
  static fromQrPayload(text: string): UserKey {
    const t = text.trim();
    const raw = t.startsWith(QR_PREFIX) ? b64urlDecode(t.slice(QR_PREFIX.length)) : null;
    if (raw?.length !== SEED_BYTES + CHECKSUM_BYTES) throw new DgError('BAD_REQUEST', 'QR payload: not a Datagrove user key');
    const seed = raw.subarray(0, SEED_BYTES);
    if (!bytesEqual(checksum(seed), raw.subarray(SEED_BYTES))) throw new DgError('BAD_REQUEST', 'QR payload: checksum does not match');
    return new UserKey(new Uint8Array(seed));
  }

  /** The 24 BIP39 words of the seed: write them down, they restore the key on any device. */
  toWords(): string {
    return entropyToMnemonic(this.seed, wordlist);
  }

  /** The compact string a QR code carries: `dgk1:` + base64url(seed ‖ first 4 bytes of SHA-256("dgk1:" ‖ seed)). */
  toQrPayload(): string {
    return QR_PREFIX + b64urlEncode(concatBytes([this.seed, checksum(this.seed)]));
  }

  /** A copy of the seed (to seal it at rest or in an envelope; never send it in the clear). */
  seedBytes(): Uint8Array {
    return new Uint8Array(this.seed);
  }

  /** The root secret's derived key for `purpose` (32 bytes). */
  deriveKey(purpose: string): Uint8Array {
    return derive32(this.root, 'datagrove-user-root-v1', purpose);
  }

  sign(message: Uint8Array): Uint8Array {
    return ed25519.sign(message, this.signSecret);
  }
}
