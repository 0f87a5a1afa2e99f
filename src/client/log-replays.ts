/**
 * Refuses entries that repeat a writer's sequence number. A writer stream's seqs only grow
 * in the log (the leader sequences each stream in order, and recovery resends in order), so
 * an entry whose (device, stream) already delivered this seq or a later one is a replay: an
 * old entry delivered again as new, by the server or by a member who copied it. Neither
 * the writer's signature nor the encryption can tell (a replayed entry's bytes are genuine:
 * it verifies and opens), so the Log delivers it with an error instead of its payload. A
 * signed entry is recorded only once its signature verified, and unsigned entries go to a
 * guard of their own (log-admission.ts), so a forgery cannot make its writer's real entry
 * look like a replay.
 *
 * What it cannot see: a replay of an entry from before the first index this Log delivered
 * (its `from`), or of a stream forgotten after `maxStreams` newer ones (oldest first).
 */
import type { EntryOrigin } from './entry-header.js';

/** Writer streams remembered per Log (each opening of a log by a writer is a new stream). */
export const MAX_REMEMBERED_STREAMS = 100_000;

export class ReplayGuard {
  /** `device.stream` → the highest seq delivered, in order of last use. */
  private readonly last = new Map<string, number>();

  constructor(private readonly maxStreams = MAX_REMEMBERED_STREAMS) {}

  /** Whether an entry of `origin`'s stream was recorded (and is still remembered). */
  knows(origin: EntryOrigin): boolean {
    return this.last.has(`${origin.device}.${origin.stream}`);
  }

  /** True when `origin` repeats a seq of its stream; otherwise records it and returns false. */
  repeats(origin: EntryOrigin): boolean {
    const key = `${origin.device}.${origin.stream}`;
    const last = this.last.get(key);
    if (last !== undefined) {
      if (origin.seq <= last) return true;
      this.last.delete(key);
    }
    this.last.set(key, origin.seq);
    if (this.last.size > this.maxStreams) this.last.delete(this.last.keys().next().value as string);
    return false;
  }
}
