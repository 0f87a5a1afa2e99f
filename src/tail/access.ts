/**
 * Who may lease what: answers of auth (dg.auth.access) cached per (device, site, log) until
 * they expire or a revocation for that (user, site) arrives.
 *
 * Guarantees:
 * - An answer holds for the one log it was asked for. A user's rights differ from log to log
 *   (a read grant on every log and a write grant on one), so an answer is never reused for
 *   another log of the site, nor is a joined grant's access: the next lease asks auth.
 * - A positive answer is cached; a negative one never is (a grant may be joined over HTTP
 *   at any time), so `needproof` always reflects auth's current view.
 * - An answer that was in flight while a revocation for its (user, site) arrived is not
 *   trusted: the question is asked again.
 * - Auth unreachable → DgError UNAVAILABLE; an error reply of auth keeps its code.
 * - At most `accessCacheMax` answers are kept (oldest dropped first).
 */
import type { Bus } from '../bus/bus.js';
import { SUBJECTS, type AccessReply, type AccessRequest, type JoinReply, type JoinRequest } from '../protocol/bus-messages.js';
import { DgError, isErrorCode } from '../protocol/errors.js';
import { RIGHTS, type Right } from '../protocol/ids.js';
import type { AccessGrant } from './live-log.js';

interface Cached extends AccessGrant {
  user: string;
  site: string;
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
  /** Bumped by every revocation of cached access. */
  #revocations = 0;

  constructor(
    private readonly bus: Bus,
    private readonly timeoutMs: number,
    private readonly max: number,
  ) {}

  /** The device's access to (site, log), or null when it has none (needproof). */
  async check(user: string, device: string, site: string, log: string, now = Date.now()): Promise<AccessGrant | null> {
    const key = `${device}\u0000${site}\u0000${log}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined) {
      if (hit.expiresAt !== null && hit.expiresAt <= now) this.#drop(key);
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
   * Verifies a grant with auth (dg.auth.join). Nothing is cached: the grant is one of the
   * user's grants on the site, and the rights on a log come from all of them (auth's answer
   * to the next lease).
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

  /** Forgets the cached access of (user, site): the next lease asks auth again. */
  dropUserSite(user: string, site: string): void {
    this.#revocations++;
    const keys = this.#byUserSite.get(`${user}\u0000${site}`);
    if (keys !== undefined) for (const k of [...keys]) this.#drop(k);
  }

  /** Forgets every cached access of a device. */
  dropDevice(device: string): void {
    this.#revocations++;
    const prefix = `${device}\u0000`;
    for (const k of [...this.#cache.keys()]) if (k.startsWith(prefix)) this.#drop(k);
  }

  get size(): number {
    return this.#cache.size;
  }

  /** Counts the revocations seen: a caller that checked access can tell whether one came since. */
  get generation(): number {
    return this.#revocations;
  }

  /**
   * A request to auth over the bus. Its failures (no responder, a timeout) become
   * UNAVAILABLE "auth unreachable": the bus's own message names internal subjects, which
   * stay in the cause, for the log.
   */
  async #request<T>(subject: string, message: unknown): Promise<T> {
    try {
      return await this.bus.request<T>(subject, message, { timeoutMs: this.timeoutMs });
    } catch (err) {
      throw new DgError('UNAVAILABLE', 'auth unreachable; retry shortly', { cause: err });
    }
  }

  async #ask(req: AccessRequest, key: string): Promise<AccessGrant | null> {
    for (let attempt = 0; ; attempt++) {
      const before = this.#revocations;
      const reply = await this.#request<AccessReply>(SUBJECTS.authAccess, req);
      if (reply === null || typeof reply !== 'object' || reply.ok !== true) throw replyError(reply, 'access check');
      if (reply.allowed !== true) return null;
      const rights = rightsOf(reply.rights);
      const logs = logsOf(reply.logs);
      const expiresAt = expiresOf(reply.expiresAt);
      if (rights === null || logs === null || expiresAt === undefined) throw replyError(null, 'access check');
      const covers = logs.includes('*') || logs.includes(req.log);
      if (rights.length === 0 || !covers) return null;
      const answer: Cached = { user: req.user, site: req.site, rights, expiresAt };
      if (this.#revocations === before) {
        this.#store(key, answer);
        return answer;
      }
      if (attempt >= 2) return answer;
    }
  }

  #store(key: string, entry: Cached): void {
    this.#drop(key);
    this.#cache.set(key, entry);
    const us = `${entry.user}\u0000${entry.site}`;
    let keys = this.#byUserSite.get(us);
    if (keys === undefined) this.#byUserSite.set(us, (keys = new Set()));
    keys.add(key);
    while (this.#cache.size > this.max) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#drop(oldest.value);
    }
  }

  #drop(key: string): void {
    const e = this.#cache.get(key);
    if (e === undefined) return;
    this.#cache.delete(key);
    const us = `${e.user}\u0000${e.site}`;
    const keys = this.#byUserSite.get(us);
    keys?.delete(key);
    if (keys?.size === 0) this.#byUserSite.delete(us);
  }
}
