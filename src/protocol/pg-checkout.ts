/**
 * A client checked out of a pg pool for a transaction. While a client is checked out the
 * pool listens to none of its events, and a client whose connection ends (the database
 * restarted, a proxy cut it, an idle-in-transaction timeout) emits `error`: with no
 * listener that is an uncaught exception, which ends the process. Every checkout of the
 * stores goes through here: the error is kept, the query in flight rejects on its own, and
 * `release` hands the client back as broken, so the pool drops it instead of reusing it.
 */
import type pg from 'pg';

export interface CheckedOut {
  readonly client: pg.PoolClient;
  /** Returns the client; broken (dropped by the pool) when `err` is given or its connection failed. */
  release(err?: Error): void;
}

export async function checkOut(pool: pg.Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (err: Error) => {
    lost = err;
  };
  client.on('error', onError);
  let released = false;
  return {
    client,
    release(err?: Error) {
      if (released) return;
      released = true;
      client.removeListener('error', onError);
      client.release(err ?? lost);
    },
  };
}
