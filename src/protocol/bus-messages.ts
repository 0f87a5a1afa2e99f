/**
 * Subjects and message shapes of the internal bus (PROTOCOL.md "Internal bus").
 * The in-process bus and NATS carry exactly these JSON values. Services share this file,
 * never each other's code.
 */
import type { ErrorCode } from './errors.js';
import type { Right } from './ids.js';

export const SUBJECTS = {
  /** req AccessRequest → AccessReply: may this device lease this log? */
  authAccess: 'dg.auth.access',
  /** req JoinRequest → JoinReply: verify a grant and record access. */
  authJoin: 'dg.auth.join',
  /** req {} → RevokedList: devices and refresh families revoked within the access-token lifetime. */
  authRevoked: 'dg.auth.revoked',
  /** pub RevokeEvent. */
  tailRevoke: 'dg.tail.revoke',
  /** pub AccessChanged: a user's access to a site grew (a grant was joined). */
  tailAccess: 'dg.tail.access',
  /** pub UserEvent: a user-scoped event for that user's live sessions. */
  tailUser: 'dg.tail.user',
  /** pub TailNodeMessage: cluster membership of tail nodes (heartbeats and departures). */
  tailNode: 'dg.tail.node',
  /** pub NotifyPublish, coalesced per log by tail. */
  notifyPublish: 'dg.notify.publish',
  /** pub PresenceMessage. */
  notifyPresence: 'dg.notify.presence',
  /** pub NotifyHello: a notify process started; every tail node answers with presence, then its recent publishes. */
  notifyHello: 'dg.notify.hello',
  /** req NotifyUpdate → NotifyUpdateReply. */
  notifyUpdate: 'dg.notify.update',
  /** pub PushGone: the push service said a device's endpoint is gone; auth drops it from the profile. */
  authPushGone: 'dg.auth.push-gone',
} as const;

export type Subject = (typeof SUBJECTS)[keyof typeof SUBJECTS];

export interface BusErrorReply {
  ok: false;
  error: { code: ErrorCode; message: string };
}

export interface AccessRequest {
  user: string;
  device: string;
  site: string;
  log: string;
}

/** `expiresAt` in ms since the epoch, null for no expiry. `allowed:false` means needproof. */
export type AccessReply =
  | { ok: true; allowed: true; rights: Right[]; logs: string[]; expiresAt: number | null }
  | { ok: true; allowed: false }
  | BusErrorReply;

export interface JoinRequest {
  user: string;
  device: string;
  /** A compact JWS grant, or the hash of a declared one. */
  grant: string;
}

export type JoinReply =
  | { ok: true; site: string; logs: string[]; rights: Right[]; expiresAt: number | null }
  | BusErrorReply;

export interface RevokedList {
  ok: true;
  devices: string[];
  families: string[];
  /** (user, site) pairs that lost access, with when (auth's clock, ms); absent from older auth nodes. */
  access?: { user: string; site: string; at: number }[];
  /**
   * Set when `access` holds only the most recent pairs: pairs that lost access at or before
   * this time (auth's clock, ms) may be missing.
   */
  accessTruncatedAt?: number;
}

/**
 * A revocation. `device`/`family`: every session and token of that device or refresh family
 * dies at once (4403). `access`: the listed (user, site) pairs lost some access; tail drops
 * its cached answers for them and re-checks the live handles.
 */
export interface RevokeEvent {
  reason: 'device' | 'family' | 'grant';
  device?: string;
  family?: string;
  /** `at`: when the access went (auth's clock, ms), so a node can tell it already knows it. */
  access?: { user: string; site: string; at?: number }[];
}

/**
 * `user`'s access to `site` grew: a grant was joined (over HTTP, with `attest`, on any auth
 * node). Tail drops its cached answers for the pair and asks auth again about the live
 * handles of that user on that site, so wider rights (write where there was only read) take
 * effect without waiting for the cache to age. `at`: when (auth's clock, ms). Losing one is
 * harmless beyond delay: tail re-asks auth about any cached answer after
 * `accessCacheTtlMs`. A revocation never travels here (dg.tail.revoke).
 */
export interface AccessChanged {
  user: string;
  site: string;
  at: number;
}

/** A user-scoped event; `device` set means only that device's sessions get it. */
export interface UserEvent {
  user: string;
  device?: string;
  event: { ev: 'device'; device: string; name: string; identity?: string } | { ev: 'envelope'; id: string; from: string };
}

/**
 * Membership of one tail node. A live node publishes a heartbeat every `ttlMs / 3`; a node
 * that heard nothing from it for `ttlMs` drops it (a killed node leaves by itself). A
 * draining node says `leaving` so its sites move at once. `at` is the sender's clock (ms),
 * for logs only: receivers time expiry with their own clock. A process that just started
 * sends a probe: every tail node then announces itself at once instead of at its next
 * heartbeat (`from` names the asker, for logs; `instance` tells its own probe from that of
 * another process with the same node id, which is answered).
 */
export type TailNodeMessage =
  | { id: string; url: string; ttlMs: number; at: number }
  | { id: string; url: string; leaving: true }
  | { probe: true; from: string; instance?: string };

/** A push endpoint the push service answered 404 or 410 for (notify → auth). */
export interface PushGone {
  user: string;
  device: string;
  endpoint: string;
}

/**
 * A log grew to `length`. `ageMs` (an addition, optional): how long before this message was
 * published tail took the newest write counted in `length`. Notify dates the write on its
 * own clock (its receipt time minus `ageMs`) and pushes no user who was online at or after
 * that moment; without it the write counts as made when the message arrives. A duration,
 * not a time, so that tail and notify clocks need not agree.
 */
export interface NotifyPublish {
  site: string;
  log: string;
  length: number;
  ageMs?: number;
}

/**
 * A notify process started (or its bus came back after an outage): it may have missed
 * publishes, and it knows nobody's presence. Every tail node answers by publishing its full
 * presence snapshot and then, again, the last `dg.notify.publish` of each log it published
 * recently, with `ageMs` counted from when it took the newest write (both on the subjects
 * they always use; same publisher, so notify applies the presence first). `instance`
 * names the sender, for logs.
 */
export interface NotifyHello {
  instance: string;
}

/**
 * Presence of users on one tail node. `full` snapshots (every ttlMs/3) carry every online
 * user of the node; deltas carry changes. A node's presence expires `ttlMs` after its last
 * message, so a dead node's users go offline by themselves.
 */
export interface PresenceMessage {
  node: string;
  ttlMs: number;
  full: boolean;
  online: string[];
  offline: string[];
  /**
   * An addition, sent only in answer to dg.notify.hello (in deltas after the full snapshot):
   * users who were online on this node and left it within the last hour, with how many ms
   * ago. A notify process that just started learns from it who was online after a write that
   * tail republishes, which it would otherwise have forgotten with its memory.
   */
  left?: { user: string; agoMs: number }[];
}

export interface NotifyUpdate {
  user: string;
  version: number;
  changes?: unknown[];
  full?: unknown;
}

export interface NotifyUpdateReply {
  ok: boolean;
}
