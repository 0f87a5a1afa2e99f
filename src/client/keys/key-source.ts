/**
 * Where the entry cipher gets its keys (a SiteKeySource over the device's keyring):
 * - to write, the newest epoch held, but never one older than the site's current epoch on
 *   the server (read with GET /sites/:site, cached; the last known when the server cannot
 *   be reached, so appends made offline still seal): a member removed by a rotation must
 *   not be able to read what is written after it;
 * - to read, the epoch the entry names. A key of an epoch newer than any this device holds
 *   for the site is usually on its way (a rotation: the entries written under it can reach
 *   a reader before the envelope that carries it), so the entry waits for it, up to
 *   `NEW_KEY_WAIT_MS`, looking again with a growing delay; entries of that epoch wait
 *   together, and once a wait has run out the key is no longer waited for. Any other key
 *   not held is looked for (envelopes, keychain) at most every 5 s per missing key, so a
 *   log full of entries under a key this device will never get does not turn into a
 *   request per entry.
 */
import { DgError } from '../../protocol/errors.js';
import type { DatagroveClient } from '../client.js';
import type { SiteKeySource } from './entry-cipher.js';
import type { SiteKeyring } from './site-keyring.js';

const MISS_RETRY_MS = 5000;
/** How long an entry under a newer epoch than any held waits for its key. */
export const NEW_KEY_WAIT_MS = 10_000;
/** A pause that does not keep a Node process alive. */
const sleep = (ms: number) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms) as { unref?: () => void };
    t.unref?.();
  });

export class ManagedKeySource implements SiteKeySource {
  private readonly epochs = new Map<string, { epoch: number; at: number }>();
  private readonly misses = new Map<string, number>();
  /** Waits for keys of newer epochs, by `site#epoch`. */
  private readonly waits = new Map<string, Promise<Uint8Array | null>>();
  /** Newer epochs whose wait ran out: not waited for again. */
  private readonly gaveUp = new Set<string>();

  constructor(
    private readonly client: DatagroveClient,
    private readonly ring: SiteKeyring,
    /** Looks for keys this device lacks; never throws. */
    private readonly fetchKeys: () => Promise<void>,
    private readonly epochTtlMs: number,
  ) {}

  /** Records a site's current epoch learned elsewhere (e.g. this device just rotated it). */
  noteEpoch(site: string, epoch: number): void {
    this.epochs.set(site, { epoch, at: Date.now() });
  }

  private async serverEpoch(site: string, fresh = false): Promise<number> {
    const c = this.epochs.get(site);
    if (!fresh && c !== undefined && Date.now() - c.at < this.epochTtlMs) return c.epoch;
    try {
      const info = await this.client.siteInfo(site);
      this.noteEpoch(site, info.keyEpoch);
      return info.keyEpoch;
    } catch (err) {
      if (!(err instanceof DgError) || err.code !== 'UNAVAILABLE') throw err;
      return c?.epoch ?? this.ring.newest(site)?.epoch ?? 1;
    }
  }

  async writeKey(site: string): Promise<{ epoch: number; key: Uint8Array }> {
    let newest = this.ring.newest(site);
    let current = await this.serverEpoch(site);
    if (newest === undefined || newest.epoch < current) {
      await this.fetchKeys();
      newest = this.ring.newest(site);
      current = await this.serverEpoch(site, true);
    }
    if (newest === undefined) throw new DgError('FORBIDDEN', `site ${site}: this device holds no key of it`);
    if (newest.epoch < current) throw new DgError('UNAVAILABLE', `site ${site}: the key of epoch ${current} has not reached this device yet`);
    return newest;
  }

  async readKey(site: string, epoch: number): Promise<Uint8Array | null> {
    const have = this.ring.get(site, epoch);
    if (have !== undefined) return have;
    const k = `${site}#${epoch}`;
    if (epoch > (this.ring.newest(site)?.epoch ?? 0) && !this.gaveUp.has(k)) {
      let wait = this.waits.get(k);
      if (wait === undefined) {
        wait = this.waitForKey(site, epoch, k).finally(() => this.waits.delete(k));
        this.waits.set(k, wait);
      }
      return wait;
    }
    if (Date.now() - (this.misses.get(k) ?? 0) > MISS_RETRY_MS) {
      this.misses.set(k, Date.now());
      await this.fetchKeys();
    }
    return this.ring.get(site, epoch) ?? null;
  }

  private async waitForKey(site: string, epoch: number, k: string): Promise<Uint8Array | null> {
    const deadline = Date.now() + NEW_KEY_WAIT_MS;
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      await this.fetchKeys();
      const key = this.ring.get(site, epoch);
      if (key !== undefined) return key;
      const left = deadline - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(delay, left));
    }
    this.gaveUp.add(k);
    this.misses.set(k, Date.now());
    return null;
  }
}
