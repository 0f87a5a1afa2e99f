/** `read`: committed entries from `from`, bounded by count and bytes. */
import type { ReadArgs } from '../protocol/tail-schemas.js';
import { DgError } from '../protocol/errors.js';
import type { TailContext } from './context.js';
import { canRead } from './live-log.js';
import type { ReadResult } from './log-store.js';
import type { Session } from './session.js';

export async function handleRead(ctx: TailContext, session: Session, id: number, args: ReadArgs): Promise<void> {
  const done = await session.readTurn();
  try {
    await readInTurn(ctx, session, id, args);
  } finally {
    done();
  }
}

async function readInTurn(ctx: TailContext, session: Session, id: number, args: ReadArgs): Promise<void> {
  if (session.closing) return;
  const h = session.handles.get(args.handle);
  if (h === undefined || h.releasing) return session.replyError(id, 'NOT_FOUND', 'no such handle');
  if (!canRead(h.access.rights)) return session.replyError(id, 'FORBIDDEN', 'no read right on this log');
  const { readLimit, readMaxBytes, softBuffer } = ctx.limits;
  // A client that does not take its replies gets no more of them queued: memory per session
  // stays about `softBuffer` plus one reply, however many reads it sends (they run one at a
  // time, each after the reply of the one before is queued).
  const behind = () => session.buffered > softBuffer;
  const refuseBehind = () => {
    ctx.fanout.watchBacklog(session);
    session.replyError(id, 'RATE_LIMITED', 'read: earlier replies are still queued; read them first');
  };
  if (behind()) return refuseBehind();
  const limit = Math.min(args.limit ?? readLimit, readLimit);
  let res: ReadResult;
  try {
    res = await ctx.deps.store.read(h.log.site, h.log.name, args.from, limit, readMaxBytes);
  } catch (err) {
    if (err instanceof DgError) throw err;
    throw new DgError('UNAVAILABLE', 'log store unavailable', { cause: err });
  }
  if (args.from > res.length) return session.replyError(id, 'BAD_REQUEST', `from: beyond the log's length ${res.length}`);
  if (behind()) return refuseBehind();
  let body = '';
  for (let i = 0; i < res.entries.length; i++) {
    const e = res.entries[i] as Buffer;
    body += i === 0 ? `"${e.toString('base64url')}"` : `,"${e.toString('base64url')}"`;
  }
  session.send(`{"re":${id},"from":${args.from},"entries":[${body}],"length":${res.length}}`);
}
