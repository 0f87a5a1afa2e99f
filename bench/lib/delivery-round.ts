/**
 * One fan-out round over any transport: a writer sends the payload in batches (at most
 * `window` batches not yet delivered to every reader), readers report the entries they
 * receive, in order, and record delivery latency from the timestamp in each batch's first
 * entry (bench/lib/payload.ts). The transport-specific parts (how a batch is written and
 * acknowledged, how a reader receives entries) live in bench/lib/delivery-targets.ts, so the
 * real server, the bare relay, Socket.IO and Hocuspocus run exactly this loop.
 */
import type { Payload } from './payload.js';
import { stampOf } from './payload.js';
import { Samples } from './stats.js';

export interface Writer {
  /** Sends batch `entries` at log position `at`; resolves when the server acknowledged it (at once when the protocol has no acknowledgement). */
  write(at: number, entries: string[]): Promise<void>;
}

export interface Reader {
  /** Starts reporting received entries (position `at` of the first) to `onEntries`; errors to `fail`. */
  listen(onEntries: (at: number, entries: readonly string[]) => void, fail: (e: Error) => void): void;
}

export interface Group {
  writer: Writer;
  readers: Reader[];
  close(): Promise<void>;
}

export interface DeliveryStats {
  deliveries: number;
  seconds: number;
  latency: Samples;
}

const STALL_MS = 60_000;

/** Resolves when every reader has every entry and every write was acknowledged. */
export function deliveryRound(group: Group, payload: Payload, window: number): Promise<DeliveryStats> {
  const stats: DeliveryStats = { deliveries: 0, seconds: 0, latency: new Samples() };
  const { readers, writer } = group;
  const B = payload.batches;
  const batch = payload.batch;
  const complete = new Int32Array(B); // readers that have all of batch b
  const positions = readers.map(() => 0);
  const batchesDone = readers.map(() => 0);
  let frontier = 0;
  let sent = 0;
  let acked = 0;
  let lastProgress = performance.now();
  const t0 = performance.now();

  return new Promise<DeliveryStats>((resolve, reject) => {
    let done = false;
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      clearInterval(watchdog);
      reject(e);
    };
    const finishIfDone = () => {
      if (done || frontier < B || acked < B) return;
      done = true;
      clearInterval(watchdog);
      stats.seconds = (performance.now() - t0) / 1000;
      resolve(stats);
    };
    const pump = () => {
      while (!done && sent < B && sent - frontier < window) {
        const b = sent++;
        writer.write(b * batch, payload.stamped(b)).then(
          () => {
            acked++;
            lastProgress = performance.now();
            finishIfDone();
          },
          (e: unknown) => fail(e instanceof Error ? e : new Error(String(e))),
        );
      }
    };
    readers.forEach((reader, i) => {
      reader.listen((at, entries) => {
        const pos = positions[i] ?? 0;
        const skip = pos - at;
        if (skip < 0) return fail(new Error(`reader ${i} got entries at ${at} while at ${pos}: a gap`));
        if (skip >= entries.length) return;
        const now = performance.now();
        for (let k = skip; k < entries.length; k++) if ((at + k) % batch === 0) stats.latency.add(now - stampOf(entries[k] ?? ''));
        const n = entries.length - skip;
        positions[i] = pos + n;
        stats.deliveries += n;
        const upTo = pos + n >= payload.total ? B : Math.floor((pos + n) / batch);
        for (let b = batchesDone[i] ?? 0; b < upTo; b++) complete[b] = (complete[b] ?? 0) + 1;
        if (upTo > (batchesDone[i] ?? 0)) batchesDone[i] = upTo;
        const before = frontier;
        while (frontier < B && complete[frontier] === readers.length) frontier++;
        if (frontier > before) {
          lastProgress = performance.now();
          pump();
          finishIfDone();
        }
      }, fail);
    });
    const watchdog = setInterval(() => {
      if (performance.now() - lastProgress > STALL_MS) {
        fail(new Error(`stalled: sent ${sent}, acked ${acked}, delivered to all ${frontier} of ${B} batches; reader positions ${positions.slice(0, 20).join(',')}`));
      }
    }, 1000);
    pump();
  });
}
