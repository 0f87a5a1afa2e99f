/**
 * The server's group-commit histogram (`datagrove_tail_commit_batch_writes`: writes of one
 * log committed together) read from its /metrics, so a benchmark can say how many writes
 * each durable commit carried in its measured window (the difference of two readings).
 */
export interface CommitCounts {
  /** Writes committed (the histogram's sum). */
  sum: number;
  /** Commit groups, per log (the histogram's count). */
  count: number;
}

export async function commitCounts(port: number): Promise<CommitCounts> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const num = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2] ?? Number.NaN);
  return { sum: num('datagrove_tail_commit_batch_writes_sum'), count: num('datagrove_tail_commit_batch_writes_count') };
}

/** Mean writes per commit group between two readings. */
export function writesPerCommit(a: CommitCounts, b: CommitCounts): number {
  return (b.sum - a.sum) / (b.count - a.count);
}
