/**
 * Who may lease what: answers of auth (dg.auth.access) cached per (device, site, log) until
 * they expire, age past `ttlMs`, or the access of that (user, site) changes (a revocation
 * on dg.tail.revoke, a join on dg.tail.access or through `attest` on this node).
 *
 * Guarantees:
 * - An answer holds for the one log it was asked for. A user's rights differ from log to log
 *   (a read grant on every log and a write grant on one), so an answer is never reused for
 *   another log of the site, nor is a joined grant's access: the next lease asks auth.
 * - A positive answer is cached; a negative one never is (a grant may be joined over HTTP
 *   at any time), so `needproof` always reflects auth's current view.
 * - A positive answer is trusted for at most `ttlMs` (when the grant has no expiry, too):
 *   a change of access whose bus message this node missed shows at the next lease after that.
 * - An answer that was in flight while the access of its (user, site) changed is not
 *   trusted: the question is asked again.
 * - After a (user, site) gained access, lease tokens of that pair issued before then are not
 *   taken as proof (they may state fewer rights than the user holds now): auth is asked.
 * - Auth unreachable → DgError UNAVAILABLE; an error reply of auth keeps its code.
 * - At most `max` answers are kept (oldest dropped first), and as many recent gains of access.
 */
import type { Bus } from '../bus/bus.js';
import { SUBJECTS, type AccessReply, type AccessRequest, type JoinReply, type JoinRequest } from '../protocol/bus-messages.js';
import { DgError, isErrorCode } from '../protocol/errors.js';
import { RIGHTS, type Right } from '../protocol/ids.js';
import type { AccessGrant } from './live-log.js';

interface Cached extends AccessGrant {
  user: string;
  site: string;
  /** When auth was asked (ms): the answer is trusted until `ttlMs` after. */
  askedAt: number;
}

export interface AccessOptions {
  /** Timeout of a request to auth. */
  timeoutMs: number;
  /** Cached answers kept at most, and gains of access remembered at most. */
  max: number;
  /** How long an answer is trusted before auth is asked again. */
  ttlMs: number;
  /** How long a gain of access is remembered: longer than any lease token lives. */
  keepMs: number;
}

/** The key of a (user, site) pair. */
function pairKey(user: string, site: string): string {
  return `${user}\u0000${site}`;
}

export interface JoinResult {
  site: string;
  logs: string[];
  rights: Right[];
}

function rightsOf(value: unknown): Right[] | null {
  if (!Array.isArray(value)) return null;
  const out = value.filter((r): r is Right => (RIGHTS as readonly unknown[]).includes(r));
  return out.length === value.length ? out : null;
}

function logsOf(value: unknown): string[] | null {
  return Array.isArray(value) && value.every((l) => typeof l === 'string') ? (value as string[]) : null;
}

