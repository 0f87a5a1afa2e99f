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
import { B64URL_32_PATTERN, BOX_KEY_PATTERN, DEVICE_ID_PATTERN, LOG_NAME_PATTERN, SITE_ID_PATTERN, USER_ID_PATTERN } from './ids.js';

/** 32 random bytes, base64url. */
export const NONCE_PATTERN = B64URL_32_PATTERN;
/** A raw 64-byte Ed25519 signature in base64url as an encoder writes it: the last character's 4 unused bits zero. */
export const SIGNATURE_PATTERN = '^[A-Za-z0-9_-]{85}[AQgw]$';
/** A grant hash: base64url SHA-256 of the compact JWS. */
export const GRANT_HASH_PATTERN = B64URL_32_PATTERN;
/** A compact JWS (three base64url parts). */
export const COMPACT_JWS_PATTERN = '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$';
/**
 * The shape of a refresh token this server could have made (it makes 43 base64url
 * characters): another string of printable ASCII is a credential that does not verify
 * (401), not a malformed request.
 */
export const REFRESH_PATTERN = '^[A-Za-z0-9_-]{20,256}$';
/** What /refresh accepts as `refresh`: up to 1 024 characters of printable ASCII. */
export const REFRESH_FIELD_PATTERN = '^[\\x20-\\x7E]{1,1024}$';
/** The caller's idempotency key of a refresh: 1 to 128 characters of printable ASCII (a UUID fits). */
export const GUID_PATTERN = '^[\\x20-\\x7E]{1,128}$';
/** `*` alone, or a log name. */
export const LOG_SELECTOR_PATTERN = `^(\\*|${LOG_NAME_PATTERN.slice(1, -1)})$`;
/** Grant subjects: `user:<id>`, `device:<id>` or `email:<addr>`. */
export const GRANT_SUBJECT_PATTERN =
  `^(user:${USER_ID_PATTERN.slice(1, -1)}|device:${DEVICE_ID_PATTERN.slice(1, -1)}|email:[^\\s@:\\u0000]{1,64}@[^\\s@\\u0000]{1,190})$`;
/**
 * An email to look up: one `@`, no white space but around it (emails compare trimmed), and
 * no U+0000 (which PostgreSQL text cannot hold).
 */
export const EMAIL_QUERY_PATTERN = '^\\s*[^\\s@\\u0000]+@[^\\s@\\u0000]+\\s*$';

export const MAX_GRANT_LENGTH = 8192;
export const MAX_GRANT_LOGS = 64;
export const MAX_NAME_LENGTH = 128;
/**
 * A device or site name: text without control characters (U+0000, which PostgreSQL text
 * cannot hold, and the rest of C0 and C1) or bidirectional controls, which would let a name
 * shown in another device's approval prompt read as something else.
 */
