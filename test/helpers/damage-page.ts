/**
 * Damages a SQLite store file the way bit rot or a torn disk write does: one data page of a
 * table overwritten with garbage, while no process has the file open.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Overwrites a leaf page of `table` in the middle of it (the first and last leaf pages stay
 * intact) and returns its number. Folds the WAL into the file first, so the page written is
 * the one readers will use.
 */
export function damageTablePage(path: string, table: string): number {
  const db = new Database(path);
  let page: number;
  let pageSize: number;
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    pageSize = db.pragma('page_size', { simple: true }) as number;
    const leaves = db.prepare<[string], number>("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path").pluck().all(table);
    if (leaves.length < 3) throw new Error(`${table} spans ${leaves.length} leaf pages: write more before damaging one`);
    page = leaves[Math.floor(leaves.length / 2)] as number;
  } finally {
    db.close();
  }
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (page - 1) * pageSize);
  } finally {
    closeSync(fd);
  }
  return page;
}
