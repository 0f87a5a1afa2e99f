/**
 * Damages a SQLite log store file the way bit rot or a torn disk write does: one data page
 * of the `chunks` table overwritten with garbage, while no process has the file open.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Overwrites a leaf page of `chunks` in the middle of the table (the first and last leaf
 * pages stay intact) and returns its number. Folds the WAL into the file first, so the page
 * written is the one readers will use.
 */
export function damageChunksPage(path: string): number {
  const db = new Database(path);
  let page: number;
  let pageSize: number;
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    pageSize = db.pragma('page_size', { simple: true }) as number;
    const leaves = db.prepare<[], number>("SELECT pageno FROM dbstat WHERE name = 'chunks' AND pagetype = 'leaf' ORDER BY path").pluck().all();
    if (leaves.length < 3) throw new Error(`chunks spans ${leaves.length} leaf pages: write more before damaging one`);
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
