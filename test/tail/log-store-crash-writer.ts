/**
 * Child process of the SQLite crash test (log-store-sqlite.test.ts): appends pipelined
 * writes through a GroupCommitter as fast as it can and prints `ack <length>` for every
 * write once its commit resolved, until it is killed.
 *   node --import tsx test/tail/log-store-crash-writer.ts <db path>
 */
import { pathToFileURL } from 'node:url';
import { GroupCommitter } from '../../src/tail/group-commit.js';
import { openSqliteLogStore } from '../../src/tail/sqlite-log-store.js';

/** Entry i's exact bytes: the reader checks each index holds its own entry, once. */
export function crashEntry(i: number): Buffer {
  return Buffer.from(`${i}:${'x'.repeat(i % 97)}`);
}

export const CRASH_SITE = 'crash';
export const CRASH_LOG = 'main';

async function main(path: string): Promise<void> {
  const store = openSqliteLogStore(path);
  const gc = new GroupCommitter(store, { maxBatch: 32 });
  const device = 'crashwriter'.padEnd(43, '0');
  let next = (await store.state(CRASH_SITE, CRASH_LOG)).length;
  let n = 0;
  for (;;) {
    // A leader's pipeline: several writes at increasing `at` before any ack.
    const pending = [];
    for (let k = 0; k < 12; k++) {
      const count = 1 + (n % 3);
      const entries = Array.from({ length: count }, (_, j) => crashEntry(next + j));
      pending.push(gc.submit({ site: CRASH_SITE, log: CRASH_LOG, at: next, epoch: 0, device, wid: `w${process.pid}.${n++}`, entries }));
      next += count;
    }
    for (const p of pending) {
      const r = await p;
      if (r.status !== 'ok') {
        process.stderr.write(`unexpected result ${JSON.stringify(r)}\n`);
        process.exit(2);
      }
      // Synchronous on a pipe: once written, the parent will read it even after SIGKILL.
      process.stdout.write(`ack ${r.length}\n`);
    }
  }
}

// Runs only as the entry point, never when the test imports crashEntry from this file.
const path = process.argv[2];
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href && path !== undefined) {
  main(path).catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  });
}
