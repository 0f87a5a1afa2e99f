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
import { sqliteStoreError } from '../../protocol/sqlite-failure.js';

const map = (err: unknown): never => {
  throw sqliteStoreError('auth store', err);
};

export function guardStorageFailures(proto: object): void {
  for (const name of Object.getOwnPropertyNames(proto)) {
    const d = Object.getOwnPropertyDescriptor(proto, name);
    if (name === 'constructor' || d === undefined || typeof d.value !== 'function') continue;
    const method = d.value as (...args: unknown[]) => unknown;
    const guarded = function (this: unknown, ...args: unknown[]): unknown {
      try {
        const out = method.apply(this, args);
        return out instanceof Promise ? out.catch(map) : out;
      } catch (err) {
        return map(err);
      }
    };
    Object.defineProperty(guarded, 'name', { value: name });
    Object.defineProperty(proto, name, { ...d, value: guarded });
  }
}
