/**
 * A process that takes a lock file in turns with others, for the test of stale takeovers:
 * for each line "GO <round>" on stdin it takes the lock (withLockFile), appends
 * "enter <id> <round>" to the journal, holds the lock a moment, appends "exit <id> <round>",
 * lets go, and prints "DONE <round>". On "HOLD" it takes the lock, prints "HELD" and keeps
 * it until killed. Arguments: <lock file> <journal> <id>.
 */
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { withLockFile } from '../../src/client/node/lock-file.js';

const [lockPath, journal, id] = process.argv.slice(2) as [string, string, string];
process.stdout.write('READY\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'HOLD') {
    // Takes the lock and keeps it until the process is killed.
    void withLockFile(lockPath, 60_000, async () => {
      process.stdout.write('HELD\n');
      await new Promise(() => undefined);
    });
    continue;
  }
  const round = line.split(' ')[1];
  await withLockFile(lockPath, 60_000, async () => {
    appendFileSync(journal, `enter ${id} ${round}\n`);
    await new Promise((r) => setTimeout(r, 3));
    appendFileSync(journal, `exit ${id} ${round}\n`);
  });
  process.stdout.write(`DONE ${round}\n`);
}
