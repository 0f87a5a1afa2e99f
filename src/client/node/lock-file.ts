/**
 * Exclusive locks shared by the processes of a machine through lock files (created with
 * O_EXCL, removed on release), and by the callers inside one process through a promise
 * chain per lock file (so two instances on one file queue without polling).
 *
 * Staleness: the holder touches its lock file every LOCK_TOUCH_MS for as long as it holds
 * it, so a live holder's file never looks stale however long its work takes (a session
 * refresh with retries can take many seconds); a process that died holding a lock stops
 * touching it, and its file is taken over once it is LOCK_STALE_MS old.
 *
 * Takeover is exclusive: of the waiters that find the same stale file, one wins. A stale
 * file is never removed (a waiter that removed one it had found stale could remove the
 * fresh file another waiter had created meanwhile). Instead a waiter first creates, with
 * O_EXCL, a claim named after that file (its inode and modification time), and only the
 * claim's creator takes the file over, by touching it in place if it is still that file,
 * untouched. A later waiter that still had the old file in view finds it touched and waits.
 * A claim's creator that dies before it is done leaves its claim file, which goes stale in
 * turn and is taken over the same way.
 *
 * A dead holder on the same machine is found sooner: each lock file (and claim) names the
 * process that made it or took it over (pid, host name and, on Linux, PID namespace), and
 * a waiter that sees the same host and namespace and no such process takes the file over
 * at once, by the same exclusive takeover. A pid reused since, another host, another
 * namespace or a file not yet written all count as alive: the 30 s staleness still applies.
 *
 * What is not covered: a holder that is alive but does not touch its file for LOCK_STALE_MS
 * (a process stopped, or an event loop blocked that long) loses the lock to a waiter while
 * it still runs.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { readlinkSync, type BigIntStats } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { sleep } from '../backoff.js';
import { LockChain } from '../lock-chain.js';

/** A lock file untouched for this long was left by a process that died holding it (ms). */
const LOCK_STALE_MS = 30_000;
/** How often a holder touches its lock file (ms): well under LOCK_STALE_MS. */
const LOCK_TOUCH_MS = 5_000;
/** Claims on claims (each left by a waiter that died taking over) followed, at most. */
const MAX_CLAIM_DEPTH = 4;

/** The callers of this process queued on each lock file (by absolute path). */
const local = new LockChain();

/** What a lock file or claim says of the process that holds it. */
interface Holder {
  pid: number;
  host: string;
  /** The PID namespace (Linux: the link /proc/self/ns/pid), or '' where there is none to read. */
  ns: string;
}

let me: { holder: Holder; text: string } | null = null;

/** This process, as written into the lock files it makes or takes over (read once). */
function self(): { holder: Holder; text: string } {
  if (me === null) {
    let ns = '';
    try {
      ns = readlinkSync('/proc/self/ns/pid');
    } catch {
      // Not Linux: no PID namespaces to tell apart.
    }
    const holder: Holder = { pid: process.pid, host: hostname(), ns };
    me = { holder, text: JSON.stringify(holder) };
  }
  return me;
}

/** This process's holder record, as the text written into lock files. */
function holderText(): string {
  return self().text;
}

/**
 * True when the file at `path` names a process of this machine and PID namespace that no
 * longer runs (so it died holding the file). False whenever that is not certain.
 */
