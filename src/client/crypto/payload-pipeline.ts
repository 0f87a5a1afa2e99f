/**
 * How a Log runs its PayloadCodec (payload-codec.ts) without disturbing its guarantees:
 * - appends are sealed one call after another, so seq numbers follow the order of `append`
 *   calls; they are taken only once every payload of a call is sealed (the codec binds them),
 *   so a call whose sealing fails rejects as a whole and leaves no gap in the writer stream
 *   (the leader sequences each stream without gaps);
 * - delivered batches are opened concurrently within a batch but handed to subscribers in
 *   the log's order; an entry that does not open is delivered with `error` and an empty
 *   payload, never dropped, so indexes stay dense; one refused before (`error` already
 *   set) is not opened.
 */
import { DgError } from '../../protocol/errors.js';
import type { LogEntry } from '../log-types.js';
import type { PayloadCodec } from './payload-codec.js';

export class PayloadPipeline {
  private sealing: Promise<unknown> = Promise.resolve();
  private opening: Promise<void> = Promise.resolve();

  constructor(
    private readonly codec: PayloadCodec,
    private readonly where: { site: string; log: string; device: string; stream: string },
  ) {}

  /** Bytes sealing adds to a payload. */
  get overhead(): number {
    return this.codec.overhead;
  }

  /**
   * Seals `payloads` as seqs lastSeq()+1…, then `commit(base, sealed)` queues them (and takes
   * the seqs); resolves with their indexes once durable.
   */
  seal(payloads: Uint8Array[], lastSeq: () => number, commit: (base: number, sealed: Uint8Array[]) => Promise<number>[]): Promise<number[]> {
    const { site, log, device, stream } = this.where;
    const run = this.sealing.then(async () => {
      const base = lastSeq();
      const sealed = await Promise.all(payloads.map((p, i) => this.codec.seal(p, { site, log, origin: { device, stream, seq: base + 1 + i } })));
      return commit(base, sealed);
    });
    this.sealing = run.catch(() => undefined);
    return run.then((promises) => Promise.all(promises));
  }

  /** Opens the payloads of `entries` in place, then calls `deliver` (batches in call order). */
  open(entries: LogEntry[], deliver: (entries: LogEntry[]) => void): void {
    const { site, log } = this.where;
    this.opening = this.opening.then(async () => {
      await Promise.all(
        entries.map(async (e) => {
          if (e.error !== undefined) return; // refused before opening (a bad signature, a replay)
          try {
            e.payload = await this.codec.open(e.payload, { site, log, origin: e.origin });
          } catch (err) {
            e.error = err instanceof DgError ? err : new DgError('BAD_REQUEST', 'payload does not open', { cause: err });
            e.payload = new Uint8Array(0);
          }
        }),
      );
      deliver(entries);
    });
  }
}
