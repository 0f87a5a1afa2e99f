/** Prepared statements of one SQLite auth-store part, prepared once and looked up by name. */
import type { Database, Statement } from 'better-sqlite3';

export type StatementLookup = (name: string) => Statement;

/**
 * Prepares the statements `build` names (with `p`, which prepares on `db`) and returns their
 * lookup; an unknown name is a programming error and throws.
 */
export function statements(db: Database, build: (p: (sql: string) => Statement) => Record<string, Statement>): StatementLookup {
  const q = build((sql) => db.prepare(sql));
  return (name) => {
    const s = q[name];
    if (s === undefined) throw new Error(`no statement ${name}`);
    return s;
  };
}
