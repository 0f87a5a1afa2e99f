/**
 * Schemas of the notify bus messages (PROTOCOL.md "Internal bus") and of the profile
 * changes notify acts on (PROTOCOL.md "Auth API", profile changes). One schema gives the
 * type and the compiled check; extra properties are allowed so that a newer sender does
 * not break an older receiver.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { DEVICE_ID_PATTERN, LOG_NAME_PATTERN, SITE_ID_PATTERN, USER_ID_PATTERN } from './ids.js';
import { MAX_PUSH_ENDPOINT_LENGTH } from './push-endpoint.js';

/** Limits on one dg.notify.update message. */
export const MAX_UPDATE_CHANGES = 1000;
export const MAX_FULL_SUBSCRIPTIONS = 10_000;
export const MAX_FULL_PUSH = 1000;
/** Limits on one dg.notify.presence message. */
export const MAX_PRESENCE_USERS = 100_000;
export const MAX_PRESENCE_TTL_MS = 3_600_000;
/** How long ago a user in `left` of dg.notify.presence may have left. */
export const MAX_LEFT_AGO_MS = 3_600_000;
/** Limit on `ageMs` of one dg.notify.publish (tail clamps to it). */
export const MAX_PUBLISH_AGE_MS = 3_600_000;

const Device = Type.String({ pattern: DEVICE_ID_PATTERN });
const Site = Type.String({ pattern: SITE_ID_PATTERN });
const User = Type.String({ pattern: USER_ID_PATTERN });
const Time = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** Subscription keys as `PushSubscription.toJSON()` gives them; their bytes are checked later. */
const Key = Type.String({ minLength: 1, maxLength: 256 });
const Endpoint = Type.String({ minLength: 1, maxLength: MAX_PUSH_ENDPOINT_LENGTH });

export const PushKeysSchema = Type.Object({ p256dh: Key, auth: Key });

export const JoinChangeSchema = Type.Object({ op: Type.Literal('join'), device: Device, site: Site });
export const LeaveChangeSchema = Type.Object({ op: Type.Literal('leave'), device: Device, site: Site });
export const MuteChangeSchema = Type.Object({ op: Type.Literal('mute'), device: Device, site: Site, until: Time });
export const UnmuteChangeSchema = Type.Object({ op: Type.Literal('unmute'), device: Device, site: Site });
export const PushChangeSchema = Type.Object({
  op: Type.Literal('push'),
  device: Device,
  subscription: Type.Object({ endpoint: Endpoint, keys: PushKeysSchema }),
});
export const UnpushChangeSchema = Type.Object({ op: Type.Literal('unpush'), device: Device });

export const NotifyChangeSchema = Type.Union([
  JoinChangeSchema,
  LeaveChangeSchema,
  MuteChangeSchema,
  UnmuteChangeSchema,
  PushChangeSchema,
  UnpushChangeSchema,
]);
export type NotifyChange = Static<typeof NotifyChangeSchema>;
/** The profile ops notify acts on; any other op (`set`, ...) is none of its business. */
export const NOTIFY_CHANGE_OPS: readonly NotifyChange['op'][] = ['join', 'leave', 'mute', 'unmute', 'push', 'unpush'];

export const NotifyFullSchema = Type.Object({
  subscriptions: Type.Array(
    Type.Object({ device: Device, site: Site, mutedUntil: Type.Optional(Type.Union([Time, Type.Null()])) }),
    { maxItems: MAX_FULL_SUBSCRIPTIONS },
  ),
  push: Type.Array(Type.Object({ device: Device, endpoint: Endpoint, keys: PushKeysSchema }), { maxItems: MAX_FULL_PUSH }),
});
export type NotifyFull = Static<typeof NotifyFullSchema>;

/** dg.notify.update: exactly one of `changes` and `full` (checked beside the schema). */
export const NotifyUpdateSchema = Type.Object({
  user: User,
  version: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  changes: Type.Optional(Type.Array(Type.Unknown(), { maxItems: MAX_UPDATE_CHANGES })),
  full: Type.Optional(Type.Unknown()),
});

export const NotifyPublishSchema = Type.Object({
  site: Site,
  log: Type.String({ pattern: LOG_NAME_PATTERN }),
  length: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  ageMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_PUBLISH_AGE_MS })),
});

export const PresenceMessageSchema = Type.Object({
  node: Type.String({ minLength: 1, maxLength: 128 }),
  ttlMs: Type.Integer({ minimum: 1, maximum: MAX_PRESENCE_TTL_MS }),
  full: Type.Boolean(),
  online: Type.Array(User, { maxItems: MAX_PRESENCE_USERS }),
  offline: Type.Array(User, { maxItems: MAX_PRESENCE_USERS }),
  left: Type.Optional(Type.Array(Type.Object({ user: User, agoMs: Type.Integer({ minimum: 0, maximum: MAX_LEFT_AGO_MS }) }), { maxItems: MAX_PRESENCE_USERS })),
});

export const NotifyHelloSchema = Type.Object({
  instance: Type.String({ minLength: 1, maxLength: 128 }),
});

/** One compiled check per op, so an error names the field of that op. */
export const NotifyChangeChecks = {
  join: TypeCompiler.Compile(JoinChangeSchema),
  leave: TypeCompiler.Compile(LeaveChangeSchema),
  mute: TypeCompiler.Compile(MuteChangeSchema),
  unmute: TypeCompiler.Compile(UnmuteChangeSchema),
  push: TypeCompiler.Compile(PushChangeSchema),
  unpush: TypeCompiler.Compile(UnpushChangeSchema),
} as const;
export const NotifyFullCheck = TypeCompiler.Compile(NotifyFullSchema);
export const NotifyUpdateCheck = TypeCompiler.Compile(NotifyUpdateSchema);
export const NotifyPublishCheck = TypeCompiler.Compile(NotifyPublishSchema);
export const PresenceMessageCheck = TypeCompiler.Compile(PresenceMessageSchema);
export const NotifyHelloCheck = TypeCompiler.Compile(NotifyHelloSchema);

/** The first schema error of `value` as `path: message`, for logs and error replies. */
export function firstSchemaError(check: { Errors(value: unknown): Iterable<{ path: string; message: string }> }, value: unknown): string {
  for (const e of check.Errors(value)) return `${e.path || '/'}: ${e.message}`;
  return 'invalid';
}
