/**
 * Profile updates (PROTOCOL.md "Auth API", profile changes): the changes of one request are
 * checked and applied in order to a copy of the current profile; if every change is
 * acceptable and the version was current, the new state is written with a compare-and-set
 * on the version (so of concurrent updates from one version exactly one wins); otherwise
 * nothing is written and the caller gets the current profile and a comment per refused
 * change.
 */
import { ProfileChangeSchemas, type ProfileChange, type ProfileComment, type ProfileReply, type ProfileUpdateReply } from '../protocol/auth-schemas.js';
import { b64urlDecode } from '../protocol/b64.js';
import { checkPushEndpoint } from '../protocol/push-endpoint.js';
import { isP256Point } from '../protocol/push-keys.js';
import { siteRights } from './access.js';
import type { AuthContext } from './context.js';
import type { ProfilePush, ProfileRecord, ProfileState, ProfileSubscription } from './store.js';
import { describeError } from './validation.js';

/** App data (`set` values) in all, as JSON text. */
export const MAX_PROFILE_DATA_BYTES = 64 * 1024;
/** Notification subscriptions per user. */
export const MAX_SUBSCRIPTIONS = 1000;

export function profileReply(p: ProfileRecord, now = Date.now()): ProfileReply {
  return {
    version: p.version,
    data: p.data,
    // A mute that has ended reads as none (PROTOCOL.md: null when not muted).
    subscriptions: p.subscriptions.map((x) => (x.mutedUntil !== null && x.mutedUntil <= now ? { ...x, mutedUntil: null } : x)),
    push: p.push.map((x) => ({ device: x.device, endpoint: x.endpoint })),
  };
}

/**
 * Whether a parsed JSON value holds a number JSON cannot give back: `1e400` parses to
 * Infinity, which would be stored and returned as null.
 */
function hasNonFiniteNumber(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isFinite(v);
  if (Array.isArray(v)) return v.some(hasNonFiniteNumber);
  if (typeof v === 'object' && v !== null) return Object.values(v).some(hasNonFiniteNumber);
  return false;
}

/** Why push subscription keys are unusable (RFC 8291: a P-256 point, a 16-byte secret), or null. */
function refusePushKeys(keys: { p256dh: string; auth: string }): string | null {
  const p256dh = b64urlDecode(keys.p256dh);
  if (p256dh === null || !isP256Point(p256dh)) return 'subscription.keys.p256dh: must be an uncompressed P-256 public key, base64url';
  const auth = b64urlDecode(keys.auth);
  if (auth === null || auth.length !== 16) return 'subscription.keys.auth: must be 16 bytes, base64url';
  return null;
}

interface Draft {
  data: Record<string, unknown>;
  subs: Map<string, ProfileSubscription>;
  push: Map<string, ProfilePush>;
}

const subKey = (device: string, site: string) => `${device}\u0000${site}`;

/** A checked change, or the reason it is refused. */
function parseChange(raw: unknown): ProfileChange | string {
  const op = typeof raw === 'object' && raw !== null ? (raw as { op?: unknown }).op : undefined;
  if (typeof op !== 'string' || !Object.hasOwn(ProfileChangeSchemas, op)) return 'op: must be one of set, join, leave, mute, unmute, push, unpush';
  const schema = ProfileChangeSchemas[op as keyof typeof ProfileChangeSchemas];
  const problem = describeError('change', schema, raw);
  if (problem !== null) return problem;
  if (op === 'set' && (raw as { value?: unknown }).value === undefined) return 'change: missing value';
  return raw as ProfileChange;
}

interface Checks {
  live: Set<string>;
  readable(site: string): Promise<boolean>;
  pushHosts: readonly string[];
}

/** Applies one change to the draft; returns the reason it is refused, or null. */
async function apply(d: Draft, c: ProfileChange, k: Checks): Promise<string | null> {
  if (c.op === 'set') {
    if (hasNonFiniteNumber(c.value)) return 'value: a number is out of range (beyond a 64-bit float), so it could not be returned as sent';
    // Defined, not assigned: a key such as `__proto__` is app data like any other.
    if (c.value === null) delete d.data[c.key];
    else Object.defineProperty(d.data, c.key, { value: c.value, enumerable: true, writable: true, configurable: true });
    // The 64 KiB bound holds for the result of all changes (updateProfile), not after each one.
    return null;
  }
  if (!k.live.has(c.device)) return 'device: not a live device of this user';
  switch (c.op) {
    case 'join': {
      if (d.subs.has(subKey(c.device, c.site))) return null;
      if (!(await k.readable(c.site))) return 'site: no such site, or no access to it';
      if (d.subs.size >= MAX_SUBSCRIPTIONS) return `site: at most ${MAX_SUBSCRIPTIONS} subscriptions per user`;
      d.subs.set(subKey(c.device, c.site), { device: c.device, site: c.site, mutedUntil: null });
      return null;
    }
    case 'leave':
      d.subs.delete(subKey(c.device, c.site));
      return null;
    case 'mute':
    case 'unmute': {
      const s = d.subs.get(subKey(c.device, c.site));
      // Like a leave, an unmute of what is not there leaves nothing to undo.
      if (s === undefined) return c.op === 'mute' ? 'site: the device has not joined it' : null;
      d.subs.set(subKey(c.device, c.site), { ...s, mutedUntil: c.op === 'mute' ? c.until : null });
      return null;
    }
    case 'push': {
      const bad = checkPushEndpoint(c.subscription.endpoint, k.pushHosts) ?? refusePushKeys(c.subscription.keys);
      if (bad !== null) return bad.startsWith('subscription') ? bad : `subscription.endpoint: ${bad}`;
      d.push.set(c.device, { device: c.device, endpoint: c.subscription.endpoint, keys: { p256dh: c.subscription.keys.p256dh, auth: c.subscription.keys.auth } });
      return null;
    }
    case 'unpush':
      d.push.delete(c.device);
      return null;
  }
}