async function holderGone(path: string): Promise<boolean> {
  let h: Partial<Holder>;
  try {
    h = JSON.parse(await readFile(path, 'utf8')) as Partial<Holder>;
  } catch {
    return false;
  }
  const mine = self().holder;
  if (typeof h !== 'object' || h === null || h.host !== mine.host || h.ns !== mine.ns) return false;
  if (typeof h.pid !== 'number' || !Number.isSafeInteger(h.pid) || h.pid <= 0 || h.pid === mine.pid) return false;
  try {
    process.kill(h.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Stale by age, or its holder is gone. */
async function abandoned(path: string, st: BigIntStats): Promise<boolean> {
  return isStale(st) || (await holderGone(path));
}

/**
 * Runs `fn` holding lock file `lockPath` (an absolute path): first in this process, then
 * across processes. Rejects without running `fn` when another process has held it
 * (touching it) for over `waitMs` since this caller's turn in the process came, or when
 * `signal` aborts before the lock is taken.
 */
export function withLockFile<T>(lockPath: string, waitMs: number, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  return local.run(lockPath, async () => {
    await mkdir(dirname(lockPath), { recursive: true, mode: 0o700 });
    const ino = await acquire(lockPath, waitMs, signal);
    const touch = setInterval(() => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    }, LOCK_TOUCH_MS);
    touch.unref();
    try {
      return await fn();
    } finally {
      clearInterval(touch);
      await release(lockPath, ino);
    }
  });
}

/** Waits for the lock; resolves with the inode of the lock file this process now holds. */
async function acquire(lockPath: string, waitMs: number, signal?: AbortSignal): Promise<bigint> {
  const deadline = Date.now() + waitMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    if (signal?.aborted === true) throw new Error(`${lockPath}: no longer waited for`);
    const ino = await create(lockPath);
    if (ino !== null) return ino;
    const held = await stat(lockPath, { bigint: true }).catch(() => null);
    if (held === null) continue; // released meanwhile: try again at once
    if ((await abandoned(lockPath, held)) && (await takeOver(lockPath, lockPath, held, 0))) return held.ino;
    if (Date.now() > deadline) throw new Error(`${lockPath}: another process holds the lock`);
    await sleep(wait, signal);
  }
}

/** Creates `path` exclusively, naming this process in it; its inode, or null when it exists. */
async function create(path: string): Promise<bigint | null> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw err;
  }
  try {
    await fh.writeFile(holderText());
    return (await fh.stat({ bigint: true })).ino;
  } finally {
    await fh.close();
  }
}

function isStale(st: BigIntStats): boolean {
  return Date.now() - Number(st.mtimeMs) > LOCK_STALE_MS;
}

/**
 * Takes over the stale file `path` (the lock file of `lockPath`, or a claim on it) as it was
 * seen (`seen`). True when this caller now holds it (it touched it in place); of all callers
 * with the same `seen`, at most one gets true.
 */
async function takeOver(lockPath: string, path: string, seen: BigIntStats, depth: number): Promise<boolean> {
  const claim = claimPath(lockPath, seen);
  if ((await create(claim)) === null) {
    // Another waiter claimed this file first. Only if it died doing so (its claim is stale)
    // does this caller take its claim over, and then the file.
    const other = await stat(claim, { bigint: true }).catch(() => null);
    if (other === null || depth >= MAX_CLAIM_DEPTH || !(await abandoned(claim, other))) return false;
    if (!(await takeOver(lockPath, claim, other, depth + 1))) return false;
  }
  try {
    return await touchIfUnchanged(path, seen);
  } finally {
    await unlink(claim).catch(() => undefined);
  }
}

/**
 * The claim on a file of `lockPath` (the lock file, or a claim on it) as `seen`: named after
 * the file's identity (device, inode, modification time), so a file touched since, or
 * another file under the same name, has another claim.
 */
export function claimPath(lockPath: string, seen: BigIntStats): string {
  const id = createHash('sha256').update(`${seen.dev}:${seen.ino}:${seen.mtimeNs}`).digest('hex').slice(0, 16);
  return `${lockPath}.${id}.take`;
}

/** Touches the file at `path`, naming this process, if it is still `seen`'s (same inode, untouched since). */
async function touchIfUnchanged(path: string, seen: BigIntStats): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'r+');
  } catch {
    return false; // released meanwhile
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (st.ino !== seen.ino || st.mtimeNs !== seen.mtimeNs) return false;
    // Now this process's: it names itself (the dead holder's pid must not stay in it).
    await fh.truncate(0);
    await fh.write(holderText(), 0);
    const now = new Date();
    await fh.utimes(now, now);
    return true;
  } finally {
    await fh.close();
  }
}

/** Removes the lock file if it is still the one this process holds. */
async function release(lockPath: string, ino: bigint): Promise<void> {
  const st = await stat(lockPath, { bigint: true }).catch(() => null);
  if (st?.ino === ino) await unlink(lockPath).catch(() => undefined);
}
