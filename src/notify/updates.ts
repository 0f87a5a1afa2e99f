/**
 * dg.notify.update: auth's profile changes, as the notification state of one user.
 *
 * - `{user, version, changes}` applies only when `version` is the stored version + 1 (a
 *   user never seen is at 0); otherwise the reply is `{ok:false}` and auth answers with the
 *   full state. Ops other than join/leave/mute/unmute/push/unpush (`set`, ...) are ignored.
 * - `{user, version, full}` replaces the user's state at that version; a full state older
 *   than the stored one is stale and ignored (the reply is still `{ok:true}`: notify holds
 *   something newer, there is nothing to repair).
 * - A malformed message (or a malformed known op) is refused whole with BAD_REQUEST and
 *   nothing applies; auth then sends the full state.
 * - A push endpoint off the allowlist (or with keys of the wrong size, or a p256dh that is
 *   not a point of P-256) is never stored: it is logged and the device is left without an
 *   endpoint, as if it had unsubscribed.
 * Every reply carries the user's stored `version` after the call.
 */
import type { FastifyBaseLogger } from 'fastify';
import { b64urlDecode } from '../protocol/b64.js';
import type { NotifyUpdateReply } from '../protocol/bus-messages.js';
import { DgError } from '../protocol/errors.js';
import {
  NOTIFY_CHANGE_OPS,
  NotifyChangeChecks,
  NotifyFullCheck,
  NotifyUpdateCheck,
  firstSchemaError,
  type NotifyChange,
} from '../protocol/notify-schemas.js';
import { checkPushEndpoint } from '../protocol/push-endpoint.js';
import { isP256Point } from '../protocol/push-keys.js';
import type { NotifyStore, PushKeys, StoreChange, UserState } from './store.js';

export interface UpdateDeps {
  store: NotifyStore;
  pushHosts: readonly string[];
  log: FastifyBaseLogger;
}

export type UpdateReply = NotifyUpdateReply & { version: number };

/** Why a subscription cannot be stored, or null when it can. */
export function refusePushSubscription(endpoint: string, keys: PushKeys, hosts: readonly string[]): string | null {
  const reason = checkPushEndpoint(endpoint, hosts);
  if (reason !== null) return reason;
  const p256dh = b64urlDecode(keys.p256dh);
  if (p256dh === null || !isP256Point(p256dh)) return 'keys.p256dh must be an uncompressed P-256 public key in base64url';
  const auth = b64urlDecode(keys.auth);
  if (auth === null || auth.length !== 16) return 'keys.auth must be 16 bytes in base64url';
  return null;
}

function isNotifyOp(op: string): op is NotifyChange['op'] {
  return (NOTIFY_CHANGE_OPS as readonly string[]).includes(op);
}

function toStoreChanges(deps: UpdateDeps, user: string, raw: readonly unknown[]): StoreChange[] {
  const out: StoreChange[] = [];
  raw.forEach((item, i) => {
    const op = typeof item === 'object' && item !== null ? (item as { op?: unknown }).op : undefined;
    if (typeof op !== 'string') throw new DgError('BAD_REQUEST', `dg.notify.update: changes/${i}: not a change`);
    if (!isNotifyOp(op)) return;
    const check = NotifyChangeChecks[op];
    if (!check.Check(item)) throw new DgError('BAD_REQUEST', `dg.notify.update: changes/${i}${firstSchemaError(check, item)}`);
    const c = item as NotifyChange;
    switch (c.op) {
      case 'join':
      case 'leave':
      case 'unmute':
        out.push({ op: c.op, device: c.device, site: c.site });
        break;
      case 'mute':
        out.push({ op: 'mute', device: c.device, site: c.site, until: c.until });
        break;
      case 'unpush':
        out.push({ op: 'unpush', device: c.device });
        break;
      case 'push': {
        const { endpoint, keys } = c.subscription;
        const reason = refusePushSubscription(endpoint, keys, deps.pushHosts);
        if (reason === null) out.push({ op: 'push', device: c.device, endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
        else {
          deps.log.warn({ user, device: c.device, reason }, 'push endpoint refused; not stored');
          out.push({ op: 'unpush', device: c.device });
        }
        break;
      }
    }
  });
  return out;
}

function toUserState(deps: UpdateDeps, user: string, full: unknown): UserState {
  if (!NotifyFullCheck.Check(full)) throw new DgError('BAD_REQUEST', `dg.notify.update: full${firstSchemaError(NotifyFullCheck, full)}`);
  const push: UserState['push'] = [];
  for (const p of full.push) {
    const reason = refusePushSubscription(p.endpoint, p.keys, deps.pushHosts);
    if (reason === null) push.push({ device: p.device, endpoint: p.endpoint, keys: { p256dh: p.keys.p256dh, auth: p.keys.auth } });
    else deps.log.warn({ user, device: p.device, reason }, 'push endpoint refused; not stored');
  }
  return {
    subscriptions: full.subscriptions.map((s) => ({ device: s.device, site: s.site, mutedUntil: s.mutedUntil ?? null })),
    push,
  };
}

export async function handleUpdate(deps: UpdateDeps, message: unknown): Promise<UpdateReply> {
  if (!NotifyUpdateCheck.Check(message)) throw new DgError('BAD_REQUEST', `dg.notify.update: ${firstSchemaError(NotifyUpdateCheck, message)}`);
  const { user, version, changes, full } = message;
  if ((changes === undefined) === (full === undefined)) throw new DgError('BAD_REQUEST', 'dg.notify.update: exactly one of changes and full');
  if (changes !== undefined) {
    const r = await deps.store.applyChanges(user, version, toStoreChanges(deps, user, changes));
    if (!r.ok) deps.log.info({ user, version, stored: r.version }, 'notify update out of order; full state needed');
    return { ok: r.ok, version: r.version };
  }
  const r = await deps.store.replaceState(user, version, toUserState(deps, user, full));
  return { ok: true, version: r.version };
}
