/**
 * How a Log turns `append` calls into entries when that takes time (signing, entry-header.ts,
 * and sealing when the log has a codec, payload-pipeline.ts, are both asynchronous) without
 * disturbing its guarantees:
 * - seq numbers follow the order of `append` calls: calls are committed (`commit` takes their
 *   seqs and queues their entries) one after another, in order;
 * - a call's seqs are taken only once every entry of the call is prepared as those seqs (the
 *   signature and the codec bind them), so a call whose preparation fails rejects as a whole
 *   and leaves no gap in the writer stream (the leader sequences each stream without gaps);
 * - once stopped (the log closed), a call not yet committed rejects, and takes no seqs.
 *
 * The calls waiting when a step starts (up to MAX_STEP_ENTRIES entries) are prepared together,
 * each as the seqs it will take if the calls before it succeed, at most PREPARE_WINDOW entries
 * at a time, and committed together: appends made together travel together, and many small
 * calls cost what one large call does. When a call fails, the later calls of the step are
 * not committed as prepared (their seqs would leave a gap): those that failed too reject,
 * the others are prepared again, as their new seqs, in the next step.
 */
import { DgError } from '../protocol/errors.js';

export interface AppendHooks {
  /** The last seq taken (0 before the first). */
  lastSeq: () => number;
  /** The entry of `payload` as seq `seq`; rejects when it cannot be made. */
  prepare: (payload: Uint8Array, seq: number) => Promise<Uint8Array>;
  /**
   * Optional: keeps the entries a step is about to commit (as seqs base+1…) before they are
   * committed, so before anything sends them; a rejection rejects the step's calls, which
   * take no seqs.
   */
  persist?: (base: number, entries: Uint8Array[]) => Promise<void>;
  /** Takes seqs base+1… for `entries` and queues them; each promise resolves with its index once durable. */
  commit: (base: number, entries: Uint8Array[]) => Promise<number>[];
}

/**
 * Entries in preparation at once, at most: enough to keep WebCrypto's workers busy, few
 * enough that the main thread, which starts each signature and takes each result, is never
 * held for long (about 2 ms a window, against 20 ms for 1000 started at once).
 */
export const PREPARE_WINDOW = 32;
/** Entries prepared in one step, at most (a larger call is a step of its own). */
export const MAX_STEP_ENTRIES = 1024;

interface Call {
  payloads: Uint8Array[];
  resolve: (queued: Promise<number>[]) => void;
  reject: (err: DgError) => void;
}

interface Prepared {
  call: Call;
  /** The call's place in its step. */
  index: number;
  base: number;
  entries: Uint8Array[];
  /** Set when an entry failed. */
  error: DgError | null;
}

export class AppendQueue {
  private calls: Call[] = [];
  private running = false;
  private count = 0;
  private stopped: DgError | null = null;

  constructor(private readonly hooks: AppendHooks) {}

  /** Payloads of calls not yet committed. */
  get waiting(): number {
    return this.count;
  }

  /** Prepares and commits `payloads` after every earlier call; resolves with their indexes once durable. */
  add(payloads: Uint8Array[]): Promise<number[]> {
    if (this.stopped !== null) return Promise.reject(this.stopped);
    this.count += payloads.length;
    const queued = new Promise<Promise<number>[]>((resolve, reject) => this.calls.push({ payloads, resolve, reject }));
    if (!this.running) {
      this.running = true;
      // Started once the current task's other calls are in: they go together.
      queueMicrotask(() => void this.run());
    }
    return queued.then((promises) => Promise.all(promises));
  }

  /** Calls not yet committed reject with `err`, now and later. */
  stop(err: DgError): void {
    this.stopped ??= err;
    const waiting = this.calls;
    this.calls = [];
    for (const c of waiting) this.settle(c, this.stopped);
  }

  private async run(): Promise<void> {
    while (this.calls.length > 0) {
      let n = 0;
      let k = 0;
      while (k < this.calls.length && (k === 0 || n + this.calls[k]!.payloads.length <= MAX_STEP_ENTRIES)) n += this.calls[k++]!.payloads.length;
      const step = this.calls.splice(0, k);
      const retry: Call[] = [];
      let ok: Prepared[] = [];
      let failed = false;
      for (const p of await this.prepare(step, this.hooks.lastSeq())) {
        if (p.error !== null) {
          failed = true;
          this.settle(p.call, p.error);
        } else if (this.stopped !== null) {
          this.settle(p.call, this.stopped);
        } else if (failed) {
          retry.push(p.call); // prepared (or not) as seqs it cannot take now
        } else {
          ok.push(p);
        }
      }
      if (ok.length > 0 && this.hooks.persist !== undefined) {
        try {
          await this.hooks.persist(ok[0]!.base, ok.flatMap((p) => p.entries));
        } catch (e) {
          const err = e instanceof DgError ? e : new DgError('UNAVAILABLE', 'append: the entries could not be kept', { cause: e });
          for (const p of ok) this.settle(p.call, err);
          ok = [];
        }
      }
      for (const p of ok) {
        if (this.stopped !== null) this.settle(p.call, this.stopped);
        else this.settle(p.call, null, p.base, p.entries);
      }
      this.calls.unshift(...retry);
    }
    this.running = false;
  }

  /** Commits the call (`err` null) or rejects it. */
  private settle(call: Call, err: DgError | null, base = 0, entries: Uint8Array[] = []): void {
    this.count -= call.payloads.length;
    if (err !== null) return call.reject(err);
    try {
      call.resolve(this.hooks.commit(base, entries));
    } catch (e) {
      call.reject(e instanceof DgError ? e : new DgError('INTERNAL', 'append failed', { cause: e }));
    }
  }

  /**
   * Prepares the entries of `calls` as seqs base+1…, at most PREPARE_WINDOW at a time; once
   * a call fails, no more of its entries nor of later calls' are started. Resolves when none
   * is under way.
   */
  private async prepare(calls: Call[], base: number): Promise<Prepared[]> {
    const prepared: Prepared[] = [];
    const items: [Prepared, number][] = [];
    let at = base;
    for (const call of calls) {
      const p: Prepared = { call, index: prepared.length, base: at, entries: new Array<Uint8Array>(call.payloads.length), error: null };
      prepared.push(p);
      for (let i = 0; i < call.payloads.length; i++) items.push([p, i]);
      at += call.payloads.length;
    }
    let firstFailed = Infinity;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const [p, i] = items[next++]!;
        if (p.error !== null || p.index > firstFailed) continue;
        try {
          p.entries[i] = await this.hooks.prepare(p.call.payloads[i]!, p.base + 1 + i);
        } catch (err) {
          p.error ??= err instanceof DgError ? err : new DgError('INTERNAL', 'append: an entry could not be sealed or signed', { cause: err });
          firstFailed = Math.min(firstFailed, p.index);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PREPARE_WINDOW, items.length) }, worker));
    return prepared;
  }
}