export const Name = Type.String({ maxLength: MAX_NAME_LENGTH, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$', expected: 'text without control or bidirectional formatting characters' });

export const DeviceId = Type.String({ pattern: DEVICE_ID_PATTERN, expected: 'a device id: 32 bytes in base64url without padding (43 characters)' });
export const BoxKey = Type.String({ pattern: BOX_KEY_PATTERN, expected: 'a box key: 32 bytes in base64url without padding (43 characters)' });
/**
 * Addition (docs/protocol.md): the device's Ed25519 signature of its box key statement
 * (key-statements.ts `boxKeyStatement`), so that other devices can check the box key is the
 * device's own before they seal the user key to it.
 */
export const BoxSig = Type.String({ pattern: SIGNATURE_PATTERN, expected: 'a 64-byte Ed25519 signature in base64url without padding (86 characters)' });
export const UserId = Type.String({ pattern: USER_ID_PATTERN, expected: 'a user id (1 to 64 characters of A-Z, a-z, 0-9, - and _)' });
export const SiteId = Type.String({ pattern: SITE_ID_PATTERN, expected: 'a site id (1 to 64 characters of A-Z, a-z, 0-9, - and _)' });
export const LogName = Type.String({ pattern: LOG_NAME_PATTERN, expected: 'a log name (1 to 128 characters of A-Z, a-z, 0-9, ., _, : and -)' });
export const GrantHash = Type.String({ pattern: GRANT_HASH_PATTERN, expected: 'a grant hash: 32 bytes in base64url without padding (43 characters)' });
export const GrantJws = Type.String({ maxLength: MAX_GRANT_LENGTH, pattern: COMPACT_JWS_PATTERN, expected: 'a compact JWS (three base64url parts joined by dots)' });
export const RightSchema = Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('admin')]);
export const Rights = Type.Array(RightSchema, { minItems: 1, maxItems: 3, uniqueItems: true });
export const LogSelectors = Type.Array(Type.String({ pattern: LOG_SELECTOR_PATTERN, expected: "'*' or a log name (1 to 128 characters of A-Z, a-z, 0-9, ., _, : and -)" }), {
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
  sub: Type.String({ maxLength: 270, pattern: GRANT_SUBJECT_PATTERN, expected: 'user:<user id>, device:<device id> or email:<address>' }),
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
  /** Addition: the device's signature of its box key (BoxSig). */
  boxSig: Type.Optional(BoxSig),
  nonce: Type.String({ pattern: NONCE_PATTERN, expected: 'a nonce from /challenge (43 base64url characters)' }),
  sig: Type.String({ pattern: SIGNATURE_PATTERN, expected: 'a 64-byte Ed25519 signature in base64url without padding (86 characters)' }),
  name: Type.Optional(Name),
});
export type SignupBody = Static<typeof SignupBody>;

export const LoginBody = Type.Object({
  device: DeviceId,
  nonce: Type.String({ pattern: NONCE_PATTERN, expected: 'a nonce from /challenge (43 base64url characters)' }),
  sig: Type.String({ pattern: SIGNATURE_PATTERN, expected: 'a 64-byte Ed25519 signature in base64url without padding (86 characters)' }),
});
export type LoginBody = Static<typeof LoginBody>;

export const RefreshBody = Type.Object({
  refresh: Type.String({ pattern: REFRESH_FIELD_PATTERN, expected: 'a refresh token (1 to 1024 printable ASCII characters)' }),
  guid: Type.String({ pattern: GUID_PATTERN, expected: '1 to 128 printable ASCII characters' }),
});
export type RefreshBody = Static<typeof RefreshBody>;

export const CreateSiteBody = Type.Object({ name: Type.Optional(Name) });
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
  expected: 'a grant: its hash (43 base64url characters) or its compact JWS',
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
    Type.Object({
      device: DeviceId,
      boxKey: BoxKey,
      /** Addition: present when the device signed its box key. */
      boxSig: Type.Optional(BoxSig),
      name: Type.String(),
      createdAt: Type.Integer(),
      revoked: Type.Boolean(),
    }),
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
/** `dg.auth.push-gone`: notify found a device's push endpoint gone. */
export const BusPushGone = Type.Object({ user: UserId, device: DeviceId, endpoint: Type.String({ minLength: 1, maxLength: 2048 }) });
export type BusPushGone = Static<typeof BusPushGone>;

// ---- OpenID Connect login (docs/protocol.md "OpenID Connect login") ----

/** A provider id from the server's configuration (DATAGROVE_OIDC), e.g. `google`, `dev`. */
export const PROVIDER_ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,31}$';
/** An OIDC login state: 32 random bytes, base64url. */
export const OIDC_STATE_PATTERN = B64URL_32_PATTERN;
export const MAX_REDIRECT_LENGTH = 2048;
export const MAX_EMAIL_LENGTH = 254;

