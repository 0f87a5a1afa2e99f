/**
 * Where the SDK keeps what must survive a restart: the device's secret keys and the
 * session (refresh token). One small interface, three implementations: IndexedDB in the
 * browser (storage-indexeddb.ts), a 0600 JSON file in Node (node/storage-file.ts), and
 * memory (tests, or apps that keep nothing).
 *
 * Guarantees every implementation gives: `save` resolves only once the value is stored
 * (a later `load`, even after a restart, returns it); values round-trip as JSON.
 *
 * Several clients of one device may share a storage (the tabs of an origin on one IndexedDB
 * database, processes on one key file). A storage that can make them take turns has `lock`;
 * the `Session` refreshes inside it, so only one client at a time spends the refresh token.
 */
import { LockChain } from './lock-chain.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface LockOptions {
  /** Aborted when the caller stops waiting for the lock. */
  signal?: AbortSignal;
}

export interface KeyStorage {
  load(name: string): Promise<JsonValue | null>;
  save(name: string, value: JsonValue): Promise<void>;
  remove(name: string): Promise<void>;
  /**
   * Optional. Runs `fn` while holding the exclusive lock `name`, shared by every client of
   * this storage that can reach it (see each implementation for which ones), and releases
   * it when `fn` settles, also when it throws or rejects; resolves or rejects as `fn` did.
   * Callers queue while it is held. A holder that dies (a closed tab, a killed process) does
   * not keep it for good. `fn` may call `load`, `save` and `remove` of this storage (they
   * never wait for a lock taken here) but must not take `name` again (not reentrant: that
   * waits forever). It rejects without running `fn` only when the lock cannot be taken.
   * `opts.signal` says the caller no longer wants the lock: a storage whose wait can keep a
   * process alive (FileKeyStorage polls for another process's lock file) then stops waiting
   * and rejects without running `fn`; others may ignore it.
   */
  lock?<T>(name: string, fn: () => Promise<T>, opts?: LockOptions): Promise<T>;
}

/** Runs `fn` holding `storage`'s lock `name` when it has one, else at once. */
export function withLock<T>(storage: KeyStorage, name: string, fn: () => Promise<T>): Promise<T> {
  return storage.lock === undefined ? fn() : storage.lock(name, fn);
}

/**
 * Keeps values in memory only (lost on restart). Its `lock` serializes the clients that
 * share this instance.
 *
 * @example
 * ```ts
 * import { MemoryKeyStorage } from 'datagrove/client';
 * const storage = new MemoryKeyStorage();
 * await storage.save('x', { a: 1 });
 * ```
 */
export class MemoryKeyStorage implements KeyStorage {
  private readonly values = new Map<string, string>();
  private readonly locks = new LockChain();

  async load(name: string): Promise<JsonValue | null> {
    const v = this.values.get(name);
    return v === undefined ? null : (JSON.parse(v) as JsonValue);
  }

  async save(name: string, value: JsonValue): Promise<void> {
    this.values.set(name, JSON.stringify(value));
  }

  async remove(name: string): Promise<void> {
    this.values.delete(name);
  }

  lock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(name, fn);
  }
}
