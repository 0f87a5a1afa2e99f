/**
 * How a Log runs its PayloadCodec (payload-codec.ts) without disturbing its guarantees:
 * - a payload is sealed as the seq the Log's append queue (log-append-queue.ts) gives it,
 *   then signed; the queue takes a call's seqs, in the order of the calls, only once the
 *   whole call is sealed and signed (the codec binds them), so a call whose sealing fails
 *   rejects as a whole and leaves no gap in the writer stream;
 * - delivered batches are opened as they arrive, their entries concurrently, but handed to
 *   subscribers in the log's order: a batch waiting for a key (a new epoch on its way)
 *   holds back the delivery of the later ones, not their opening, so what they ask of the
 *   key source (the keys, the site's key epoch on the server) is asked once for them all;
 *   an entry that does not open is delivered with `error` and an empty payload, never
 *   dropped, so indexes stay dense; one refused before (`error` already set) is not opened.
 */
import { DgError } from '../../protocol/errors.js';
import type { LogEntry } from '../log-types.js';
import type { PayloadCodec } from './payload-codec.js';

export class PayloadPipeline {
  private opening: Promise<void> = Promise.resolve();

  constructor(
    private readonly codec: PayloadCodec,
    private readonly where: { site: string; log: string; device: string; stream: string },
  ) {}

  /** Bytes sealing adds to a payload. */
  get overhead(): number {
    return this.codec.overhead;
  }

  /** Seals `payload` as this writer's `seq`. */
  seal(payload: Uint8Array, seq: number): Promise<Uint8Array> {
    const { site, log, device, stream } = this.where;
    return this.codec.seal(payload, { site, log, origin: { device, stream, seq } });
  }

  /** Opens the payloads of `entries` in place, then calls `deliver` (batches in call order). */
  open(entries: LogEntry[], deliver: (entries: LogEntry[]) => void): void {
    const { site, log } = this.where;
    const opened = Promise.all(
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
    this.opening = this.opening.then(async () => {
      await opened;
      deliver(entries);
    });
  }
}
