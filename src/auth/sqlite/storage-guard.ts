/**
 * The SQLite auth store's storage failures, as the AuthStore contract states them: every
 * method of a guarded class rejects with `UNAVAILABLE` (cause: the SQLite error) when the
 * storage fails (protocol/sqlite-failure.ts), as the PostgreSQL store does when its
 * connection is lost. Nothing is half-written: a statement is atomic, and better-sqlite3
 * rolls a transaction back when anything in it, or its COMMIT, fails.
 *
 * Applied to the classes' prototypes, so that a method added later is guarded too (private
 * `#` methods are not on the prototype and are covered by the public method that runs them).
 */
import { sqliteDamage, sqliteStoreError } from '../../protocol/sqlite-failure.js';

/** The first damage code (SQLITE_CORRUPT, SQLITE_NOTADB) each guarded object's calls met. */
const damaged = new WeakMap<object, string>();

/**
 * The damage a guarded object's calls found, or null. Damage does not heal: the object's
 * store stays unhealthy (/ready 503) until the file is restored and the process restarts.
 */
export function damageFound(self: object): string | null {
  return damaged.get(self) ?? null;
}

function failed(self: unknown, err: unknown): never {
  const code = sqliteDamage(err);
  if (code !== null && typeof self === 'object' && self !== null && !damaged.has(self)) damaged.set(self, code);
  throw sqliteStoreError('auth store', err);
}

export function guardStorageFailures(proto: object): void {
  for (const name of Object.getOwnPropertyNames(proto)) {
    const d = Object.getOwnPropertyDescriptor(proto, name);
    if (name === 'constructor' || d === undefined || typeof d.value !== 'function') continue;
    const method = d.value as (...args: unknown[]) => unknown;
    const guarded = function (this: unknown, ...args: unknown[]): unknown {
      try {
        const out = method.apply(this, args);
        return out instanceof Promise ? out.catch((err: unknown) => failed(this, err)) : out;
      } catch (err) {
        return failed(this, err);
      }
    };
    Object.defineProperty(guarded, 'name', { value: name });
    Object.defineProperty(proto, name, { ...d, value: guarded });
  }
}
