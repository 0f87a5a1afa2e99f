/**
 * The public shapes of a Log (log.ts) and what the client hands each Log.
 */
import type { PayloadCodec } from './crypto/payload-codec.js';
import type { EntryOrigin } from './entry-header.js';
import type { RtcPeerConnectionConstructor } from './rtc-types.js';
import type { TailConnection } from './tail-connection.js';
import type { KeyStorage } from './key-storage.js';
import type { DgError } from '../protocol/errors.js';

/** One entry as subscribers see it: the app's payload, its index, and who wrote it. */
export interface LogEntry {
  index: number;
  payload: Uint8Array;
  /**
   * The writer (device, writer stream, seq) its SDK header names; null for an entry written
   * without the header. The device is proven only when `signed` is true.
   */
  origin: EntryOrigin | null;
  /**
   * True when the entry carries a signature by `origin.device` that verifies (over the site,
   * the log, the header and the payload as written). False for an entry without the header,
   * one with an unsigned header (written by an SDK before signatures: anyone could have
   * written it in that name), and one whose signature does not verify (then with `error`).
   */
  signed: boolean;
  /**
   * Set when the entry is refused or its payload could not be opened; `payload` is then empty.
   * FORBIDDEN: its signature does not verify (it is not `origin.device`'s), or the codec holds
   * no key for it; CONFLICT: a replay of a seq its writer stream already delivered;
   * BAD_REQUEST: the payload does not open.
   */
  error?: DgError;
}

export type LogRole = 'leader' | 'follower';
export type LogState = 'opening' | 'ready' | 'recovering' | 'closed';

export interface LogEvents extends Record<string, unknown> {
  role: LogRole;
  leader: string | null;
  state: LogState;
  /** The devices holding a handle on the log changed (`log.peers`, now); empty once the log closed. */
  peers: string[];
  /** A fatal error: the log is closed. */
  error: DgError;
  /** Appends an earlier Log of this device left in the outbox were taken up (`outbox` option). */
  restored: RestoredEvent;
  /** A restored append settled: in the log at `index`, or never to be written (`error`). */
  outbox: OutboxEvent;
}

/** Appends of writer stream `stream` (seqs `seqs`), left in the outbox by a Log that is gone, now restored. */
export interface RestoredEvent {
  stream: string;
  seqs: number[];
}

/** A restored append (writer stream `stream`, seq `seq`) is in the log at `index`, or failed for good with `error`. */
export type OutboxEvent = { stream: string; seq: number; index: number } | { stream: string; seq: number; error: DgError };

export interface LogOptions {
  /**
   * Seals payloads before they are sent and opens them before delivery (end-to-end
   * encryption: docs/keys.md). Default: the client's codec (`client.setCodec`, which a
   * started KeyManager sets); `null`: none, for a log written in plaintext.
   */
  codec?: PayloadCodec | null;
  /**
   * First index to deliver (default 0: the whole log), or `'end'`: only what is written
   * after the log opened (its length when first leased). A number beyond the log's length
   * fails the log with BAD_REQUEST.
   */
  from?: number | 'end';
  /** Take leadership when it is free (default true). */
  lead?: boolean;
  /** Wait this long for a WebRTC channel to the leader before relaying, ms (default 3000). */
  channelTimeoutMs?: number;
  /** Resend unacknowledged entries to the leader after this long, ms (default 4000). */
  retransmitMs?: number;
  /**
   * A persistent outbox (a KeyStorage with `lock`; it may be the client's own): each append
   * is kept there, as the entry it sends (sealed when the log has a codec), before it is
   * sent, until it is seen in the log or refused for good. Appends a Log of this device
   * left there (the app or process died, or closed the log, before they settled) are taken
   * up when the log is opened again and written exactly once (events `restored`, `outbox`).
   * At most 10 000 entries and 16 MiB wait per Log: over that, `append` rejects with
   * RATE_LIMITED. Default: none (appends pending when the app dies are lost).
   */
  outbox?: KeyStorage;
}

/** What the client gives each Log (not part of the public API). */
export interface LogContext {
  site: string;
  log: string;
  device: string;
  /** The device's Ed25519 signature of `message` (entries are signed with the device key). */
  sign: (message: Uint8Array) => Promise<Uint8Array>;
  connectionFor: (site: string) => Promise<TailConnection>;
  redirected: (site: string, url: string) => Promise<TailConnection>;
  grantFor: (site: string) => string | undefined;
  /** Whether this device may write on the log, as the auth service says now (rejects when it cannot be asked). */
  mayWrite: () => Promise<boolean>;
  /** How many times this client's access to the site has grown (`client.join`, an `attest`): rights learned before the last are stale. */
  accessVersion: () => number;
  /** This Log's lease attested the app's grant: the client's access to the site grew. */
  accessGained: () => void;
  RTCPeerConnection?: RtcPeerConnectionConstructor;
  rtcConfig?: object;
  onClosed: () => void;
}
