/**
 * The follower's side of appending: sends this device's pending entries to the leader
 * (through the PeerHub) and resends what is not acknowledged.
 *
 * Exactly-once rules (with the Log):
 * - Entries never sent can go to the leader at any time.
 * - An entry sent to an earlier epoch's leader is resent only after the Log has read the
 *   log to its end under the new epoch (so an entry that made it is found, not resent):
 *   the Log calls `setLeader` only after that catch-up.
 * - Within one epoch an entry may be resent (not found in the log within `retransmitMs`):
 *   the leader of that epoch knows every entry it sequenced and drops duplicates.
 * - An entry stops being pending only when the Log reads it in the log (or it fails):
 *   the leader's acknowledgements settle nothing.
 */
import { b64urlEncode } from './bytes.js';
import type { LinkMessage } from './link-messages.js';
import type { PendingAppends, PendingEntry } from './log-pending.js';

export interface ForwarderOptions {
  pending: PendingAppends;
  stream: string;
  /** The next seq the writer will use (the floor when nothing is pending). */
  nextSeq: () => number;
  /**
   * How far the log has been checked: every entry below this index has settled this
   * writer's appends it holds (so no pending entry sits below it).
   */
  seen: () => number;
  send: (leader: string, msg: LinkMessage) => void;
  /** Resends went unanswered twice in a row: the link to `leader` should be rebuilt. */
  stalled: (leader: string) => void;
  /** Whether what was sent to `leader` has not all left yet (queued for the relay): nothing is resent meanwhile. */
  busy: (leader: string) => boolean;
  retransmitMs: number;
  /** Entries per submit message, at most. */
  batch: number;
  /**
   * Entry bytes per submit message, at most (an entry larger than this goes alone). A
   * message is sent whole or not at all, so it must fit the link: relayed signals have a
   * byte budget, and a message is at most 1024 fragments.
   */
  batchBytes: number;
}

/**
 * How long the leader may refuse our entries for want of a write right before the appends
 * fail: a writer whose socket is reconnecting has no handle for a moment (the leader saw it
 * leave), and its entries must wait for the new handle, not fail.
 */
const DENIED_GRACE_MS = 3000;

export class Forwarder {
  private leader: string | null = null;
  /** When the leader's refusals (`denied`) began; 0 while it takes our entries. */
  private deniedSince = 0;
  private epoch = -1;
  private timer: ReturnType<typeof setInterval> | null = null;
  private unanswered = 0;
  private resendTimer: ReturnType<typeof setTimeout> | null = null;
  /** When what was sent was last seen still queued for the link. */
  private busyAt = 0;

  constructor(private readonly opts: ForwarderOptions) {}

  get target(): { leader: string | null; epoch: number } {
    return { leader: this.leader, epoch: this.epoch };
  }

  /** Follow `leader` at `epoch` (null: no leader; nothing is sent). */
  setLeader(leader: string | null, epoch: number): void {
    this.leader = leader;
    this.epoch = epoch;
    this.unanswered = 0;
    this.deniedSince = 0;
    if (leader !== null && this.timer === null) {
      this.timer = setInterval(() => this.retransmit(), Math.max(50, this.opts.retransmitMs / 2));
    }
    if (leader === null) this.stop();
    else this.flush();
  }

  /** Sends every pending entry not yet sent to the current epoch. */
  flush(): void {
    if (this.leader === null) return;
    const fresh = this.opts.pending.all().filter((p) => p.sentEpoch !== this.epoch);
    this.send(fresh);
  }

  private retransmit(): void {
    if (this.leader === null) return;
    const now = Date.now();
    if (this.opts.busy(this.leader)) {
      this.busyAt = now; // an entry is sent once it left, not when it was queued
      return;
    }
    const all = this.opts.pending.all();
    if (!all.some((p) => p.sentEpoch === this.epoch && now - Math.max(p.sentAt, this.busyAt) >= this.opts.retransmitMs)) return;
    if (++this.unanswered >= 2) {
      this.unanswered = 0;
      this.opts.stalled(this.leader);
    }
    // Resend everything of the epoch from the oldest, so the leader's gap (if any) fills.
    this.send(all.filter((p) => p.sentEpoch === this.epoch));
  }

  private send(entries: PendingEntry[]): void {
    const leader = this.leader;
    if (leader === null || entries.length === 0) return;
    const now = Date.now();
    for (let i = 0; i < entries.length; ) {
      let end = i + 1;
      let bytes = entries[i]!.bytes.length;
      while (end < entries.length && end - i < this.opts.batch && bytes + entries[end]!.bytes.length <= this.opts.batchBytes) bytes += entries[end++]!.bytes.length;
      const chunk = entries.slice(i, end);
      i = end;
      for (const p of chunk) {
        p.sentEpoch = this.epoch;
        p.sentAt = now;
      }
      this.opts.send(leader, {
        t: 'submit',
        epoch: this.epoch,
        stream: this.opts.stream,
        floor: this.opts.pending.floor(this.opts.nextSeq()),
        seen: this.opts.seen(),
        entries: chunk.map((p) => b64urlEncode(p.bytes)),
      });
    }
  }

  /**
   * The leader did not take our entries (it is not ready for this epoch yet): send them
   * again shortly. Resending within an epoch is safe (the leader drops duplicates).
   */
  notTaken(): void {
    if (this.resendTimer !== null || this.leader === null) return;
    this.resendTimer = setTimeout(() => {
      this.resendTimer = null;
      if (this.leader !== null && this.opts.busy(this.leader)) return this.notTaken(); // still sending: later
      for (const p of this.opts.pending.all()) if (p.sentEpoch === this.epoch) p.sentEpoch = -1;
      this.flush();
    }, 200);
  }

  /**
   * The leader refused our entries: as far as it knows, this device may not write. Resends
   * shortly; returns true once the refusals have lasted DENIED_GRACE_MS (then the right is
   * missing, and the caller fails the appends).
   */
  denied(now = Date.now()): boolean {
    if (this.deniedSince === 0) this.deniedSince = now;
    if (now - this.deniedSince >= DENIED_GRACE_MS) {
      this.deniedSince = 0;
      return true;
    }
    this.notTaken();
    return false;
  }

  /**
   * An `ack` from the leader followed (the Log checks who sent it): the leader took our
   * entries, so the link works and the refusals are over. It settles nothing: an append
   * settles when the Log reads its entry in the log, at the index it is found at there, so
   * no leader, honest or not, can make the app take an entry for durable that is not in
   * the log. (The leader's write reaches the follower's feed as a `tail` event about when
   * the ack would: waiting for it costs no time worth having.)
   */
  onAck(msg: Extract<LinkMessage, { t: 'ack' }>): void {
    if (msg.stream !== this.opts.stream) return;
    this.unanswered = 0;
    this.deniedSince = 0;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.resendTimer !== null) clearTimeout(this.resendTimer);
    this.timer = null;
    this.resendTimer = null;
    this.leader = null;
  }
}
