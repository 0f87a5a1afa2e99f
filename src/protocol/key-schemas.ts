/**
 * Wire shapes of the key directory (docs/protocol.md, "Additions: user keys, device
 * certificates and site members"): the user key chain, device certificates, and the member
 * list a site admin encrypts a new site key to. The signed statements themselves are in
 * key-statements.ts (shared with the client SDK, which must not pull in TypeBox).
 */
import { Type, type Static } from '@sinclair/typebox';
import { BoxKey, COMPACT_JWS_PATTERN, DeviceId, EMAIL_QUERY_PATTERN, MAX_EMAIL_LENGTH, Rights, SIGNATURE_PATTERN, SiteId, UserId } from './auth-schemas.js';
import { B64URL_32_PATTERN } from './ids.js';
import { DEVICE_CERT_TYP, MAX_USER_KEY_VERSION } from './key-statements.js';

export { DEVICE_CERT_TYP, MAX_USER_KEY_VERSION, userKeyStatement } from './key-statements.js';

export const MAX_CERTIFICATE_LENGTH = 2048;

const PublicKey = Type.String({ pattern: B64URL_32_PATTERN, expected: '32 bytes in base64url without padding (43 characters)' });
const Signature = Type.String({ pattern: SIGNATURE_PATTERN, expected: 'a 64-byte Ed25519 signature in base64url without padding (86 characters)' });

export const DeviceCertHeader = Type.Object({ alg: Type.Literal('EdDSA'), typ: Type.Literal(DEVICE_CERT_TYP) }, { additionalProperties: false });
export type DeviceCertHeader = Static<typeof DeviceCertHeader>;

/** A device certificate's claims: `user`'s key version `ukv` vouches for device `sub` and its box key. Times in seconds. */
export const DeviceCertPayload = Type.Object({
  sub: DeviceId,
  box: BoxKey,
  user: UserId,
  ukv: Type.Integer({ minimum: 1, maximum: MAX_USER_KEY_VERSION }),
  iat: Type.Integer({ minimum: 0 }),
});
export type DeviceCertPayload = Static<typeof DeviceCertPayload>;

export const UserKeyBody = Type.Object({
  publicKey: PublicKey,
  // No maximum here: a version past MAX_USER_KEY_VERSION is refused by the route with 413.
  version: Type.Integer({ minimum: 1 }),
  sig: Signature,
  prevSig: Type.Optional(Signature),
});
export type UserKeyBody = Static<typeof UserKeyBody>;

export const UserKeyEntry = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  publicKey: PublicKey,
  sig: Signature,
  prevSig: Type.Union([Signature, Type.Null()]),
});
export type UserKeyEntry = Static<typeof UserKeyEntry>;

export const UserKeyReply = Type.Object({ user: UserId, version: Type.Integer({ minimum: 1 }), publicKey: PublicKey });
export type UserKeyReply = Static<typeof UserKeyReply>;

export const CertificateBody = Type.Object({ certificate: Type.String({ maxLength: MAX_CERTIFICATE_LENGTH, pattern: COMPACT_JWS_PATTERN, expected: 'a compact JWS (three base64url parts joined by dots)' }) });
export type CertificateBody = Static<typeof CertificateBody>;

export const CertificateReply = Type.Object({ device: DeviceId, keyVersion: Type.Integer({ minimum: 1 }) });
export type CertificateReply = Static<typeof CertificateReply>;

export const CertificatesQuery = Type.Object({
  user: Type.Optional(UserId),
  email: Type.Optional(Type.String({ minLength: 3, maxLength: MAX_EMAIL_LENGTH, pattern: EMAIL_QUERY_PATTERN, expected: 'an email address' })),
});
export type CertificatesQuery = Static<typeof CertificatesQuery>;

export const CertificatesReply = Type.Object({
  user: UserId,
  /** The user key chain, oldest first (empty: the user has no key yet). */
  userKeys: Type.Array(UserKeyEntry),
  /** Certificates of the user's live devices. */
  certificates: Type.Array(Type.Object({ device: DeviceId, boxKey: BoxKey, keyVersion: Type.Integer({ minimum: 1 }), certificate: Type.String() })),
  /** A revoked device held the newest user key: the user's devices should rotate it. */
  rotationRequired: Type.Boolean(),
});
export type CertificatesReply = Static<typeof CertificatesReply>;

export const MembersReply = Type.Object({
  site: SiteId,
  owner: UserId,
  /** Users who hold rights on the site: the owner, joined users, and subjects of live grants. */
  members: Type.Array(Type.Object({ user: UserId, rights: Rights })),
  /** Emails granted rights on the site by a live grant (their users may not have joined yet). */
  emails: Type.Array(Type.Object({ email: Type.String({ maxLength: MAX_EMAIL_LENGTH }), rights: Rights })),
  /** true when the lists were cut at their limit. */
  more: Type.Boolean(),
});
export type MembersReply = Static<typeof MembersReply>;
