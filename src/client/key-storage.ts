/**
 * Where the SDK keeps what must survive a restart: the device's secret keys and the
 * session (refresh token). One small interface, three implementations: IndexedDB in the
 * browser (storage-indexeddb.ts), a 0600 JSON file in Node (node/storage-file.ts), and
 * memory (tests, or apps that keep nothing).
 *
 * Guarantees every implementation gives: `save` resolves only once the value is stored
 * (a later `load`, even after a restart, returns it); values round-trip as JSON.
 */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface KeyStorage {
  load(name: string): Promise<JsonValue | null>;
  save(name: string, value: JsonValue): Promise<void>;
  remove(name: string): Promise<void>;
}

/**
 * Keeps values in memory only (lost on restart).
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
}
