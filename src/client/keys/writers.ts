/**
 * Who wrote an entry. A signed entry (`signed: true` on a `Log` entry) proves the device
 * that wrote it; this maps that device to a member of the site, with the member's rights:
 *
 * - a user, when the device's certificate verifies under that user's key chain (checked
 *   link by link and against the pin, directory.ts), and the server lists the user as the
 *   site's owner or a member;
 * - an email, when a server attestation key that is not revoked attests the device for an
 *   email the server lists as a member (a grant to an email not yet joined).
 *
 * Which users are members is the server's word (GET /sites/:site/members), as it is for
 * whom a new site key goes to; who the device belongs to is not: a server cannot make
 * another user's key chain certify its device. A device the chains of two members both
 * certify is nobody's (either could have certified the other's device). The device's revocation is also the
 * server's word (a revoked device's certificate is no longer listed), except for devices
 * this device revoked itself, which are never anyone's writer here.
 *
 * Answers are cached per site for WRITERS_TTL_MS; a device not found refreshes the site's
 * list at most every WRITERS_MISS_REFRESH_MS, so a member who just joined is found
 * shortly after, and an unknown device costs no more than that.
 */
import type { Right } from '../../protocol/ids.js';
import { attestedDevices } from './directory.js';
import type { KeyContext } from './key-context.js';

/** A member of the site that a device writes as. */
export type Writer = { user: string; rights: Right[] } | { email: string; rights: Right[] };

/** How long a site's device → writer map is used before it is built again, ms. */
export const WRITERS_TTL_MS = 60_000;
/** A device not in the map rebuilds it, at most this often per site, ms. */
export const WRITERS_MISS_REFRESH_MS = 10_000;
/** Sites whose maps are kept (the least recently used is dropped beyond). */
const MAX_SITES = 64;

interface SiteWriters {
  builtAt: number;
  byDevice: Map<string, Writer>;
}

type Context = Pick<KeyContext, 'api' | 'verified' | 'serverKeys' | 'revokedHere'>;

export class WriterDirectory {
  readonly #sites = new Map<string, SiteWriters>();
  readonly #building = new Map<string, Promise<SiteWriters>>();

  constructor(
    private readonly ctx: Context,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The member that `device` writes as on `site`, or null when it is none (not a member's
   * certified or attested device, revoked, or unknown). Throws what the directory calls
   * throw (e.g. FORBIDDEN when this user has no access to the site).
   */
  async writerOf(site: string, device: string): Promise<Writer | null> {
    if (this.ctx.revokedHere(device)) return null;
    let w = this.#sites.get(site);
    const now = this.now();
    if (w === undefined || now - w.builtAt >= WRITERS_TTL_MS || (!w.byDevice.has(device) && now - w.builtAt >= WRITERS_MISS_REFRESH_MS)) {
      w = await this.#build(site);
    }
    this.#sites.delete(site);
    this.#sites.set(site, w);
    return w.byDevice.get(device) ?? null;
  }

  /** Forgets what is known of `site` (or of every site): the next lookup asks again. */
  forget(site?: string): void {
    if (site === undefined) this.#sites.clear();
    else this.#sites.delete(site);
  }

  #build(site: string): Promise<SiteWriters> {
    let p = this.#building.get(site);
    if (p === undefined) {
      p = this.#load(site).finally(() => this.#building.delete(site));
      this.#building.set(site, p);
    }
    return p;
  }

  async #load(site: string): Promise<SiteWriters> {
    const members = await this.ctx.api.members(site);
    const byDevice = new Map<string, Writer>();
    const users = new Map(members.members.map((m) => [m.user, m.rights]));
    if (!users.has(members.owner)) users.set(members.owner, ['read', 'write', 'admin']);
    // A certificate is a user key's word, not the device's: a device the chains of two users
    // both certify (one of them certified another member's device) is neither's.
    const ambiguous = new Set<string>();
    for (const [user, rights] of users) {
      const v = await this.ctx.verified({ user }).catch(() => null);
      for (const d of v?.devices ?? []) {
        const before = byDevice.get(d.device);
        if (before !== undefined && 'user' in before && before.user !== user) ambiguous.add(d.device);
        byDevice.set(d.device, { user, rights });
      }
    }
    for (const d of ambiguous) byDevice.delete(d);
    if (members.emails.length > 0) {
      const serverKeys = await this.ctx.serverKeys();
      for (const { email, rights } of members.emails) {
        for (const d of await attestedDevices(this.ctx.api, email, serverKeys).catch(() => [])) {
          // A device certified for a user is that user's, whatever an attestation says.
          if (!byDevice.has(d.device) && !ambiguous.has(d.device)) byDevice.set(d.device, { email, rights });
        }
      }
    }
    const built = { builtAt: this.now(), byDevice };
    this.#sites.set(site, built);
    while (this.#sites.size > MAX_SITES) {
      const oldest = this.#sites.keys().next();
      if (oldest.done === true) break;
      this.#sites.delete(oldest.value);
    }
    return built;
  }
}
