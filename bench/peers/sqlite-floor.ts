/**
 * The write-ack floor: raw better-sqlite3 inserts with the durability the server promises
 * (WAL, synchronous=FULL), fed by the same schedule as the server and committing each
 * burst of due writes in one transaction, the way a group committer batches what arrived
 * together. No network, no JSON, no validation, no write ids: what is left is the cost of
 * making the bytes durable, so no server on this store can ack faster.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Due } from '../lib/schedule.js';

export interface Floor {
  /** Commits the burst in one transaction; returns when it is durable. */
  commit(burst: Due[], entry: Buffer): void;
  batches: number;
  writes: number;
  /** (transaction, log) pairs: how many per-log commit groups the writes formed. */
  logCommits: number;
  close(): void;
}

export function openFloor(dir: string, name: string, writers: number): Floor {
  const db = new Database(join(dir, `${name}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE logs (id INTEGER PRIMARY KEY, length INTEGER NOT NULL);
    CREATE TABLE entries (log_id INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (log_id, idx)) WITHOUT ROWID;
  `);
  const addLog = db.prepare('INSERT INTO logs (id, length) VALUES (?, 0)');
  for (let w = 0; w < writers; w++) addLog.run(w);
  const insert = db.prepare('INSERT INTO entries (log_id, idx, data) VALUES (?, ?, ?)');
  const setLength = db.prepare('UPDATE logs SET length = ? WHERE id = ?');
  const tx = db.transaction((burst: Due[], entry: Buffer) => {
    const lengths = new Map<number, number>();
    for (const d of burst) {
      insert.run(d.writer, d.n, entry);
      lengths.set(d.writer, d.n + 1);
    }
    for (const [w, len] of lengths) setLength.run(len, w);
  });
  const floor: Floor = {
    batches: 0,
    writes: 0,
    logCommits: 0,
    commit(burst, entry) {
      tx.immediate(burst, entry);
      floor.batches++;
      floor.writes += burst.length;
      floor.logCommits += new Set(burst.map((d) => d.writer)).size;
    },
    close: () => db.close(),
  };
  return floor;
}
