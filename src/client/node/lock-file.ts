/**
 * Exclusive locks shared by the processes of a machine through lock files (created with
 * O_EXCL, removed on release), and by the callers inside one process through a promise
 * chain per lock file (so two instances on one file queue without polling).
 *
 * Staleness: the holder touches its lock file every LOCK_TOUCH_MS for as long as it holds
 * it, so a live holder's file never looks stale however long its work takes (a session
 * refresh with retries can take many seconds); a process that died holding a lock stops
 * touching it, and its file is taken over once it is LOCK_STALE_MS old.
 */
import { mkdir, open, stat, unlink, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sleep } from '../backoff.js';
import { LockChain } from '../lock-chain.js';

/** A lock file untouched for this long was left by a process that died holding it (ms). */
const LOCK_STALE_MS = 30_000;
/** How often a holder touches its lock file (ms): well under LOCK_STALE_MS. */
const LOCK_TOUCH_MS = 5_000;

/** The callers of this process queued on each lock file (by absolute path). */
const local = new LockChain();

/**
 * Runs `fn` holding lock file `lockPath` (an absolute path): first in this process, then
 * across processes. Rejects without running `fn` when another process has held it
 * (touching it) for over `waitMs` since this caller's turn in the process came.
 */
export function withLockFile<T>(lockPath: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  return local.run(lockPath, async () => {
    await mkdir(dirname(lockPath), { recursive: true, mode: 0o700 });
    await acquire(lockPath, waitMs);
    const touch = setInterval(() => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    }, LOCK_TOUCH_MS);
    touch.unref();
    try {
      return await fn();
    } finally {
      clearInterval(touch);
      await unlink(lockPath).catch(() => undefined);
    }
  });
}

async function acquire(lockPath: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    try {
      await (await open(lockPath, 'wx', 0o600)).close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockPath).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) await unlink(lockPath).catch(() => undefined);
      else if (Date.now() > deadline) throw new Error(`${lockPath}: another process holds the lock`);
      else await sleep(wait);
    }
  }
}
