/**
 * The site keys this device holds: for each site, a 32-byte AES-256-GCM key per key epoch
 * (epochs start at 1 and grow by one per rotation, as GET /sites/:site `keyEpoch` counts
 * them). A key once held for (site, epoch) is never replaced: a different key offered for
 * the same epoch is refused and reported, so nobody can swap the key of past entries.
 */
import { b64urlDecode, b64urlEncode, bytesEqual } from '../bytes.js';
import type { JsonValue } from '../key-storage.js';

export type AddResult = 'new' | 'same' | 'conflict';

/** The largest key epoch: the header of a sealed entry holds it in 4 bytes. */
export const MAX_KEY_EPOCH = 0xffff_ffff;

export class SiteKeyring {
  private readonly sites = new Map<string, Map<number, Uint8Array>>();

  add(site: string, epoch: number, key: Uint8Array): AddResult {
    // Sealed entries carry the epoch in 4 bytes: a larger one could seal what nobody opens.
    if (!Number.isSafeInteger(epoch) || epoch < 1 || epoch > MAX_KEY_EPOCH || key.length !== 32) return 'conflict';
    let m = this.sites.get(site);
    if (m === undefined) {
      m = new Map();
      this.sites.set(site, m);
    }
    const have = m.get(epoch);
    if (have !== undefined) return bytesEqual(have, key) ? 'same' : 'conflict';
    m.set(epoch, new Uint8Array(key));
    return 'new';
  }

  get(site: string, epoch: number): Uint8Array | undefined {
    return this.sites.get(site)?.get(epoch);
  }

  /** The newest epoch held for `site` and its key. */
  newest(site: string): { epoch: number; key: Uint8Array } | undefined {
    const m = this.sites.get(site);
    if (m === undefined || m.size === 0) return undefined;
    const epoch = Math.max(...m.keys());
    return { epoch, key: m.get(epoch) as Uint8Array };
  }

  /** Every (epoch, key) of `site`, oldest first. */
  keysOf(site: string): { epoch: number; key: Uint8Array }[] {
    const m = this.sites.get(site);
    return m === undefined ? [] : [...m.entries()].sort(([a], [b]) => a - b).map(([epoch, key]) => ({ epoch, key }));
  }

  siteIds(): string[] {
    return [...this.sites.keys()];
  }

  /** Adds every key of `other`; the (site, epoch) pairs that were new, and those that conflicted. */
  merge(other: SiteKeyring): { added: number; conflicts: string[] } {
    let added = 0;
    const conflicts: string[] = [];
    for (const site of other.siteIds()) {
      for (const { epoch, key } of other.keysOf(site)) {
        const r = this.add(site, epoch, key);
        if (r === 'new') added++;
        else if (r === 'conflict') conflicts.push(`${site}#${epoch}`);
      }
    }
    return { added, conflicts };
  }

  toJSON(): { [site: string]: { [epoch: string]: string } } {
    const out: { [site: string]: { [epoch: string]: string } } = {};
    for (const site of this.siteIds()) {
      out[site] = {};
      for (const { epoch, key } of this.keysOf(site)) out[site][String(epoch)] = b64urlEncode(key);
    }
    return out;
  }

  /** The ring of a `toJSON()` value; malformed parts are skipped. */
  static fromJSON(v: JsonValue | unknown): SiteKeyring {
    const ring = new SiteKeyring();
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return ring;
    for (const [site, epochs] of Object.entries(v as Record<string, unknown>)) {
      if (epochs === null || typeof epochs !== 'object') continue;
      for (const [e, k] of Object.entries(epochs as Record<string, unknown>)) {
        const key = typeof k === 'string' ? b64urlDecode(k) : null;
        if (key !== null) ring.add(site, Number(e), key);
      }
    }
    return ring;
  }
}
