/**
 * TypeBox schemas of the auth HTTP API (PROTOCOL.md "Auth API"), of grants ("Tokens and
 * credentials") and of the auth bus requests. One schema gives the TypeScript type, the HTTP
 * validation (auth compiles them with TypeBox's compiler) and the bus validation; the client
 * SDK and the tests check replies with the reply schemas.
 *
 * Request bodies allow unknown properties (a newer client may send fields this server does not
 * know) and ignore them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { BOX_KEY_PATTERN, DEVICE_ID_PATTERN, LOG_NAME_PATTERN, SITE_ID_PATTERN, USER_ID_PATTERN } from './ids.js';

/** 32 random bytes, base64url. */
export const NONCE_PATTERN = '^[A-Za-z0-9_-]{43}$';
/** A raw 64-byte Ed25519 signature, base64url. */
export const SIGNATURE_PATTERN = '^[A-Za-z0-9_-]{86}$';
/** A grant hash: base64url SHA-256 of the compact JWS. */
export const GRANT_HASH_PATTERN = '^[A-Za-z0-9_-]{43}$';
/** A compact JWS (three base64url parts). */
export const COMPACT_JWS_PATTERN = '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$';
/** A refresh token is opaque to clients; this server makes 43-character ones. */
export const REFRESH_PATTERN = '^[A-Za-z0-9_-]{20,256}$';
/** The caller's idempotency key of a refresh (a UUID fits). */
export const GUID_PATTERN = '^[A-Za-z0-9_-]{8,128}$';
/** `*` alone, or a log name. */
export const LOG_SELECTOR_PATTERN = `^(\\*|${LOG_NAME_PATTERN.slice(1, -1)})$`;
/** Grant subjects: `user:<id>`, `device:<id>` or `email:<addr>`. */
export const GRANT_SUBJECT_PATTERN =
  `^(user:${USER_ID_PATTERN.slice(1, -1)}|device:${DEVICE_ID_PATTERN.slice(1, -1)}|email:[^\\s@:]{1,64}@[^\\s@]{1,190})$`;

export const MAX_GRANT_LENGTH = 8192;
export const MAX_GRANT_LOGS = 64;
export const MAX_NAME_LENGTH = 128;

export const DeviceId = Type.String({ pattern: DEVICE_ID_PATTERN });
export const BoxKey = Type.String({ pattern: BOX_KEY_PATTERN });
export const UserId = Type.String({ pattern: USER_ID_PATTERN });
export const SiteId = Type.String({ pattern: SITE_ID_PATTERN });
export const LogName = Type.String({ pattern: LOG_NAME_PATTERN });
export const GrantHash = Type.String({ pattern: GRANT_HASH_PATTERN });
export const GrantJws = Type.String({ maxLength: MAX_GRANT_LENGTH, pattern: COMPACT_JWS_PATTERN });
export const RightSchema = Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('admin')]);
export const Rights = Type.Array(RightSchema, { minItems: 1, maxItems: 3, uniqueItems: true });
export const LogSelectors = Type.Array(Type.String({ pattern: LOG_SELECTOR_PATTERN }), {
  minItems: 1,
  maxItems: MAX_GRANT_LOGS,
  uniqueItems: true,
});
/** ms since the epoch, or null for no expiry. */
const ExpiresAt = Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]);

// ---- grants ----

export const GrantHeader = Type.Object(
  { alg: Type.Literal('EdDSA'), typ: Type.Literal('dg-grant+jwt'), kid: Type.Optional(Type.String({ maxLength: 128 })) },
  { additionalProperties: false },
);
export type GrantHeader = Static<typeof GrantHeader>;

/** Times in seconds, as JWT requires. */
export const GrantPayload = Type.Object({
  iss: DeviceId,
  sub: Type.String({ maxLength: 270, pattern: GRANT_SUBJECT_PATTERN }),
  site: SiteId,
  logs: LogSelectors,
  rights: Rights,
  iat: Type.Integer({ minimum: 0, maximum: 2 ** 40 }),
  exp: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 40 })),
  prf: Type.Optional(GrantHash),
});
export type GrantPayload = Static<typeof GrantPayload>;

// ---- requests ----

export const ChallengeBody = Type.Object({ device: DeviceId });
export type ChallengeBody = Static<typeof ChallengeBody>;

export const SignupBody = Type.Object({
  device: DeviceId,
  boxKey: BoxKey,
  nonce: Type.String({ pattern: NONCE_PATTERN }),
  sig: Type.String({ pattern: SIGNATURE_PATTERN }),
  name: Type.Optional(Type.String({ maxLength: MAX_NAME_LENGTH })),
});
export type SignupBody = Static<typeof SignupBody>;

export const LoginBody = Type.Object({
  device: DeviceId,
  nonce: Type.String({ pattern: NONCE_PATTERN }),
  sig: Type.String({ pattern: SIGNATURE_PATTERN }),
});
export type LoginBody = Static<typeof LoginBody>;

