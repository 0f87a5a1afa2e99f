/**
 * KeyStorage in one JSON file (Node only; never part of the browser bundle). The file is
 * created with mode 0600 (owner read/write only) because it holds the device's secret keys
 * and the refresh token. Writes go to a temp file that is fsynced and renamed over the old
 * one, and the directory is fsynced after the rename (so the new name survives a power
 * loss): a crash leaves either the old or the new content, never a torn file. Every
 * read-modify-write of a file is serialized, across instances and processes, by the lock
 * file `<path>.lock` (lock-file.ts: one left by a crashed process is taken over once stale).
 * `lock(name)` holds another lock file, `<path>.<name>.<hash>.lock` (the name sanitized,
 * the hash of the whole name keeps sanitized names apart), so `fn` can save meanwhile.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { JsonValue, KeyStorage, LockOptions } from '../key-storage.js';
import { withLockFile } from './lock-file.js';

/** How long a read or write waits for another process's turn on the file (ms). */
const SAVE_WAIT_MS = 10_000;
/** How long `lock` waits for another process holding that lock (ms; its holder keeps it fresh). */
const LOCK_WAIT_MS = 60_000;

/** Makes a rename in `dir` durable; where a directory cannot be opened for it (Windows), the rename stands as is. */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
  } catch {
    return;
  }
  try {
    await fh.sync();
  } catch (err) {
    // Some file systems refuse fsync on a directory; the rename itself has happened.
    if (!['EINVAL', 'EISDIR', 'EPERM', 'EBADF'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await fh.close();
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
    await syncDirectory(dirname(this.path));
  }

  /** Serializes read-modify-write cycles of this file (in this process, then across processes). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return withLockFile(`${this.path}.lock`, SAVE_WAIT_MS, fn);
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

  /**
   * Runs `fn` holding lock `name` for every instance and process on this file. Rejects
   * without running `fn` when another process holds it for over a minute, or once
   * `opts.signal` aborts while it waits (its polling then ends: nothing keeps the process alive).
   */
  lock<T>(name: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
    const safe = name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 60);
    const hash = createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 12);
    return withLockFile(`${this.path}.${safe}.${hash}.lock`, LOCK_WAIT_MS, fn, opts.signal);
  }
}
