/**
 * The first step of delivering entries (Log.onEntries → here → codec → subscribers): checks
 * each entry's writer signature, then refuses replays, and only then counts the entry as
 * its writer's append.
 *
 * - A signed entry (header version 2) whose signature does not verify against its header's
 *   device is delivered at its index with `error` FORBIDDEN and an empty payload. It is never
 *   opened and never counts as an append of the writer it names: it settles none of this
 *   writer's appends, the leader does not acknowledge it to the follower it names, and it
 *   stays out of the replay guard, so the real entry with that seq is not taken for a replay.
 * - A verified entry (`signed: true`) goes through the replay guard (CONFLICT), then counts.
 * - An unsigned entry (header version 1, from earlier SDKs) is delivered with `signed: false`;
 *   its replays are tracked apart from signed entries' (a forged unsigned entry cannot make
 *   a signed stream's next entry look like a replay), and it counts only for a stream that
 *   writes unsigned entries (never this writer's own). An unsigned entry on a stream whose
 *   signed entries were delivered is refused (CONFLICT): a forgery, or a signed entry
 *   stripped of its signature and replayed.
 * - An entry without the header passes through (`origin: null`, `signed: false`).
 *
 * The signatures of a batch are verified concurrently (a batch's verification starts as it
 * arrives, while earlier batches may still be verifying), but batches are admitted one
 * after another, each in index order. This writer's own entries are not verified again when
 * their bytes are those of a pending append (it signed them). `settled()` resolves once every
 * batch pushed so far is admitted: the Log waits for it after a catch-up, so every entry up to
 * the log's end has counted before anything is sent again.
 */
import { DgError } from '../protocol/errors.js';
import { bytesEqual } from './bytes.js';
import { Ed25519Verifier } from './crypto/ed25519-verify.js';
import { decodeEntry, entrySigningMessage, signingScope, type DecodedEntry, type EntryOrigin } from './entry-header.js';
import { ReplayGuard } from './log-replays.js';
import type { LogEntry } from './log-types.js';

export interface AdmissionHooks {
  /** The bytes of this writer's append `seq` while it is pending. */
  pendingBytes: (seq: number) => Uint8Array | undefined;
  /** The entry at `index` is `origin`'s append (`signed`: its signature verified). */
  committed: (origin: EntryOrigin, index: number, signed: boolean) => void;
  /**
   * An append of this device (writer stream `stream`: this writer's, or an earlier one's
   * restored from the outbox) is in the log at `index`, but after a later seq of its
   * stream, so every reader refuses it as a replay: the append cannot count (nor be written
   * again, which would only repeat the refusal).
   */
  refusedOwn: (stream: string, seq: number, index: number) => void;
  /** A batch, admitted in the log's order: open and deliver it. */
  admitted: (entries: LogEntry[]) => void;
}

/** Shared by every Log: a device's public key is imported once. */
const verifier = new Ed25519Verifier();

export class Admission {
  private readonly scope: Uint8Array;
  private readonly replays = new ReplayGuard();
  private readonly unsignedReplays = new ReplayGuard();
  /** The last batch still being admitted; null when all are. */
  private tail: Promise<void> | null = null;

  constructor(
    where: { site: string; log: string },
    private readonly self: { device: string; stream: string },
    private readonly hooks: AdmissionHooks,
  ) {
    this.scope = signingScope(where.site, where.log);
  }

  /** Entries `at…`, each pushed once and in order (the feed's guarantee). */
  push(at: number, raw: Uint8Array[]): void {
    const decoded = raw.map((bytes) => decodeEntry(bytes));
    const checks = decoded.map((d, i) => this.check(d, raw[i]!));
    if (this.tail === null && !checks.some((c) => c instanceof Promise)) {
      this.admit(at, decoded, checks as boolean[]);
      return;
    }
    const run = (this.tail ?? Promise.resolve())
      .then(async () => this.admit(at, decoded, await Promise.all(checks)))
      .catch((err: unknown) => console.error('datagrove: admitting log entries failed', err));
    this.tail = run;
    void run.then(() => {
      if (this.tail === run) this.tail = null;
    });
  }

  /** Resolves when every batch pushed so far is admitted. */
  settled(): Promise<void> {
    return this.tail ?? Promise.resolve();
  }

  /** Whether a signed entry's signature verifies (true for entries without one: nothing to check). */
  private check(d: DecodedEntry, bytes: Uint8Array): boolean | Promise<boolean> {
    const o = d.origin;
    if (o === null || d.signature === null) return true;
    if (o.device === this.self.device && o.stream === this.self.stream) {
      const mine = this.hooks.pendingBytes(o.seq);
      if (mine !== undefined && (mine === bytes || bytesEqual(mine, bytes))) return true;
    }
    const publicKey = d.signedHeader.subarray(2, 34);
    return verifier.verify(o.device, publicKey, entrySigningMessage(this.scope, d.signedHeader, d.payload), d.signature);
  }

  private admit(at: number, decoded: DecodedEntry[], valid: boolean[]): void {
    const out: LogEntry[] = [];
    for (let i = 0; i < decoded.length; i++) {
      const index = at + i;
      const { origin, payload, signature } = decoded[i]!;
      if (origin === null) {
        out.push({ index, payload, origin, signed: false });
        continue;
      }
      const signed = signature !== null;
      if (signed && !valid[i]) {
        const error = new DgError('FORBIDDEN', `entry ${index}: its signature does not verify as writer ${origin.device}'s`);
        out.push({ index, payload: new Uint8Array(0), origin, signed: false, error });
        continue;
      }
      if (!signed && this.replays.knows(origin)) {
        // The SDK never writes unsigned entries on a stream that signs: this is a forgery, or
        // a signed entry stripped of its signature to be replayed (the AAD does not bind the
        // header's version), which the unsigned replay guard would not see.
        const error = new DgError('CONFLICT', `entry ${index}: unsigned, on writer ${origin.device}'s stream that signs its entries`);
        out.push({ index, payload: new Uint8Array(0), origin, signed, error });
        continue;
      }
      if ((signed ? this.replays : this.unsignedReplays).repeats(origin)) {
        const error = new DgError('CONFLICT', `entry ${index} repeats seq ${origin.seq} of writer ${origin.device}: a replay`);
        out.push({ index, payload: new Uint8Array(0), origin, signed, error });
        if (signed && origin.device === this.self.device) this.hooks.refusedOwn(origin.stream, origin.seq, index);
        continue;
      }
      this.hooks.committed(origin, index, signed);
      out.push({ index, payload, origin, signed });
    }
    this.hooks.admitted(out);
  }
}
