/**
 * One fan-out round, the same client code against the real server and the relay peer: a
 * leader writes the payload in batches (pipelined, at most `window` batches not yet
 * delivered to every follower), followers count delivered entries and record delivery
 * latency from the timestamp in each batch's first entry.
 *
 * A follower takes entries from `tail` events (server) or relayed `write` frames (peer);
 * when an event carries no entries, or skips ahead, it reads the missing range with `read`.
 */
import type { Payload } from './payload.js';
import { stampOf } from './payload.js';
import { Samples } from './stats.js';
import type { Frame, WsClient } from './ws-client.js';

export interface Conn {
  client: WsClient;
  /** Opaque (a string from the server; 0 for the relay). */
  handle: string | number;
}

export interface RoundStats {
  deliveries: number;
  seconds: number;
  latency: Samples;
  /** How many follower frames carried entries vs needed a read. */
  pushed: number;
  reads: number;
  frames: number;
}

const STALL_MS = 60_000;

class Follower {
  pos = 0;
  private target = 0;
  private reading = false;

  constructor(
    private readonly conn: Conn,
    private readonly payload: Payload,
    private readonly stats: RoundStats,
    private readonly onBatches: (upTo: number) => void,
    private readonly fail: (e: Error) => void,
  ) {
    conn.client.onFrame = (f) => this.frame(f);
  }

  private frame(f: Frame): void {
    const isTail = f.ev === 'tail' && f.handle === this.conn.handle;
    const isRelayed = f.op === 'write';
    if (!isTail && !isRelayed) return;
    this.stats.frames++;
    const at = f.at as number;
    const entries = Array.isArray(f.entries) ? (f.entries as string[]) : undefined;
    const length = typeof f.length === 'number' ? f.length : at + (entries?.length ?? 0);
    if (length > this.target) this.target = length;
    if (this.reading) return;
    if (entries !== undefined && at <= this.pos) {
      this.stats.pushed++;
      this.apply(at, entries);
    } else if (this.pos < this.target) void this.readMore();
  }

  private apply(at: number, entries: string[]): void {
    const skip = this.pos - at;
    if (skip < 0 || skip >= entries.length) return;
    const now = performance.now();
    const batch = this.payload.batch;
    for (let k = skip; k < entries.length; k++) {
      if ((at + k) % batch === 0) this.stats.latency.add(now - stampOf(entries[k] ?? ''));
    }
    const n = entries.length - skip;
    this.pos += n;
    this.stats.deliveries += n;
    this.onBatches(this.pos >= this.payload.total ? this.payload.batches : Math.floor(this.pos / batch));
  }

  private async readMore(): Promise<void> {
    this.reading = true;
    try {
      while (this.pos < this.target) {
        this.stats.reads++;
        const r = await this.conn.client.request('read', { handle: this.conn.handle, from: this.pos, limit: 1000 });
        const entries = r.entries as string[];
        if (entries.length === 0) break;
        this.apply(r.from as number, entries);
      }
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.reading = false;
    }
  }
}

/**
 * A client-side token bucket for the leader's writes: `perSec` writes a second, `burst`
 * saved up. Both sides get the same one, so it only keeps the leader inside the server's
 * per-session operation limit (an over-limit write would be refused, not measured).
 */
export interface Pace {
  perSec: number;
  burst: number;
}

/** Runs one round; resolves when every follower has every entry and every write is acked. */
export function fanoutRound(leader: Conn, followers: Conn[], payload: Payload, window: number, pace?: Pace): Promise<RoundStats> {
  const stats: RoundStats = { deliveries: 0, seconds: 0, latency: new Samples(), pushed: 0, reads: 0, frames: 0 };
  const B = payload.batches;
  const delivered = new Int32Array(B); // followers that have all of batch b
  const progress = followers.map(() => 0); // batches complete per follower
  let frontier = 0; // batches delivered to every follower
  let sent = 0;
  let acked = 0;
  let lastProgress = performance.now();
  const t0 = performance.now();
  let tokens = pace?.burst ?? 0;
  let tokensAt = t0;
  let paceTimer: NodeJS.Timeout | null = null;
  /** Whether the pace allows one more write now (takes the token); always true without a pace. */
  const mayWrite = (): boolean => {
    if (pace === undefined) return true;
    const now = performance.now();
    tokens = Math.min(pace.burst, tokens + ((now - tokensAt) * pace.perSec) / 1000);
    tokensAt = now;
    if (tokens < 1) return false;
    tokens--;
    return true;
  };

  return new Promise<RoundStats>((resolve, reject) => {
    let done = false;
    const stop = () => {
      done = true;
      clearInterval(watchdog);
      if (paceTimer !== null) clearTimeout(paceTimer);
    };
    const fail = (e: Error) => {
      if (done) return;
      stop();
      reject(e);
    };
    const finishIfDone = () => {
      if (done || frontier < B || acked < B) return;
      stop();
      stats.seconds = (performance.now() - t0) / 1000;
      resolve(stats);
    };
    const pump = () => {
      while (!done && sent < B && sent - frontier < window) {
        if (!mayWrite()) {
          // Out of tokens: come back when the next one is due.
          paceTimer ??= setTimeout(() => {
            paceTimer = null;
            pump();
          }, 1);
          return;
        }
        const b = sent++;
        const entries = payload.stamped(b);
        const at = b * payload.batch;
        leader.client.send('write', { handle: leader.handle, at, entries, wid: `w${b}` }).then(
          (r) => {
            if (r.error !== undefined || r.length !== at + entries.length) {
              fail(new Error(`write at ${at} answered ${JSON.stringify(r).slice(0, 200)}`));
              return;
            }
            acked++;
            lastProgress = performance.now();
            finishIfDone();
          },
          (e: unknown) => fail(e instanceof Error ? e : new Error(String(e))),
        );
      }
    };
    followers.forEach((conn, i) => {
      new Follower(
        conn,
        payload,
        stats,
        (upTo) => {
          for (let b = progress[i] ?? 0; b < upTo; b++) delivered[b] = (delivered[b] ?? 0) + 1;
          if (upTo > (progress[i] ?? 0)) progress[i] = upTo;
          const before = frontier;
          while (frontier < B && delivered[frontier] === followers.length) frontier++;
          if (frontier > before) {
            lastProgress = performance.now();
            pump();
            finishIfDone();
          }
        },
        fail,
      );
      conn.client.ws.once('close', (code) => fail(new Error(`follower ${i} closed with ${code}`)));
    });
    leader.client.ws.once('close', (code) => fail(new Error(`leader closed with ${code}`)));
    const watchdog = setInterval(() => {
      if (performance.now() - lastProgress > STALL_MS) {
        fail(new Error(`stalled: sent ${sent}, acked ${acked}, delivered to all ${frontier} of ${B} batches; follower positions ${progress.join(',')}`));
      }
    }, 1000);
    pump();
  });
}
