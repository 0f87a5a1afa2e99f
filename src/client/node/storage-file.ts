/**
 * KeyStorage in one JSON file (Node only; never part of the browser bundle). The file is
 * created with mode 0600 (owner read/write only) because it holds the device's secret keys
 * and the refresh token. Writes go to a temp file that is fsynced and renamed over the old
 * one, so a crash leaves either the old or the new content, never a torn file. Every
 * read-modify-write of a file is serialized: across the instances of one process by a
 * queue per path, across processes by a lock file next to it (`<path>.lock`, created
 * exclusively; one left by a crashed process is taken over after LOCK_STALE_MS).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { sleep } from '../backoff.js';
import type { JsonValue, KeyStorage } from '../key-storage.js';

/** The queue of read-modify-write cycles of each file (by absolute path), shared by instances. */
const chains = new Map<string, Promise<unknown>>();

/** How long to try for another process's lock before failing (ms). */
const LOCK_WAIT_MS = 10_000;
/** A lock file older than this is left over by a process that died holding it (ms). */
const LOCK_STALE_MS = 30_000;

async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    try {
      await (await open(lockPath, 'wx', 0o600)).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockPath).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) await unlink(lockPath).catch(() => undefined);
      else if (Date.now() > deadline) throw new Error(`${lockPath}: another process holds the key file's lock`);
      else await sleep(wait);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

/**
 * A KeyStorage kept in `path` (created on first save, mode 0600).
 *
 * @example
 * ```ts
 * import { FileKeyStorage } from 'datagrove/client/node';
 * const storage = new FileKeyStorage('./.datagrove/keys.json');
 * ```
 */
export class FileKeyStorage implements KeyStorage {
  private readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
  }

  private async readAll(): Promise<Record<string, JsonValue>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${this.path} is not a key file`);
    return parsed as Record<string, JsonValue>;
  }

  private async writeAll(values: Record<string, JsonValue>): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(values, null, 1));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600);
    await rename(tmp, this.path);
  }

  /** Serializes read-modify-write cycles of this file (in this process, then across processes). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const locked = async () => {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      return withLock(`${this.path}.lock`, fn);
    };
    const run = (chains.get(this.path) ?? Promise.resolve()).then(locked, locked);
    const tail = run.catch(() => undefined);
    chains.set(this.path, tail);
    void tail.then(() => {
      if (chains.get(this.path) === tail) chains.delete(this.path);
    });
    return run;
  }

  load(name: string): Promise<JsonValue | null> {
    return this.serial(async () => (await this.readAll())[name] ?? null);
  }

  save(name: string, value: JsonValue): Promise<void> {
    return this.serial(async () => {
      const all = await this.readAll();
      all[name] = value;
      await this.writeAll(all);
    });
  }

  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const all = await this.readAll();
      if (!(name in all)) return;
      delete all[name];
      await this.writeAll(all);
    });
  }
}