export const OidcStartBody = Type.Object({
  provider: Type.String({ pattern: PROVIDER_ID_PATTERN, expected: 'a provider id (1 to 32 characters of a-z, 0-9, - and _, starting with a letter or digit)' }),
  device: DeviceId,
  /** Needed when the device is new to the server (it may become a new user's first device). */
  boxKey: Type.Optional(BoxKey),
  /** Addition: the device's signature of `boxKey` (BoxSig); only with `boxKey`. */
  boxSig: Type.Optional(BoxSig),
  /** The name a new device gets. */
  name: Type.Optional(Name),
  nonce: Type.String({ pattern: NONCE_PATTERN, expected: 'a nonce from /challenge (43 base64url characters)' }),
  sig: Type.String({ pattern: SIGNATURE_PATTERN, expected: 'a 64-byte Ed25519 signature in base64url without padding (86 characters)' }),
  /** Where the browser goes after the callback (an allowed origin or the public URL). */
  redirect: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_REDIRECT_LENGTH })),
});
export type OidcStartBody = Static<typeof OidcStartBody>;

export const OidcStartReply = Type.Object({ url: Type.String(), state: Type.String({ pattern: OIDC_STATE_PATTERN, expected: 'a state from /oidc/start (43 base64url characters)' }) });
export type OidcStartReply = Static<typeof OidcStartReply>;

/** The provider's redirect: `code` and `state`, or `error`; other parameters (`iss`, …) pass through. */
export const OidcCallbackQuery = Type.Object({
  state: Type.Optional(Type.String({ maxLength: 256 })),
  code: Type.Optional(Type.String({ maxLength: 4096 })),
  error: Type.Optional(Type.String({ maxLength: 256 })),
});
export type OidcCallbackQuery = Static<typeof OidcCallbackQuery>;

export const OidcCompleteBody = Type.Object({
  state: Type.String({ pattern: OIDC_STATE_PATTERN, expected: 'a state from /oidc/start (43 base64url characters)' }),
  /** The confirmation code the browser got at the callback (`XXXX-XXXX`; case, dashes and spaces do not matter). */
  code: Type.String({ minLength: 1, maxLength: 32 }),
  nonce: Type.String({ pattern: NONCE_PATTERN, expected: 'a nonce from /challenge (43 base64url characters)' }),
  sig: Type.String({ pattern: SIGNATURE_PATTERN, expected: 'a 64-byte Ed25519 signature in base64url without padding (86 characters)' }),
});
export type OidcCompleteBody = Static<typeof OidcCompleteBody>;

export const OidcCompleteReply = Type.Object({
  user: UserId,
  device: DeviceId,
  access: Type.String(),
  refresh: Type.String(),
  expiresIn: Type.Integer(),
  /** The identity attestation (compact JWS, typ dg-identity+jwt). */
  identity: Type.String({ pattern: COMPACT_JWS_PATTERN, expected: 'a compact JWS (three base64url parts joined by dots)' }),
  /** true when this login added the device to the user. */
  newDevice: Type.Boolean(),
});
export type OidcCompleteReply = Static<typeof OidcCompleteReply>;

/** The payload of an identity attestation (PROTOCOL.md); times in seconds. */
export const IdentityPayload = Type.Object({
  iss: Type.String(),
  sub: DeviceId,
  email: Type.String({ maxLength: MAX_EMAIL_LENGTH }),
  provider: Type.String({ pattern: PROVIDER_ID_PATTERN, expected: 'a provider id (1 to 32 characters of a-z, 0-9, - and _, starting with a letter or digit)' }),
  iat: Type.Integer({ minimum: 0 }),
  /** Addition (docs/protocol.md): the device's box key, so a sender that finds it by email can encrypt to it. */
  box: Type.Optional(BoxKey),
});
export type IdentityPayload = Static<typeof IdentityPayload>;

// ---- keys, devices ----

export const KeysQuery = Type.Object({ email: Type.String({ minLength: 3, maxLength: MAX_EMAIL_LENGTH, pattern: EMAIL_QUERY_PATTERN, expected: 'an email address' }) });
export type KeysQuery = Static<typeof KeysQuery>;