export const RefreshBody = Type.Object({
  refresh: Type.String({ pattern: REFRESH_PATTERN }),
  guid: Type.String({ pattern: GUID_PATTERN }),
});
export type RefreshBody = Static<typeof RefreshBody>;

export const CreateSiteBody = Type.Object({ name: Type.Optional(Type.String({ maxLength: MAX_NAME_LENGTH })) });
export type CreateSiteBody = Static<typeof CreateSiteBody>;

export const SiteParams = Type.Object({ site: SiteId });
export type SiteParams = Static<typeof SiteParams>;

/** Addition to PROTOCOL.md: an admin reports that the site key was rotated to `keyEpoch`. */
export const RotatedBody = Type.Object({ keyEpoch: Type.Integer({ minimum: 1, maximum: 2 ** 31 }) });
export type RotatedBody = Static<typeof RotatedBody>;

export const DeclareBody = Type.Object({ grant: GrantJws });
export type DeclareBody = Static<typeof DeclareBody>;

/** `grant`: a compact JWS, or the hash of a declared grant. */
export const GrantRef = Type.String({
  minLength: 43,
  maxLength: MAX_GRANT_LENGTH,
  pattern: `^(${GRANT_HASH_PATTERN.slice(1, -1)}|${COMPACT_JWS_PATTERN.slice(1, -1)})$`,
});

export const JoinBody = Type.Object({ site: SiteId, grant: GrantRef });
export type JoinBody = Static<typeof JoinBody>;

export const LeaseBody = Type.Object({ site: SiteId, log: LogName });
export type LeaseBody = Static<typeof LeaseBody>;

/** Exactly one of `device` and `grant` (checked by the handler, which names the field). */
export const RevokeBody = Type.Object({ device: Type.Optional(DeviceId), grant: Type.Optional(GrantHash) });
export type RevokeBody = Static<typeof RevokeBody>;

// ---- replies ----

export const ChallengeReply = Type.Object({ nonce: Type.String(), expiresIn: Type.Integer() });
export type ChallengeReply = Static<typeof ChallengeReply>;

export const SessionReply = Type.Object({
  user: UserId,
  device: DeviceId,
  access: Type.String(),
  refresh: Type.String(),
  expiresIn: Type.Integer(),
});
export type SessionReply = Static<typeof SessionReply>;

export const RefreshReply = Type.Object({ access: Type.String(), refresh: Type.String(), expiresIn: Type.Integer() });
export type RefreshReply = Static<typeof RefreshReply>;

export const MeReply = Type.Object({
  user: UserId,
  device: DeviceId,
  devices: Type.Array(
    Type.Object({ device: DeviceId, boxKey: BoxKey, name: Type.String(), createdAt: Type.Integer(), revoked: Type.Boolean() }),
  ),
  identities: Type.Array(Type.Object({ email: Type.String(), provider: Type.String() })),
});
export type MeReply = Static<typeof MeReply>;

export const CreateSiteReply = Type.Object({ site: SiteId, owner: UserId });
export type CreateSiteReply = Static<typeof CreateSiteReply>;

export const SiteReply = Type.Object({
  site: SiteId,
  owner: UserId,
  rights: Type.Array(RightSchema),
  keyEpoch: Type.Integer(),
  rotationRequired: Type.Boolean(),
});
export type SiteReply = Static<typeof SiteReply>;

export const DeclareReply = Type.Object({ hash: GrantHash });
export type DeclareReply = Static<typeof DeclareReply>;

export const JoinReplyBody = Type.Object({ site: SiteId, logs: Type.Array(Type.String()), rights: Type.Array(RightSchema), expiresAt: ExpiresAt });
export type JoinReplyBody = Static<typeof JoinReplyBody>;

export const LeaseReply = Type.Object({
  token: Type.String(),
  expiresIn: Type.Integer(),
  shard: Type.Object({ id: Type.String(), url: Type.String() }),
});
export type LeaseReply = Static<typeof LeaseReply>;

export const RevokeReply = Type.Object({ rotate: Type.Array(SiteId) });
export type RevokeReply = Static<typeof RevokeReply>;

export const ServerKeysReply = Type.Object({
  keys: Type.Array(
    Type.Object({
      kid: Type.String(),
      publicKey: Type.String(),
      status: Type.Union([Type.Literal('active'), Type.Literal('retired'), Type.Literal('revoked')]),
    }),
  ),
});
export type ServerKeysReply = Static<typeof ServerKeysReply>;

export const ShardsReply = Type.Object({
  version: Type.Integer(),
  shards: Type.Array(Type.Object({ id: Type.String(), url: Type.String() })),
});
export type ShardsReply = Static<typeof ShardsReply>;

// ---- bus requests (they cross a network in a cluster: validated like HTTP bodies) ----

export const BusAccessRequest = Type.Object({ user: UserId, device: DeviceId, site: SiteId, log: LogName });
export type BusAccessRequest = Static<typeof BusAccessRequest>;
export const BusJoinRequest = Type.Object({ user: UserId, device: DeviceId, grant: GrantRef });
export type BusJoinRequest = Static<typeof BusJoinRequest>;
