/**
 * Benchmark payloads: entries of a fixed size, incompressible, the first 8 bytes of the
 * first entry of each batch carrying the send time (performance.now() of the bench
 * process, where both the writer and the readers live), so a reader measures delivery
 * latency from the payload itself. Built once per benchmark and used for the project and
 * its peer alike.
 */
import { randomBytes } from 'node:crypto';

export class Payload {
  /** base64url of every entry; entry 0 of each batch is rebuilt at send time with a timestamp. */
  private readonly encoded: string[];
  private readonly firsts: Buffer[];

  constructor(
    readonly total: number,
    readonly entryBytes: number,
    readonly batch: number,
  ) {
    if (entryBytes < 8) throw new Error('entries need at least 8 bytes for the timestamp');
    const raw = randomBytes(total * entryBytes);
    this.encoded = [];
    this.firsts = [];
    for (let i = 0; i < total; i++) {
      const e = raw.subarray(i * entryBytes, (i + 1) * entryBytes);
      this.encoded.push(e.toString('base64url'));
      if (i % batch === 0) this.firsts.push(Buffer.from(e));
    }
  }

  get batches(): number {
    return Math.ceil(this.total / this.batch);
  }

  /** The entries of batch `b`, stamped now. */
  stamped(b: number): string[] {
    const from = b * this.batch;
    const entries = this.encoded.slice(from, Math.min(this.total, from + this.batch));
    const first = this.firsts[b];
    if (first === undefined) throw new Error(`no batch ${b}`);
    first.writeDoubleLE(performance.now(), 0);
    entries[0] = first.toString('base64url');
    return entries;
  }
}

/** The send time stamped into a batch's first entry (base64url). */
export function stampOf(entry: string): number {
  return Buffer.from(entry.slice(0, 12), 'base64url').readDoubleLE(0);
}
