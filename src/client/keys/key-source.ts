/**
 * Where the entry cipher gets its keys (a SiteKeySource over the device's keyring):
 * - to write, the key of the newer of the site's current epoch on the server and the newest
 *   epoch held. The server's epoch is read with GET /sites/:site, cached for `epochTtlMs`
 *   (the last known when the server cannot be reached, so appends made offline still
 *   seal); when this device does not hold its key yet, keys are fetched and, if it is still
 *   missing, the append fails UNAVAILABLE: a member removed by a rotation must not be able
 *   to read what is written after it. Every key held was at most the server's epoch when it
 *   was taken (key-admission.ts), so the newest held is a legitimate one, and an epoch the
 *   server moves back does not bring an older key back into use.
 * - to read, the epoch the entry names. A key of an epoch newer than any this device holds
 *   for the site may be on its way (a rotation: the entries written under it can reach a
 *   reader before the envelope that carries it), but only if the server has counted that
 *   epoch: a rotation claims its epoch on the server before sending the key. So an epoch
 *   above the site's epoch on the server, read after the entry arrived (server-epochs.ts,
 *   at most one read a second per site), is answered null at once; one up to it waits for
 *   its key, up to `NEW_KEY_WAIT_MS`, looking again with a growing delay; entries of that
 *   epoch wait together, and once a wait has run out the key is no longer waited for. A
 *   member who writes entries naming made-up epochs thus delays readers by about a server
 *   read each, never by the wait. Any other key not held is looked for (envelopes,
 *   keychain) at most every 5 s per missing key, so a log full of entries under a key this
 *   device will never get does not turn into a request per entry.
 */
import { DgError } from '../../protocol/errors.js';
import type { SiteKeySource } from './entry-cipher.js';
import type { ServerEpochs } from './server-epochs.js';
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
  /** When each site's epoch was last read for writing (the read itself is in `epochs`). */
  private readonly readForWrite = new Map<string, number>();
  private readonly misses = new Map<string, number>();
  /** Waits for keys of newer epochs, by `site#epoch`. */
  private readonly waits = new Map<string, Promise<Uint8Array | null>>();
  /** Newer epochs whose wait ran out: not waited for again. */
  private readonly gaveUp = new Set<string>();

  constructor(
    private readonly epochs: ServerEpochs,
    private readonly ring: SiteKeyring,
    /** Looks for keys this device lacks; never throws. */
    private readonly fetchKeys: () => Promise<void>,
    private readonly epochTtlMs: number,
  ) {}

  /** Records a site's current epoch learned elsewhere (e.g. this device just rotated it). */
  noteEpoch(site: string, epoch: number): void {
    this.epochs.note(site, epoch);
    this.readForWrite.set(site, Date.now());
  }

  /** The site's epoch on the server for writing: cached, read again when older than the TTL or when `fresh`. */
  private async serverEpoch(site: string, fresh = false): Promise<number> {
    const known = this.epochs.known(site);
    const at = this.readForWrite.get(site);
    if (!fresh && known !== undefined && at !== undefined && Date.now() - at < this.epochTtlMs) return known;
    try {
      const epoch = await this.epochs.since(site);
      this.readForWrite.set(site, Date.now());
      return epoch;
    } catch (err) {
      if (!(err instanceof DgError) || err.code !== 'UNAVAILABLE') throw err;
      return known ?? this.ring.newest(site)?.epoch ?? 1;
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
    // max(server, newest held): the newest held when it is at least the server's epoch.
    if (newest.epoch < current) throw new DgError('UNAVAILABLE', `site ${site}: the key of epoch ${current} has not reached this device yet`);
    return newest;
  }

  async readKey(site: string, epoch: number): Promise<Uint8Array | null> {
    const mark = this.epochs.mark();
    const have = this.ring.get(site, epoch);
    if (have !== undefined) return have;
    const k = `${site}#${epoch}`;
    if (epoch > (this.ring.newest(site)?.epoch ?? 0) && !this.gaveUp.has(k)) {
      if (!(await this.mayExist(site, epoch, mark))) {
        this.misses.set(k, Date.now());
        return this.ring.get(site, epoch) ?? null;
      }
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

  /**
   * Whether the server had counted `epoch` of `site` after `mark` (when the entry naming it
   * arrived). An epoch up to one read before counts at once (epochs only grow); a server
   * that cannot be asked leaves it possible (the wait is bounded anyway).
   */
  private async mayExist(site: string, epoch: number, mark: number): Promise<boolean> {
    if (epoch <= (this.epochs.known(site) ?? 0)) return true;
    try {
      return epoch <= (await this.epochs.since(site, mark));
    } catch {
      return true;
    }
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
