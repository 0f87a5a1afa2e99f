/**
 * KeyStorage in the browser's IndexedDB: one object store of JSON values by name.
 * IndexedDB is origin-scoped and not readable by other sites; the secret keys stay on the
 * device (they are never sent anywhere by the SDK).
 *
 * `lock` is a Web Lock (`navigator.locks`, named `<dbName>:<name>`), shared by every tab and
 * worker of the origin and released by the browser when its holder's tab closes or crashes.
 * Where Web Locks are missing (old browsers, pages that are not a secure context) it falls
 * back to a chain inside the page: the clients of one page take turns, tabs do not.
 */
import type { JsonValue, KeyStorage } from './key-storage.js';
import { LockChain } from './lock-chain.js';

const STORE = 'kv';

/** The fallback without Web Locks, shared by the instances in this page. */
const pageLocks = new LockChain();

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

/**
 * A KeyStorage backed by IndexedDB database `dbName` (default "datagrove"). `locks` is the
 * Web Locks manager (default `navigator.locks`; null for the in-page fallback).
 *
 * @example
 * ```ts
 * import { IndexedDbKeyStorage, DatagroveClient } from 'datagrove/client';
 * const client = await DatagroveClient.create({ url: location.origin, storage: new IndexedDbKeyStorage() });
 * ```
 */
export class IndexedDbKeyStorage implements KeyStorage {
  private db: Promise<IDBDatabase> | null = null;

  constructor(
    private readonly dbName = 'datagrove',
    private readonly factory: IDBFactory = globalThis.indexedDB,
    private readonly locks: LockManager | null = globalThis.navigator?.locks ?? null,
  ) {}

  private open(): Promise<IDBDatabase> {
    if (this.db === null) {
      const req = this.factory.open(this.dbName, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
      };
      this.db = request(req);
      this.db.catch(() => (this.db = null));
    }
    return this.db;
  }

  private async tx<T>(mode: IDBTransactionMode, fn: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    const t = db.transaction(STORE, mode, { durability: 'strict' });
    const result = request(fn(t.objectStore(STORE)));
    // Resolve only when the transaction committed, so a saved value survives a crash.
    await new Promise<void>((resolve, reject) => {
      t.oncomplete = () => resolve();
      t.onerror = () => reject(t.error ?? new Error('IndexedDB transaction failed'));
      t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted'));
    });
    return result;
  }

  async load(name: string): Promise<JsonValue | null> {
    const v = await this.tx('readonly', (s) => s.get(name) as IDBRequest<string | undefined>);
    return v === undefined ? null : (JSON.parse(v) as JsonValue);
  }

  async save(name: string, value: JsonValue): Promise<void> {
    await this.tx('readwrite', (s) => s.put(JSON.stringify(value), name));
  }

  async remove(name: string): Promise<void> {
    await this.tx('readwrite', (s) => s.delete(name));
  }

  async lock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const key = `${this.dbName}:${name}`;
    if (this.locks === null) return pageLocks.run(key, fn);
    return await this.locks.request(key, { mode: 'exclusive' }, () => fn());
  }
}
