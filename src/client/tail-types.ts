/**
 * Types of the Tail API as the SDK sees them. The frame shapes come from the protocol's
 * own definitions (type-only imports: nothing of the server's validators reaches the
 * browser bundle).
 */
import type {
  AttestReply,
  ConnectReply,
  LeaseReply,
  ReadReply,
  SignalKind,
  TailEvent,
  TailLimitsView,
  TailOpArgs,
  WriteReply,
} from '../protocol/tail-schemas.js';

export type { AttestReply, ConnectReply, LeaseReply, ReadReply, SignalKind, TailEvent, TailLimitsView, TailOpArgs, WriteReply };

/** The WebSocket subprotocol of the Tail API. */
export const TAIL_PROTOCOL = 'datagrove.v1';

/** What each op answers (the fields next to `re`). */
export interface TailOpReplies {
  connect: ConnectReply;
  lease: LeaseReply;
  release: Record<string, never>;
  read: ReadReply;
  write: WriteReply;
  signal: Record<string, never>;
  attest: AttestReply;
  ping: Record<string, never>;
}

export type TailOpName = keyof TailOpReplies;

/**
 * The part of a WebSocket the SDK uses: the browser's WebSocket and the `ws` package both
 * fit. Handlers take `never` so that either's event types are accepted; the SDK reads only
 * `data` of message events and `code`/`reason` of close events.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Close codes of the Tail API. */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  abuse: 4400,
  unauthorized: 4401,
  revoked: 4403,
  slow: 4408,
  rateLimited: 4429,
  /** Used by the SDK itself when it abandons a socket that stopped answering. */
  stale: 4000,
} as const;
