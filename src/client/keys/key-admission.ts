/**
 * Which offered site keys a device takes, whether they come in an envelope or from the
 * user's keychain: a key for an epoch up to the newest this device holds for the site, or
 * up to the site's key epoch on the server as read after the key arrived.
 *
 * Why that is the line: a rotation claims its epoch on the server (POST /sites/:site/rotated,
 * a compare-and-set) before it sends the key, so every legitimate key is at most the
 * server's epoch once it can be received. A key for an epoch above it was made up by
 * someone who could send keys or write the keychain — an admin since removed, a device
 * since revoked — and taking it would let them read what is sealed under it: writers seal
 * with the newest epoch held. Refused, it can do nothing. By induction every key held was
 * legitimate when it was taken, so keys up to the newest held need no server read.
 *
 * The server's word on its epoch is trusted at that moment (docs/security.md): a server that
 * raised it for a colluding removed member would let a planted key through.
 */
import { DgError } from '../../protocol/errors.js';
import type { ServerEpochs } from './server-epochs.js';
import { SiteKeyring } from './site-keyring.js';

export interface Refusal {
  site: string;
  epoch: number;
  /** The site's key epoch on the server when the key was refused; null when the site could not be read (no access). */
  server: number | null;
  why: string;
}

export interface Judged {
  /** The keys to take (the ring's `add` still refuses a different key for an epoch held). */
  take: SiteKeyring;
  refused: Refusal[];
  /** Sites whose keys above the newest held could not be judged now (the server was not reached), with why. */
  unsure: { site: string; error: DgError }[];
}

/** How many sites' epochs are read at once (a keychain restored on a new device holds many). */
const PARALLEL_READS = 8;

/**
 * Judges the keys of `offered` for a device holding `ring`. `mark` (from `epochs.mark()`) is
 * taken after the keys arrived (the envelope or the keychain was read): the server's epoch
 * is read after it.
 */
export async function judgeKeys(ring: SiteKeyring, epochs: ServerEpochs, offered: SiteKeyring, mark: number): Promise<Judged> {
  const out: Judged = { take: new SiteKeyring(), refused: [], unsure: [] };
  const sites = offered.siteIds();
  const judgeSite = async (site: string) => {
    const keys = offered.keysOf(site);
    const held = ring.newest(site)?.epoch ?? 0;
    // Epochs only grow on an honest server: one it counted before counts now.
    let limit = Math.max(held, epochs.known(site) ?? 0);
    if (keys.some((k) => k.epoch > limit)) {
      try {
        const server = await epochs.since(site, mark);
        for (const k of keys) if (k.epoch > Math.max(held, server)) out.refused.push({ site, epoch: k.epoch, server, why: `epoch ${k.epoch} is above the site's key epoch on the server (${server})` });
        limit = Math.max(held, server);
      } catch (err) {
        const e = err instanceof DgError ? err : new DgError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
        // No access to the site (any more): its keys above those held are of no use here.
        if (e.code === 'FORBIDDEN' || e.code === 'NOT_FOUND') {
          for (const k of keys) if (k.epoch > limit) out.refused.push({ site, epoch: k.epoch, server: null, why: `the site's key epoch cannot be read: ${e.message}` });
        } else {
          out.unsure.push({ site, error: e });
        }
      }
    }
    for (const k of keys) if (k.epoch <= limit) out.take.add(site, k.epoch, k.key);
  };
  for (let i = 0; i < sites.length; i += PARALLEL_READS) await Promise.all(sites.slice(i, i + PARALLEL_READS).map(judgeSite));
  return out;
}
