/**
 * End-to-end encryption of log entries (a PayloadCodec): every payload is sealed with
 * AES-256-GCM under the site's newest key epoch this device holds.
 *
 * Sealed payload: | 0 | 1 | version 0x01 |
 *                 | 1 | 4 | key epoch, big-endian |
 *                 | 5 | 12 | random nonce |
 *                 | 17 | … | ciphertext ‖ 16-byte tag |
 * AAD (UTF-8): "datagrove-entry-v1\n" site "\n" log "\n" epoch "\n" origin, where origin is
 * "device.stream.seq" from the SDK header ("-" for none). So an entry cannot be moved to
 * another site or log, relabelled with another epoch, or given another writer's header
 * without failing to open. (Its index is not bound: it is not known when the entry is sealed;
 * order is the log's, which the server decides.)
 */
import { DgError } from '../../protocol/errors.js';
import { randomBytes, utf8 } from '../bytes.js';
import { AesKey, NONCE_BYTES, TAG_BYTES } from '../crypto/aes-gcm.js';
import type { PayloadCodec, PayloadContext } from '../crypto/payload-codec.js';

export const ENTRY_CIPHER_VERSION = 1;
const HEADER = 1 + 4 + NONCE_BYTES;

/** Where the cipher gets keys (keyring + server checks: the KeyManager). */
export interface SiteKeySource {
  /** The epoch and key to write `site` with now; rejects when there is none yet. */
  writeKey(site: string): Promise<{ epoch: number; key: Uint8Array }>;
  /** The key of `epoch` (fetching it once if missing); null when this device does not hold it. */
  readKey(site: string, epoch: number): Promise<Uint8Array | null>;
}

function aad(ctx: PayloadContext, epoch: number): Uint8Array {
  const o = ctx.origin;
  return utf8(`datagrove-entry-v1\n${ctx.site}\n${ctx.log}\n${epoch}\n${o === null ? '-' : `${o.device}.${o.stream}.${o.seq}`}`);
}

/** The key epoch of a sealed payload, or null when it is not one. */
export function sealedEpoch(sealed: Uint8Array): number | null {
  if (sealed.length < HEADER + TAG_BYTES || sealed[0] !== ENTRY_CIPHER_VERSION) return null;
  return ((sealed[1]! << 24) >>> 0) + (sealed[2]! << 16) + (sealed[3]! << 8) + sealed[4]!;
}

export class EntryCipher implements PayloadCodec {
  readonly overhead = HEADER + TAG_BYTES;
  /** Imported keys by raw key object: importing costs more than sealing a small entry. */
  private readonly imported = new WeakMap<Uint8Array, Promise<AesKey>>();

  constructor(private readonly keys: SiteKeySource) {}

  private aesKey(raw: Uint8Array): Promise<AesKey> {
    let k = this.imported.get(raw);
    if (k === undefined) {
      k = AesKey.import(raw);
      this.imported.set(raw, k);
    }
    return k;
  }

  async seal(payload: Uint8Array, ctx: PayloadContext): Promise<Uint8Array> {
    const { epoch, key } = await this.keys.writeKey(ctx.site);
    const nonce = randomBytes(NONCE_BYTES);
    const ct = await (await this.aesKey(key)).seal(nonce, payload, aad(ctx, epoch));
    const out = new Uint8Array(HEADER + ct.length);
    out[0] = ENTRY_CIPHER_VERSION;
    out[1] = (epoch >>> 24) & 0xff;
    out[2] = (epoch >>> 16) & 0xff;
    out[3] = (epoch >>> 8) & 0xff;
    out[4] = epoch & 0xff;
    out.set(nonce, 5);
    out.set(ct, HEADER);
    return out;
  }

  async open(sealed: Uint8Array, ctx: PayloadContext): Promise<Uint8Array> {
    const epoch = sealedEpoch(sealed);
    if (epoch === null) throw new DgError('BAD_REQUEST', 'entry: not an encrypted payload');
    const key = await this.keys.readKey(ctx.site, epoch);
    if (key === null) throw new DgError('FORBIDDEN', `entry: this device holds no key for epoch ${epoch} of site ${ctx.site}`);
    return (await this.aesKey(key)).open(sealed.subarray(5, HEADER), sealed.subarray(HEADER), aad(ctx, epoch));
  }
}