function expiresOf(value: unknown): number | null | undefined {
  if (value === null) return null;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Turns an `{ok:false, error}` reply (or a malformed one) into a DgError. */
function replyError(reply: unknown, what: string): DgError {
  const e = (reply as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (e !== undefined && isErrorCode(e.code) && e.code !== 'INTERNAL') {
    return new DgError(e.code, typeof e.message === 'string' ? e.message : `${what} refused`);
  }
  return new DgError('UNAVAILABLE', `${what} failed`, { cause: reply });
}

export class AccessControl {
  readonly #cache = new Map<string, Cached>();
  readonly #byUserSite = new Map<string, Set<string>>();
  readonly #asking = new Map<string, Promise<AccessGrant | null>>();
  /**
   * `user\0site` → when its access last grew (ms; the later of this node's clock and auth's),
   * oldest first: lease tokens of the pair issued by then may understate it.
   */
  readonly #grown = new Map<string, number>();
  /** Lease tokens issued at or before this (ms) are not taken for any pair (gains forgotten for room). */
  #grownWatermark = Number.NEGATIVE_INFINITY;
  /** Bumped by every revocation of cached access. */
  #revocations = 0;
  /** Bumped by every change of cached access (revocations and gains). */
  #changes = 0;

  constructor(
    private readonly bus: Bus,
    private readonly options: AccessOptions,
  ) {}

  /** The device's access to (site, log), or null when it has none (needproof). */
  async check(user: string, device: string, site: string, log: string, now = Date.now()): Promise<AccessGrant | null> {
    const key = `${device}\u0000${site}\u0000${log}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      if ((hit.expiresAt !== null && hit.expiresAt <= now) || now - hit.askedAt >= this.options.ttlMs) this.#drop(key);
      else if (hit.user === user) return hit;
    }
    let asking = this.#asking.get(key);
    if (asking === undefined) {
      asking = this.#ask({ user, device, site, log }, key).finally(() => this.#asking.delete(key));
      this.#asking.set(key, asking);
    }
    return asking;
  }

  /**
   * Verifies a grant with auth (dg.auth.join). Its answer is not cached: the grant is one of
   * the user's grants on the site, and the rights on a log come from all of them (auth's
   * answer to the next lease). The caller reports the gain (`grew`).
   */
  async join(user: string, device: string, grant: string): Promise<JoinResult> {
    const reply = await this.#request<JoinReply>(SUBJECTS.authJoin, { user, device, grant } satisfies JoinRequest);
    if (reply === null || typeof reply !== 'object' || reply.ok !== true) throw replyError(reply, 'join');
    const rights = rightsOf(reply.rights);
    const logs = logsOf(reply.logs);
    const expiresAt = expiresOf(reply.expiresAt);
    if (typeof reply.site !== 'string' || rights === null || logs === null || expiresAt === undefined) throw replyError(null, 'join');
    return { site: reply.site, logs, rights };
  }

  /** Access of (user, site) was revoked: its cached answers go, and the next lease asks auth. */
  dropUserSite(user: string, site: string): void {
    this.#revocations++;
    this.#forget(user, site);
  }

  /** Forgets every cached access of a device (revoked). */
  dropDevice(device: string): void {
    this.#revocations++;
    this.#changes++;
    const prefix = `${device}\u0000`;
    for (const k of [...this.#cache.keys()]) if (k.startsWith(prefix)) this.#drop(k);
  }

  /**
   * Access of (user, site) grew (a grant was joined, at `authAt` on auth's clock when known):
   * its cached answers go, and lease tokens of the pair issued by then prove nothing more.
   */
  grew(user: string, site: string, authAt = Number.NEGATIVE_INFINITY, now = Date.now()): void {
    this.#forget(user, site);
    const key = pairKey(user, site);
    this.#grown.delete(key);
    this.#grown.set(key, Math.max(now, authAt));
    while (this.#grown.size > this.options.max) {
      const oldest = this.#grown.entries().next();
      if (oldest.done === true) break;
      this.#grown.delete(oldest.value[0]);
      this.#grownWatermark = Math.max(this.#grownWatermark, oldest.value[1]);
    }
  }

  /**
   * Whether a lease token of (user, site) issued at `iatSec` predates a gain of that access:
   * its rights may be fewer than the user's now, so auth must be asked. (`iat` has whole
   * seconds: a token of the same second as the gain counts as older.)
   */
  predatesGain(user: string, site: string, iatSec: number): boolean {
    const issued = iatSec * 1000;
    if (issued <= this.#grownWatermark) return true;
    const at = this.#grown.get(pairKey(user, site));
    return at !== undefined && issued <= at;
  }

  /**
   * Forgets cached answers older than `ttlMs` (no lookup would take them: a node that served
   * many logs once would otherwise hold their answers until `max`), and gains of access
   * older than any lease token that could predate them.
   */
  prune(now = Date.now()): void {
    // Oldest first: answers are stored in the order they were asked, near enough (one asked
    // earlier but answered later waits for the next prune, or its own lookup, to go).
    for (const [k, e] of this.#cache) {
      if (now - e.askedAt < this.options.ttlMs) break;
      this.#drop(k);
    }
    const keep = this.options.keepMs;
    if (now - this.#grownWatermark >= keep) this.#grownWatermark = Number.NEGATIVE_INFINITY;
    for (const [k, at] of this.#grown) {
      if (now - at < keep) break;
      this.#grown.delete(k);
    }
  }

  get size(): number {
    return this.#cache.size;
  }

  /** Counts the revocations seen: a caller that checked access can tell whether one came since. */
  get generation(): number {
    return this.#revocations;
  }

  /** Counts every change of access seen (revocations and gains), likewise. */
  get changes(): number {
    return this.#changes;
  }

  /**
   * A request to auth over the bus. Its failures (no responder, a timeout) become
   * UNAVAILABLE "auth unreachable": the bus's own message names internal subjects, which
   * stay in the cause, for the log.
   */
  async #request<T>(subject: string, message: unknown): Promise<T> {
    try {
      return await this.bus.request<T>(subject, message, { timeoutMs: this.options.timeoutMs });
    } catch (err) {
      throw new DgError('UNAVAILABLE', 'auth unreachable; retry shortly', { cause: err });
    }
  }

  async #ask(req: AccessRequest, key: string): Promise<AccessGrant | null> {
    for (let attempt = 0; ; attempt++) {
      const before = this.#changes;
      const askedAt = Date.now();
      const reply = await this.#request<AccessReply>(SUBJECTS.authAccess, req);
      if (reply === null || typeof reply !== 'object' || reply.ok !== true) throw replyError(reply, 'access check');
      if (reply.allowed !== true) return null;
      const rights = rightsOf(reply.rights);
      const logs = logsOf(reply.logs);
      const expiresAt = expiresOf(reply.expiresAt);
      if (rights === null || logs === null || expiresAt === undefined) throw replyError(null, 'access check');
      const covers = logs.includes('*') || logs.includes(req.log);
      if (rights.length === 0 || !covers) return null;
      const answer: Cached = { user: req.user, site: req.site, rights, expiresAt, askedAt };
      if (this.#changes === before) {
        this.#store(key, answer);
        return answer;
      }
      if (attempt >= 2) return answer;
    }
  }

  /** Drops the cached answers of (user, site); answers in flight for them are asked again. */
  #forget(user: string, site: string): void {
    this.#changes++;
    const keys = this.#byUserSite.get(pairKey(user, site));
    if (keys !== undefined) for (const k of [...keys]) this.#drop(k);
  }

  #store(key: string, entry: Cached): void {
    this.#drop(key);
    this.#cache.set(key, entry);
    const us = pairKey(entry.user, entry.site);
    let keys = this.#byUserSite.get(us);
    if (keys === undefined) this.#byUserSite.set(us, (keys = new Set()));
    keys.add(key);
    while (this.#cache.size > this.options.max) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#drop(oldest.value);
    }
  }

  #drop(key: string): void {
    const e = this.#cache.get(key);
    if (e === undefined) return;
    this.#cache.delete(key);
    const us = pairKey(e.user, e.site);
    const keys = this.#byUserSite.get(us);
    keys?.delete(key);
    if (keys?.size === 0) this.#byUserSite.delete(us);
  }
}