export const KeysReply = Type.Object({ attestations: Type.Array(Type.String({ pattern: COMPACT_JWS_PATTERN, expected: 'a compact JWS (three base64url parts joined by dots)' })) });
export type KeysReply = Static<typeof KeysReply>;

export const DeviceParams = Type.Object({ device: DeviceId });
export type DeviceParams = Static<typeof DeviceParams>;

export const RenameDeviceBody = Type.Object({ name: Name });
export type RenameDeviceBody = Static<typeof RenameDeviceBody>;

export const RenameDeviceReply = Type.Object({ device: DeviceId, name: Type.String() });
export type RenameDeviceReply = Static<typeof RenameDeviceReply>;

/** Addition: a device registers its signature of its box key (devices registered without one). */
export const BoxSigBody = Type.Object({ boxSig: BoxSig });
export type BoxSigBody = Static<typeof BoxSigBody>;

export const BoxSigReply = Type.Object({ device: DeviceId, boxKey: BoxKey, boxSig: BoxSig });
export type BoxSigReply = Static<typeof BoxSigReply>;

// ---- profile ----

export const MAX_PROFILE_CHANGES = 100;
export const MAX_PROFILE_KEY_LENGTH = 128;
const PushKey = Type.String({ minLength: 1, maxLength: 256 });
const MsTime = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** `value: null` removes the key. */
export const SetChange = Type.Object({ op: Type.Literal('set'), key: Type.String({ minLength: 1, maxLength: MAX_PROFILE_KEY_LENGTH }), value: Type.Unknown() });
export const JoinChange = Type.Object({ op: Type.Literal('join'), device: DeviceId, site: SiteId });
export const LeaveChange = Type.Object({ op: Type.Literal('leave'), device: DeviceId, site: SiteId });
export const MuteChange = Type.Object({ op: Type.Literal('mute'), device: DeviceId, site: SiteId, until: MsTime });
export const UnmuteChange = Type.Object({ op: Type.Literal('unmute'), device: DeviceId, site: SiteId });
export const PushChange = Type.Object({
  op: Type.Literal('push'),
  device: DeviceId,
  subscription: Type.Object({ endpoint: Type.String({ minLength: 1, maxLength: 2048 }), keys: Type.Object({ p256dh: PushKey, auth: PushKey }) }),
});
export const UnpushChange = Type.Object({ op: Type.Literal('unpush'), device: DeviceId });
export const ProfileChangeSchemas = {
  set: SetChange,
  join: JoinChange,
  leave: LeaveChange,
  mute: MuteChange,
  unmute: UnmuteChange,
  push: PushChange,
  unpush: UnpushChange,
} as const;
export type ProfileChange =
  | Static<typeof SetChange>
  | Static<typeof JoinChange>
  | Static<typeof LeaveChange>
  | Static<typeof MuteChange>
  | Static<typeof UnmuteChange>
  | Static<typeof PushChange>
  | Static<typeof UnpushChange>;

/** Each change is checked on its own, so that a bad one gets a comment instead of a 400. */
export const ProfileBody = Type.Object({
  version: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  changes: Type.Array(Type.Unknown(), { maxItems: MAX_PROFILE_CHANGES }),
});
export type ProfileBody = Static<typeof ProfileBody>;

export const ProfileReply = Type.Object({
  version: Type.Integer(),
  data: Type.Record(Type.String(), Type.Unknown()),
  subscriptions: Type.Array(Type.Object({ device: DeviceId, site: SiteId, mutedUntil: Type.Union([Type.Integer(), Type.Null()]) })),
  push: Type.Array(Type.Object({ device: DeviceId, endpoint: Type.String() })),
});
export type ProfileReply = Static<typeof ProfileReply>;

/** `change`: the index of the refused change, or null for the request as a whole (a stale version). */
export const ProfileComment = Type.Object({ change: Type.Union([Type.Integer(), Type.Null()]), message: Type.String() });
export type ProfileComment = Static<typeof ProfileComment>;

