/**
 * Revocation on the tail side: a set of revoked devices and refresh families (loaded from
 * auth at start and now and then, kept current from dg.tail.revoke), and what a revocation
 * does to live sessions and handles.
 *
 * Guarantees:
 * - A token of a revoked device or family is refused by `connect` for as long as such a
 *   token can live (`revokedKeepMs` is longer than the longest token lifetime).
 * - `device`/`family`: every matching session gets `{ev:'revoke', reason}` and closes 4403.
 * - `access`: cached access of each (user, site) is dropped; each live handle of that user
 *   on that site is re-checked with auth, and dies (`{ev:'revoke', handle, reason}`) when
 *   its access is gone, no longer covers its role, or auth cannot be asked (fail closed).
 *   A leader grace held by a device of that user on that site ends unless the device may
 *   still write the log (also asked of auth).
 *   Lease tokens of that (user, site) issued before the revocation no longer prove access
 *   (for as long as they can live): `lease` asks auth instead.
 * - A revocation whose bus message this node missed still arrives: every `revokedPollMs` the
 *   node asks auth for the recent ones (devices, families and lost access, which auth keeps
 *   in its store) and acts on those it does not know yet.
 * - Until a node has had that list once (auth may be down when it starts), it knows only the
 *   revocations published since it subscribed: access and lease tokens issued before then
 *   are not trusted (`connect` answers UNAVAILABLE, a lease token sends `lease` to auth), and
 *   it asks auth again every second until it answers.
 */
import { SUBJECTS, type RevokeEvent, type RevokedList } from '../protocol/bus-messages.js';
import type { LogThrottle } from '../protocol/log-throttle.js';
import { TAIL_CLOSE } from '../protocol/tail-schemas.js';
import type { TailContext } from './context.js';
import { canRead, canWrite, type Handle, type LiveLog } from './live-log.js';
import type { Session } from './session.js';

/** (user, site) pairs whose lost access is remembered; past this the oldest fold into a watermark. */
const MAX_ACCESS_ENTRIES = 100_000;

/**
 * Tokens issued this close to the moment a node began listening for revocations are not
 * trusted before it has auth's list either (their `iat` is in whole seconds of auth's clock).
 */
const LISTEN_MARGIN_MS = 2000;

/** The key of a (user, site) pair in the set of lost access. */
function pairKey(user: string, site: string): string {
  return `${user}\u0000${site}`;
}

export class RevokedSet {
  readonly #devices = new Map<string, number>();
  readonly #families = new Map<string, number>();
  /**
   * `user\0site` → when access was revoked: `at` on this node's clock (when it learned it),
   * `authAt` on auth's (from the event, to recognise the same revocation again).
   */
  readonly #access = new Map<string, { at: number; authAt: number }>();
  /** Lease tokens issued at or before this time (ms) are not trusted for any pair (overflow). */
  #accessWatermark = Number.NEGATIVE_INFINITY;

  /**
   * Tokens issued at or before this (ms) are not trusted: revocations made before then may
   * be unknown here (the list from auth has not been loaded since this node started).
   */
  #unknownBefore = Number.NEGATIVE_INFINITY;

  constructor(private readonly keepMs: number) {}

  /** The node starts listening for revocations now, without auth's list yet. */
  listening(now = Date.now()): void {
    this.#unknownBefore = now + LISTEN_MARGIN_MS;
  }

  /** Auth's list of recent revocations was loaded: every revocation a live token may meet is known. */
  loaded(): void {
    this.#unknownBefore = Number.NEGATIVE_INFINITY;
  }

  /** Whether revocations made before this node listened may still be unknown to it. */
  get incomplete(): boolean {
    return this.#unknownBefore !== Number.NEGATIVE_INFINITY;
  }

  /** Whether a token issued at `iatSec` may have been revoked without this node knowing it. */
  predatesKnown(iatSec: number): boolean {
    return iatSec * 1000 <= this.#unknownBefore;
  }

  /**
   * Access of `user` to `site` was revoked (some of it: auth decides what is left), at
   * `authAt` on auth's clock when the message says.
   */
  addAccess(user: string, site: string, now = Date.now(), authAt = Number.NEGATIVE_INFINITY): void {
    const key = pairKey(user, site);
    const prev = this.#access.get(key);
    this.#access.delete(key);
    this.#access.set(key, { at: now, authAt: Math.max(prev?.authAt ?? Number.NEGATIVE_INFINITY, authAt) });
    while (this.#access.size > MAX_ACCESS_ENTRIES) {
      const oldest = this.#access.entries().next();
      if (oldest.done === true) break;
      this.#access.delete(oldest.value[0]);
      this.distrustLeaseTokensUntil(Math.max(oldest.value[1].at, oldest.value[1].authAt));
    }
  }