export interface UpdateResult {
  reply: ProfileUpdateReply;
  /** The applied changes, when the update was written. */
  applied: ProfileChange[] | null;
}

export async function updateProfile(ctx: AuthContext, user: string, version: number, rawChanges: readonly unknown[]): Promise<UpdateResult> {
  const current = await ctx.store.getProfile(user);
  const refuse = async (comments: ProfileComment[], profile = current): Promise<UpdateResult> => ({
    reply: { ok: false, version: profile.version, profile: profileReply(profile), comments },
    applied: null,
  });
  if (version !== current.version) return refuse([{ change: null, message: `version: ${version} is not the current version ${current.version}` }]);

  const live = new Set((await ctx.store.listDevices(user)).filter((d) => d.revokedAt === null).map((d) => d.id));
  const siteCache = new Map<string, boolean>();
  const checks: Checks = {
    live,
    pushHosts: ctx.deps.pushHosts,
    async readable(site) {
      let ok = siteCache.get(site);
      if (ok === undefined) {
        const rec = await ctx.store.getSite(site);
        ok = rec !== null && (await siteRights(ctx, user, rec)).length > 0;
        siteCache.set(site, ok);
      }
      return ok;
    },
  };
  const draft: Draft = {
    data: structuredClone(current.data),
    subs: new Map(current.subscriptions.map((s) => [subKey(s.device, s.site), { ...s }])),
    push: new Map(current.push.map((p) => [p.device, { ...p, keys: { ...p.keys } }])),
  };
  const comments: ProfileComment[] = [];
  const applied: ProfileChange[] = [];
  let lastSet = -1;
  for (const [i, raw] of rawChanges.entries()) {
    const c = parseChange(raw);
    const why = typeof c === 'string' ? c : await apply(draft, c, checks);
    if (why !== null) comments.push({ change: i, message: why });
    else if (typeof c !== 'string') {
      applied.push(c);
      if (c.op === 'set' && c.value !== null) lastSet = i;
    }
  }
  // All changes apply at once, so the bound is on app data after all of them: a request may
  // set a new large value before it removes an old one. Over it, the last set is refused.
  const size = Buffer.byteLength(JSON.stringify(draft.data), 'utf8');
  if (size > MAX_PROFILE_DATA_BYTES) {
    comments.push({ change: lastSet >= 0 ? lastSet : null, message: `value: app data would be ${size} bytes, over ${MAX_PROFILE_DATA_BYTES} in all` });
    comments.sort((a, b) => (a.change ?? -1) - (b.change ?? -1));
  }
  if (comments.length > 0) return refuse(comments);

  const next: ProfileState = {
    data: draft.data,
    subscriptions: [...draft.subs.values()].sort((a, b) => (a.device === b.device ? cmp(a.site, b.site) : cmp(a.device, b.device))),
    push: [...draft.push.values()].sort((a, b) => cmp(a.device, b.device)),
  };
  if (!(await ctx.store.putProfile(user, version, next, ctx.now()))) {
    return refuse([{ change: null, message: 'version: the profile changed concurrently; apply the changes to the current profile' }], await ctx.store.getProfile(user));
  }
  return { reply: { ok: true, version: version + 1 }, applied };
}

/**
 * After an update was written: a device it named may have been revoked since the update found
 * it live, and the revocation's purge may have run before the write (it then had nothing to
 * remove and moved no version, so the write went through). Such a device is purged now, as the
 * revocation would have, so no subscription or push endpoint of a revoked device outlives it.
 * Call it after `ctx.notify.updated` of the update, so that notify gets the full state last.
 */
export async function purgeRevokedNamed(ctx: AuthContext, user: string, applied: readonly ProfileChange[]): Promise<void> {
  const named = new Set(applied.flatMap((c) => (c.op === 'set' ? [] : [c.device])));
  if (named.size === 0) return;
  for (const d of await ctx.store.listDevices(user)) {
    if (d.revokedAt === null || !named.has(d.id)) continue;
    if ((await ctx.store.purgeDevice(user, d.id, ctx.now())).profileVersion !== null) ctx.notify.replaced(user);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Attempts at the compare-and-set of `dropGonePush` before it gives up (concurrent updates). */
const GONE_ATTEMPTS = 3;

/**
 * Notify found that `device`'s push endpoint is gone: drops it from the profile, as an
 * `unpush` made by the server, but only while the device's endpoint is still `endpoint`
 * (a renewed one stays). Returns the new version, or null when there was nothing to drop.
 */
export async function dropGonePush(ctx: AuthContext, user: string, device: string, endpoint: string): Promise<number | null> {
  for (let i = 0; i < GONE_ATTEMPTS; i++) {
    const current = await ctx.store.getProfile(user);
    if (!current.push.some((p) => p.device === device && p.endpoint === endpoint)) return null;
    const next: ProfileState = { data: current.data, subscriptions: current.subscriptions, push: current.push.filter((p) => p.device !== device) };
    if (await ctx.store.putProfile(user, current.version, next, ctx.now())) {
      ctx.notify.updated(user, current.version + 1, [{ op: 'unpush', device }]);
      return current.version + 1;
    }
  }
  return null;
}
