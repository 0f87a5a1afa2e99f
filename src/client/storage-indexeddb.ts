/**
 * KeyStorage in the browser's IndexedDB: one object store of JSON values by name.
 * IndexedDB is origin-scoped and not readable by other sites; the secret keys stay on the
 * device (they are never sent anywhere by the SDK).
 */
import type { JsonValue, KeyStorage } from './key-storage.js';

const STORE = 'kv';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

/**
 * A KeyStorage backed by IndexedDB database `dbName` (default "datagrove").
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
}