  /**
   * Lease tokens issued at or before `at` (ms) prove nothing, whoever holds them (for as long
   * as such a token can live). Returns whether that moved the line.
   */
  distrustLeaseTokensUntil(at: number): boolean {
    if (at <= this.#accessWatermark) return false;
    this.#accessWatermark = at;
    return true;
  }

  /**
   * Whether `user` may have lost access to `site` within the remembered window (a
   * revocation of that pair is remembered, or older ones were folded into the watermark).
   */
  lostAccessLately(user: string, site: string): boolean {
    return this.#accessWatermark !== Number.NEGATIVE_INFINITY || this.#access.has(pairKey(user, site));
  }

  /** Whether this node already acted on a revocation of `user`'s access to `site` made at `authAt` (auth's clock). */
  knowsAccess(user: string, site: string, authAt: number): boolean {
    const e = this.#access.get(pairKey(user, site));
    return e !== undefined && e.authAt >= authAt;
  }

  /**
   * Whether a lease token of `user` for `site` issued at `iatSec` predates a revocation of
   * that access: then it proves nothing, and auth must be asked.
   */
  leaseTokenStale(user: string, site: string, iatSec: number): boolean {
    const issued = iatSec * 1000;
    if (issued <= this.#accessWatermark || issued <= this.#unknownBefore) return true;
    const e = this.#access.get(pairKey(user, site));
    // iat has whole seconds: a token of the same second as the revocation counts as older.
    // Tokens carry auth's clock: the later of the two times covers a node whose clock is behind.
    return e !== undefined && issued <= Math.max(e.at, e.authAt);
  }

  addDevice(device: string, now = Date.now()): void {
    this.#devices.delete(device);
    this.#devices.set(device, now);
  }

  addFamily(family: string, now = Date.now()): void {
    this.#families.delete(family);
    this.#families.set(family, now);
  }

  hasDevice(device: string): boolean {
    return this.#devices.has(device);
  }

  hasFamily(family: string): boolean {
    return this.#families.has(family);
  }

  isRevoked(device: string, family: string): boolean {
    return this.#devices.has(device) || this.#families.has(family);
  }

  /** Forgets entries older than any token that could still carry them (insertion order = age). */
  prune(now = Date.now()): void {
    if (now - this.#accessWatermark >= this.keepMs) this.#accessWatermark = Number.NEGATIVE_INFINITY;
    // No token issued before it can still be valid: what was unknown no longer matters.
    if (now - this.#unknownBefore >= this.keepMs) this.#unknownBefore = Number.NEGATIVE_INFINITY;
    for (const map of [this.#devices, this.#families]) {
      for (const [k, at] of map) {
        if (now - at < this.keepMs) break;
        map.delete(k);
      }
    }
    for (const [k, e] of this.#access) {
      if (now - e.at < this.keepMs) break;
      this.#access.delete(k);
    }
  }
}

/**
 * How far ahead of this node's clock a time on auth's clock (`at` of a bus message) may be
 * and still be believed. Such a time only serves to recognise a revocation already acted
 * on when auth's list names it again; one far in the future (a sender with a broken clock
 * or of another version, or anyone on the bus) would make every later revocation of the
 * pair look known, and a revocation whose message was lost would never take effect.
 */
export const MAX_AUTH_CLOCK_LEAD_MS = 60_000;

/** `value` when it is a time (ms) auth's clock can show now, else undefined. */
export function authTime(value: unknown, now = Date.now()): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value <= now + MAX_AUTH_CLOCK_LEAD_MS ? value : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/**
 * The well-formed (user, site, at?) items of a bus message's `access` list; an `at` that is
 * missing or not believable (authTime) counts as unknown.
 */
function accessItems(value: unknown): { user: string; site: string; at: number }[] {
  if (!Array.isArray(value)) return [];
  const now = Date.now();
  const out: { user: string; site: string; at: number }[] = [];
  for (const a of value as unknown[]) {
    if (a === null || typeof a !== 'object') continue;
    const { user, site, at } = a as { user?: unknown; site?: unknown; at?: unknown };
    if (typeof user !== 'string' || typeof site !== 'string') continue;
    out.push({ user, site, at: authTime(at, now) ?? Number.NEGATIVE_INFINITY });
  }
  return out;
}

/**
 * Loads the recent revocations from auth: devices, families and lost access (at start, then
 * every `revokedPollMs`, so a revocation whose bus message was lost still takes effect; 5 s
 * after a load that failed). Resolves whether it loaded.
 * Newly learned ones act like a dg.tail.revoke. A missing or failing auth is logged and
 * tolerated; until the list has loaded once, `RevokedSet.predatesKnown` tokens are refused.
 */
export async function syncRevoked(ctx: TailContext, warn: LogThrottle): Promise<boolean> {
  let list: RevokedList;
  try {
    list = await ctx.deps.bus.request<RevokedList>(SUBJECTS.authRevoked, {}, { timeoutMs: ctx.limits.authTimeoutMs });
    if (list === null || typeof list !== 'object' || list.ok !== true) throw new Error('bad reply');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    // Spaced out while the failures last (`warn`, the caller's).
    const missed = warn.take();
    if (missed === null) return false;
    if (ctx.revoked.incomplete) {
      ctx.log.warn({ reason, missed }, 'could not load the revocation list from auth: tokens issued before this node started are refused until it loads');
    } else {
      ctx.log.warn({ reason, missed }, 'could not load the revocation list from auth; continuing with revocations published on the bus (retried every 5 s)');
    }
    return false;
  }
  for (const device of strings(list.devices)) if (!ctx.revoked.hasDevice(device)) onRevoke(ctx, { reason: 'device', device });
  for (const family of strings(list.families)) if (!ctx.revoked.hasFamily(family)) onRevoke(ctx, { reason: 'family', family });
  if (typeof list.accessTruncatedAt === 'number' && Number.isFinite(list.accessTruncatedAt)) {
    // Some older pairs were left out: no lease token issued by then proves anything.
    if (ctx.revoked.distrustLeaseTokensUntil(list.accessTruncatedAt)) {
      ctx.log.warn({ until: list.accessTruncatedAt }, 'auth listed only its newest access revocations: lease tokens issued until then are checked with auth');
    }
  }
  const missed = accessItems(list.access).filter((a) => !ctx.revoked.knowsAccess(a.user, a.site, a.at));
  if (missed.length > 0) {
    ctx.log.info({ pairs: missed.length }, 'access revocations learned from auth that the bus did not bring');
    onRevoke(ctx, { reason: 'grant', access: missed });
  }
  if (ctx.revoked.incomplete) ctx.log.info('revocation list loaded from auth');
  ctx.revoked.loaded();
  return true;
}

function revokeSession(s: Session, reason: string): void {
  if (s.closing) return;
  s.send(JSON.stringify({ ev: 'revoke', reason }));
  s.close(TAIL_CLOSE.revoked, 'revoked');
}

/** Handles a dg.tail.revoke message (validated here: the bus carries plain JSON). */
export function onRevoke(ctx: TailContext, message: unknown): void {
  if (message === null || typeof message !== 'object') return;
  const m = message as Partial<RevokeEvent>;
  const reason = typeof m.reason === 'string' ? m.reason.slice(0, 32) : 'revoked';
  if (typeof m.device === 'string') {
    const device = m.device;
    ctx.revoked.addDevice(device);
    ctx.access.dropDevice(device);
    for (const s of ctx.sessions.all()) if (s.auth?.device === device) revokeSession(s, reason);
    ctx.logs.endGraceOf(device);
  }
  if (typeof m.family === 'string') {
    const family = m.family;
    ctx.revoked.addFamily(family);
    for (const s of ctx.sessions.all()) if (s.auth?.families.includes(family) === true) revokeSession(s, reason);
  }
  if (Array.isArray(m.access)) {
    for (const { user, site, at } of accessItems(m.access)) {
      ctx.access.dropUserSite(user, site);
      ctx.revoked.addAccess(user, site, Date.now(), at);
      for (const s of ctx.sessions.ofUser(user)) {
        for (const h of s.handles.values()) if (h.log.site === site) void recheck(ctx, h, reason);
      }
      for (const log of ctx.logs.gracesOf(user, site)) void recheckGrace(ctx, log);
    }
  }
}

/**
 * A grace on the log is held by a device of a user whose access to the site changed: it
 * ends unless that device may still write the log (or when auth cannot say), as the
 * leadership of a live handle would.
 */
export async function recheckGrace(ctx: TailContext, log: LiveLog): Promise<void> {
  const lapse = log.lapse;
  if (lapse === null || lapse.user === undefined) return;
  let keeps = false;
  try {
    const access = await ctx.access.check(lapse.user, lapse.device, log.site, log.name);
    keeps = access !== null && canWrite(access.rights);
  } catch (err) {
    ctx.log.warn({ err }, 'access re-check of a leader grace failed; the grace ends');
  }
  if (!keeps) ctx.logs.endGrace(log, lapse);
}

/**
 * Asks auth again whether the handle may stay; kills it when not. When auth cannot say, the
 * handle dies too (`failClosed`, after a revocation or an expiry) or stays as it was (after a
 * gain of access, which cannot have taken anything away).
 */
export async function recheck(ctx: TailContext, h: Handle, reason: string, failClosed = true): Promise<void> {
  const auth = h.session.auth;
  if (h.dead || auth === null) return;
  h.rechecking = true;
  try {
    const access = await ctx.access.check(auth.user, auth.device, h.log.site, h.log.name);
    if (h.dead) return;
    const keeps = access !== null && (h.role === 'leader' ? canWrite(access.rights) : canRead(access.rights));
    if (access === null || !keeps) return ctx.logs.revoke(h, reason);
    ctx.logs.reaccess(h, access);
  } catch (err) {
    if (!failClosed) return void ctx.log.warn({ err }, 'access re-check failed; the handle keeps the access it had');
    ctx.log.warn({ err }, 'access re-check failed; the handle is revoked');
    ctx.logs.revoke(h, reason);
  } finally {
    h.rechecking = false;
  }
}
