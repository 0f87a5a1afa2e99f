/**
 * Auth's side of the internal bus (PROTOCOL.md "Internal bus"). Requests are answered by one
 * member of the queue group "auth"; payloads are validated like HTTP bodies, since in a
 * cluster they cross a network. A thrown DgError becomes `{ok:false, error}` (bus.ts).
 */
import type { Subscription } from '../bus/bus.js';
import { RefusalLog } from '../bus/refusal-log.js';
import { BusAccessRequest, BusJoinRequest, BusPushGone } from '../protocol/auth-schemas.js';
import type { AccessReply, JoinReply, PushGone, RevokeEvent, RevokedList } from '../protocol/bus-messages.js';
import { SUBJECTS } from '../protocol/bus-messages.js';
import { DgError } from '../protocol/errors.js';
import { accessToLog, joinGrant, requireLiveDevice, requireSite } from './access.js';
import type { AuthContext } from './context.js';
import { dropGonePush } from './profile.js';
import { describeError } from './validation.js';

/** Lost-access pairs listed in one dg.auth.revoked reply (oldest left out first). */
export const MAX_LISTED_ACCESS = 5000;

function validated<T>(schema: Parameters<typeof describeError>[1], message: unknown): T {
  const problem = describeError('message', schema, message);
  if (problem !== null) throw new DgError('BAD_REQUEST', problem);
  return message as T;
}

/**
 * A request handler whose failures for a dependency that is down (the store) are logged
 * like the HTTP routes' (once per 10 s); the bus answers the error to the requester.
 */
function answering<T>(ctx: AuthContext, subject: string, handler: (msg: unknown) => Promise<T>): (msg: unknown) => Promise<T> {
  return async (msg) => {
    try {
      return await handler(msg);
    } catch (err) {
      ctx.unavailable.report(err, { subject });
      throw err;
    }
  };
}

export function subscribeBus(ctx: AuthContext): Subscription[] {
  const bus = ctx.deps.bus;
  const queue = { queue: 'auth' };
  // Refused publishes have nobody to answer, and anyone on the bus can send them fast.
  const refusals = new RefusalLog(ctx.deps.log);
  return [
    bus.subscribe(
      SUBJECTS.authAccess,
      answering(ctx, SUBJECTS.authAccess, async (msg: unknown): Promise<AccessReply> => {
        const m = validated<BusAccessRequest>(BusAccessRequest, msg);
        await requireLiveDevice(ctx, m.user, m.device);
        const site = await requireSite(ctx, m.site);
        const a = await accessToLog(ctx, m.user, site, m.log);
        return a === null ? { ok: true, allowed: false } : { ok: true, allowed: true, rights: a.rights, logs: a.logs, expiresAt: a.expiresAt };
      }),
      queue,
    ),
    bus.subscribe(
      SUBJECTS.authJoin,
      answering(ctx, SUBJECTS.authJoin, async (msg: unknown): Promise<JoinReply> => {
        const m = validated<BusJoinRequest>(BusJoinRequest, msg);
        await requireLiveDevice(ctx, m.user, m.device);
        const r = await joinGrant(ctx, { user: m.user, device: m.device, grant: m.grant });
        return { ok: true, site: r.site, logs: r.logs, rights: r.rights, expiresAt: r.expiresAt };
      }),
      queue,
    ),
    bus.subscribe(
      SUBJECTS.authRevoked,
      answering(ctx, SUBJECTS.authRevoked, async (_msg: unknown): Promise<RevokedList> => {
        const r = await ctx.store.revokedSince(ctx.now() - ctx.revocations.windowMs);
        const reply: RevokedList = { ok: true, devices: r.devices.map((d) => d.id), families: r.families.map((f) => f.id), access: r.access };
        // The newest pairs only, so the reply stays well under a bus message's size limit.
        if (r.access.length > MAX_LISTED_ACCESS) {
          const cut = r.access.length - MAX_LISTED_ACCESS;
          reply.access = r.access.slice(cut);
          reply.accessTruncatedAt = (r.access[cut - 1] as { at: number }).at;
        }
        return reply;
      }),
      queue,
    ),
    // One auth node drops an endpoint the push service called gone from the profile.
    bus.subscribe(
      SUBJECTS.authPushGone,
      async (msg) => {
        const problem = describeError('message', BusPushGone, msg);
        if (problem !== null) return void refusals.refused({ problem }, 'dg.auth.push-gone ignored');
        const m = msg as PushGone;
        try {
          const version = await dropGonePush(ctx, m.user, m.device, m.endpoint);
          if (version !== null) ctx.deps.log.info({ user: m.user, device: m.device, version }, 'gone push endpoint dropped from the profile');
        } catch (err) {
          ctx.deps.log.warn({ err, user: m.user }, 'could not drop a gone push endpoint');
        }
      },
      queue,
    ),
    // Every auth node (no queue group) learns the revocations made by the others.
    bus.subscribe(SUBJECTS.tailRevoke, (msg) => {
      const e = msg as Partial<RevokeEvent> | null;
      if (e === null || typeof e !== 'object') return;
      const now = ctx.now();
      if (e.reason === 'device' && typeof e.device === 'string') ctx.revocations.addDevice(e.device, now);
      if (e.reason === 'family' && typeof e.family === 'string') ctx.revocations.addFamily(e.family, now);
    }),
  ];
}