export const ProfileUpdateReply = Type.Union([
  Type.Object({ ok: Type.Literal(true), version: Type.Integer() }),
  Type.Object({ ok: Type.Literal(false), version: Type.Integer(), profile: ProfileReply, comments: Type.Array(ProfileComment) }),
]);
export type ProfileUpdateReply = Static<typeof ProfileUpdateReply>;

// ---- claims ----

/** Namespaces and names compare case-insensitively (ASCII): the server folds both to lower case. */
export const CLAIM_NAMESPACE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$';
/** ASCII only, so no two names look alike; `@` and `+` let an email address be a name. */
export const CLAIM_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$';

export const ClaimBody = Type.Object({
  namespace: Type.String({ pattern: CLAIM_NAMESPACE_PATTERN, expected: 'a namespace (1 to 64 characters of A-Z, a-z, 0-9, ., _, : and -, starting with a letter or digit)' }),
  name: Type.String({ pattern: CLAIM_NAME_PATTERN, expected: 'a name (1 to 128 characters of A-Z, a-z, 0-9, ., _, @, + and -, starting with a letter or digit)' }),
});
export type ClaimBody = Static<typeof ClaimBody>;

export const ClaimReply = Type.Object({ id: Type.Integer({ minimum: 1 }) });
export type ClaimReply = Static<typeof ClaimReply>;

// ---- sessions (addition: the caller's user's refresh families) ----

/** A session is a refresh family: its id is the `fam` of its access tokens (this server makes 22-character ones). */
export const SESSION_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
/** GET /sessions answers at most this many, newest first. */
export const MAX_SESSIONS_LISTED = 100;

export const SessionParams = Type.Object({ id: Type.String({ pattern: SESSION_ID_PATTERN, expected: 'a session id (1 to 64 characters of A-Z, a-z, 0-9, - and _)' }) });
export type SessionParams = Static<typeof SessionParams>;

export const SessionsReply = Type.Object({
  sessions: Type.Array(
    Type.Object({
      id: Type.String({ pattern: SESSION_ID_PATTERN, expected: 'a session id (1 to 64 characters of A-Z, a-z, 0-9, - and _)' }),
      device: DeviceId,
      createdAt: Type.Integer(),
      /** true for the session of the access token that asked. */
      current: Type.Boolean(),
    }),
    { maxItems: MAX_SESSIONS_LISTED },
  ),
});
export type SessionsReply = Static<typeof SessionsReply>;

// ---- envelopes ----

/** 64 KiB of opaque bytes, base64url without padding (the route answers TOO_LARGE beyond). */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
export const ENVELOPE_ID_PATTERN = '^[A-Za-z0-9_-]{22}$';

export const EnvelopeBody = Type.Object({
  to: DeviceId,
  /** Opaque to the server: any string but U+0000 (base64url of bytes, as the SDK sends). */
  data: Type.String({ minLength: 1, pattern: '^[^\\u0000]+$', expected: 'text without U+0000' }),
});
export type EnvelopeBody = Static<typeof EnvelopeBody>;

export const EnvelopeReply = Type.Object({ id: Type.String({ pattern: ENVELOPE_ID_PATTERN, expected: 'an envelope id (22 base64url characters)' }) });
export type EnvelopeReply = Static<typeof EnvelopeReply>;

export const EnvelopeParams = Type.Object({ id: Type.String({ pattern: ENVELOPE_ID_PATTERN, expected: 'an envelope id (22 base64url characters)' }) });
export type EnvelopeParams = Static<typeof EnvelopeParams>;

export const EnvelopesReply = Type.Object({
  envelopes: Type.Array(Type.Object({ id: Type.String(), from: DeviceId, data: Type.String(), at: Type.Integer() })),
  /** true when more envelopes wait than one reply carries: delete these, then ask again. */
  more: Type.Boolean(),
});
export type EnvelopesReply = Static<typeof EnvelopesReply>;
