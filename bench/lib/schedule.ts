/**
 * A steady open-loop schedule: `rate` writes per second spread over `writers`, for
 * `seconds`. Write k is due at t0 + k / rate and belongs to writer k mod writers. Every
 * timer tick hands all writes now due to `onDue` as one burst, so the project and the
 * floor see exactly the same arrivals grouped the same way. Latency is measured from a
 * write's due time, not from when it was sent, so a stalled sender cannot hide its own
 * delay (no coordinated omission).
 */
export interface Due {
  /** Global sequence number of the write. */
  k: number;
  writer: number;
  /** Index of this write within its writer (its log position when each write has one entry). */
  n: number;
  /** performance.now() at which it was due. */
  at: number;
}

export async function runSchedule(rate: number, writers: number, seconds: number, onDue: (burst: Due[]) => void): Promise<number> {
  const total = Math.round(rate * seconds);
  const t0 = performance.now() + 5;
  let k = 0;
  while (k < total) {
    const now = performance.now();
    const burst: Due[] = [];
    while (k < total) {
      const at = t0 + (k * 1000) / rate;
      if (at > now) break;
      burst.push({ k, writer: k % writers, n: Math.floor(k / writers), at });
      k++;
    }
    if (burst.length > 0) onDue(burst);
    if (k < total) await new Promise((r) => setTimeout(r, 0));
  }
  return total;
}
