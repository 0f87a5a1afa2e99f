/**
 * The Datagrove client SDK (browser and Node). Every export is named here; Node-only
 * pieces live under `node/` and are never part of the browser bundle.
 */
export { DatagroveClient, type ClientOptions, type ClientEvents } from './client.js';
export { Log, type LogEntry, type LogOptions, type LogRole, type LogState, type LogEvents, type OutboxEvent, type RestoredEvent } from './log.js';
export {
  AuthClient,
  type AuthClientOptions,
  type FetchLike,
  type SessionTokens,
  type OidcSignedIn,
  type RefreshedTokens,
  type MeInfo,
  type SessionInfo,
  type SiteInfo,
  type JoinInfo,
  type HttpLease,
  type ShardMapInfo,
} from './auth-client.js';
export { Session, type SessionOptions, type SessionState } from './session.js';
export { DeviceKeys, DEVICE_KEYS_NAME, verifyDeviceSignature, verifyBoxSig, deviceFingerprint } from './device-keys.js';
export { MemoryKeyStorage, type KeyStorage, type JsonValue, type LockOptions } from './key-storage.js';
export { IndexedDbKeyStorage } from './storage-indexeddb.js';
export { TailConnection, type TailConnectionOptions, type TailConnectionEvents, type TailConnectionState, type RequestOptions } from './tail-connection.js';
export {
  TAIL_PROTOCOL,
  CLOSE,
  type WebSocketLike,
  type WebSocketConstructor,
  type TailEvent,
  type TailOpName,
  type TailOpReplies,
  type ConnectReply,
  type LeaseReply,
  type ReadReply,
  type WriteReply,
} from './tail-types.js';
export type { RtcPeerConnectionLike, RtcPeerConnectionConstructor, RtcDataChannelLike, RtcSessionDescriptionLike } from './rtc-types.js';
export { ShardRouter, pickShard, tailUrl, type ShardRouterOptions } from './shards.js';
export { signGrant, grantHash, readGrant, type GrantSpec, type GrantPayload } from './grants.js';
export {
  encodeEntry,
  decodeEntry,
  entrySigner,
  originPrefix,
  ENTRY_MAGIC,
  ENTRY_VERSION,
  ENTRY_VERSION_UNSIGNED,
  ENTRY_SIGNATURE_BYTES,
  MAX_HEADER_BYTES,
  type EntryOrigin,
  type DecodedEntry,
  type EntrySigner,
  type OriginPrefix,
} from './entry-header.js';
export { backoffDelay, Backoff, type BackoffOptions } from './backoff.js';
export { b64urlEncode, b64urlDecode, utf8, fromUtf8 } from './bytes.js';
export { DgError, type ErrorCode } from '../protocol/errors.js';
// End-to-end encryption: user key, device approval, site keys, the payload codec (docs/keys.md).
export { KeyManager, type KeyManagerOptions, type KeyManagerEvents } from './keys/key-manager.js';
export { UserKey } from './keys/user-key.js';
export type { UserKeyState } from './keys/user-key-flows.js';
export type { DeviceApprovalRequest, ApprovalResult, ApprovalOutcome } from './keys/device-approval.js';
export type { ShareSpec, Delivery } from './keys/site-key-flows.js';
export type { Writer } from './keys/writers.js';
export { EntryCipher, type SiteKeySource } from './keys/entry-cipher.js';
export type { PayloadCodec, PayloadContext } from './crypto/payload-codec.js';
export { checkAttestation, type ServerKey, type Attested, type AttestationCheck } from './keys/attestation.js';
export { encodeQr, type QrCode } from './qr/encoder.js';
export { qrSvg } from './qr/svg.js';
