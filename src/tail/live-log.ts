/**
 * The in-memory state of one (site, log) on this node, and the handles sessions hold on it.
 * The store is the source of truth (and the fence); `epoch` and `committed` are caches of
 * it, `decided` is the length after every accepted write, committed or not.
 *
 * Handle ids are per log: every session's handle on a log has the log's `hid`. A session
 * holds at most one handle per log, so the id is unambiguous within the session, and an
 * event for a log is the same bytes for every follower (built once, sent to all).
 */
import { randomBytes } from 'node:crypto';
import type { Right } from '../protocol/ids.js';
import { ReplyQueue, type ReplySlot } from './reply-queue.js';
import type { Session } from './session.js';

export interface AccessGrant {
  rights: readonly Right[];
  /** ms since the epoch; null when it does not expire. */
  expiresAt: number | null;
}

/** Every right lets its holder read: admin implies read, and a writer must re-read to recover. */
export function canRead(rights: readonly Right[]): boolean {
  return rights.includes('read') || rights.includes('write') || rights.includes('admin');
}

export function canWrite(rights: readonly Right[]): boolean {
  return rights.includes('write') || rights.includes('admin');
}

/** The key of a (site, log) pair: `LiveLog.key`, and the map keys that follow it. */
export function logKey(site: string, name: string): string {
  return `${site}\u0000${name}`;
}

export class Handle {
  role: 'leader' | 'follower' = 'follower';
  /** The epoch this handle leads in (meaningful while role is leader). */
  epoch = 0;
  /**
   * It led, and a newer epoch (another node's leader) took the log from it: its role is
   * follower, and its writes are FENCED, not NOT_LEADER, until its next lease answers it.
   */
  fenced = false;
  access: AccessGrant;
  /** Removed from its log and session. */
  dead = false;
  /**
   * Released while a `lease` of the same session on the log, sent before the release, was
   * still running: gone for every later request; removed once that lease has answered.
   */
  releasing = false;
  /** A re-check of access with auth is running. */
  rechecking = false;
  /** Coalesced length-only tail event owed to a lagging follower (`lagAt` -1: none). */
  lagAt = -1;
  lagLength = 0;

  /**
   * This handle's address for `signal` (an addition to PROTOCOL.md): stamped as `peer` on the
   * signals it sends, so a reply reaches this very session when its device holds several.
   */
  readonly peer = `p${randomBytes(9).toString('base64url')}`;

  constructor(
    readonly session: Session,
    readonly log: LiveLog,
    access: AccessGrant,
  ) {
    this.access = access;
  }

  get id(): string {
    return this.log.hid;
  }
}

/** A write submitted to the store and not yet settled. */
export interface PendingWrite {
  handle: Handle;
  /** The request id, for the reply. */
  id: number;
  slot: ReplySlot;
  at: number;
  /** Counted in `decided` (false for a resend the store is expected to answer dup or nack). */
  decided: boolean;
  gen: number;
  /** `LiveLog.failures` when it was decided. */
  failures: number;
  /** The entries as the client sent them (base64url), reused verbatim for fan-out. */
  b64: string[];
  bytes: number;
  widKey: string | null;
  /** Resends of the same wid that arrived while this one was in flight. */
  waiters: { slot: ReplySlot; id: number }[];
}

/** A committed range waiting to be fanned out. */
export interface Committed {
  /** The group-commit batch it was committed in (GroupCommitter.batchNumber). */
  batch: number;
  at: number;
  length: number;
  b64: string[];
  bytes: number;
}

/** Leadership of a departed session, kept for the grace period. */
export interface Lapse {
  device: string;
  /** The epoch of the leadership kept; it ends when the grace does. */
  epoch: number;
  /** The device's user, when its session ended here (unknown for a grace loaded from the store). */
  user?: string;
  timer: NodeJS.Timeout;
}

export class LiveLog {
  epoch = 0;
  committed = 0;
  decided = 0;
  /**
   * Bumped whenever `decided` restarts from what is committed (a failed commit, a write the
   * store did not take as decided, a takeover): the nack of a write decided before then
   * tells the length the log has now.
   */
  gen = 0;
  /** Bumped when a commit fails: writes decided before it that the store then nacks fail too. */
  failures = 0;
  leader: Handle | null = null;
  lapse: Lapse | null = null;
  readonly handles = new Set<Handle>();
  readonly replies = new ReplyQueue();
  inflight = 0;
  /** performance.now() when a write last arrived while another of this log was in flight (its leader pipelines). */
  pipelinedAt = Number.NEGATIVE_INFINITY;
  readonly inflightWids = new Map<string, PendingWrite>();
  /** Recently committed write ids (device + wid) with their position; bounded. */
  readonly recentWids = new Map<string, { at: number; length: number }>();
  /**
   * Devices whose write ids the store remembers are in `recentWids` (true), or on their way
   * (the load); a device missing here has not written with a wid since the log loaded.
   */
  readonly widsLoaded = new Map<string, true | Promise<void>>();
  readonly fan: Committed[] = [];
  fanScheduled = false;
  /** The flush of `fan` waits for the next commit of this log (see Fanout). */
  fanHeld = false;
  fanTimer: NodeJS.Timeout | null = null;
  /** Serializes lease changes (leader election) on this log. */
  lock: Promise<unknown> = Promise.resolve();
  idleWaiters: (() => void)[] = [];
  /** Lease operations running on this log (they keep it in memory). */
  pins = 0;

  constructor(
    readonly key: string,
    readonly site: string,
    readonly name: string,
    readonly hid: string,
  ) {}

  leaderDevice(): string | null {
    return this.leader?.session.auth?.device ?? this.lapse?.device ?? null;
  }

  /** Devices of the other handle holders (only those whose handle may write, with `writersOnly`). */
  peers(except: Handle, writersOnly = false): string[] {
    const out = new Set<string>();
    for (const h of this.handles) {
      const dev = h.session.auth?.device;
      if (h !== except && dev !== undefined && (!writersOnly || canWrite(h.access.rights))) out.add(dev);
    }
    return [...out];
  }

  /**
   * Whether `device` holds a handle on this log (other than `except`) whose rights let it
   * write (false: only handles that may not), or null when it holds none. Peers are devices:
   * `peer` events follow this, not single handles; a holder's own device is a peer to it
   * while another session of that device holds a handle, as in `peers`.
   */
  deviceWrites(device: string, except?: Handle): boolean | null {
    let held = false;
    for (const h of this.handles) {
      if (h === except || h.session.auth?.device !== device) continue;
      if (canWrite(h.access.rights)) return true;
      held = true;
    }
    return held ? false : null;
  }

  /** The devices among `peers(except)` whose handle may write (whose entries a leader may take). */
  writers(except: Handle): string[] {
    return this.peers(except, true);
  }

  /** Resolves when no write of this log is in flight. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  settled(): void {
    this.inflight--;
    if (this.inflight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Nothing keeps this log in memory. */
  unused(): boolean {
    return this.handles.size === 0 && this.pins === 0 && this.lapse === null && this.inflight === 0 && this.replies.empty && !this.fanScheduled && this.fan.length === 0;
  }
}

export const RECENT_WIDS = 256;
