/**
 * One incoming frame: parse and validate (before `connect`, anything else is UNAUTHORIZED),
 * rate-limit, run the op. Nothing a client sends can throw out of here: errors become replies
 * (DgError keeps its code; anything else is INTERNAL, logged, without details).
 */
import { DgError, toWireError, type ErrorCode } from '../protocol/errors.js';
import { TAIL_CLOSE, type TailOp, type TailOpArgs } from '../protocol/tail-schemas.js';
import { handleConnect } from './connect.js';
import type { TailContext } from './context.js';
import { parseFrame } from './frames.js';
import { handleAttest, handleLease, handleRelease } from './lease.js';
import { handleRead } from './read.js';
import type { Session } from './session.js';
import { handleSignal } from './signaling.js';
import { isDamagedStorage } from './store-damage.js';
import { handleWrite } from './writes.js';

type OpHandler<K extends TailOp> = (ctx: TailContext, session: Session, id: number, args: TailOpArgs[K]) => void | Promise<void>;

const HANDLERS: { [K in TailOp]: OpHandler<K> } = {
  connect: handleConnect,
  lease: handleLease,
  release: handleRelease,
  read: handleRead,
  write: handleWrite,
  signal: handleSignal,
  attest: handleAttest,
  ping: (_ctx, session, id) => session.reply(id, {}),
};

/** Ops that wait for auth or the store; a session has at most `maxInFlight` of them at once. */
const WAITING_OPS: ReadonlySet<TailOp> = new Set<TailOp>(['lease', 'attest', 'read']);

function failed(ctx: TailContext, session: Session, id: number, err: unknown): void {
  const wire = toWireError(err);
  // A failure on damaged storage comes back on every retry until an operator acts: the
  // sweep logs those together, at error level (service.ts).
  if (!isDamagedStorage(err)) logFailure(ctx, err, wire.code);
  // The request was well formed: what the op refused does not count toward 4400.
  session.replyError(id, wire.code, wire.message, false);
}

function logFailure(ctx: TailContext, err: unknown, code: ErrorCode): void {
  if (!(err instanceof DgError) || code === 'INTERNAL') ctx.log.error({ err }, 'tail op failed');
  else if (err.cause instanceof DgError) {
    // An expected condition (auth unreachable, a bus timeout): its reason, no stack.
    ctx.log.warn({ code, reason: err.cause.message }, 'tail op failed');
  } else if (err.cause !== undefined) ctx.log.warn({ err: err.cause, code }, 'tail op failed');
}

export function onFrame(ctx: TailContext, session: Session, data: Buffer, isBinary: boolean): void {
  if (session.closing) return;
  const frame = parseFrame(data, isBinary, ctx.limits.maxFrame, session.auth !== null);
  if (!frame.ok) {
    if (frame.unauthorized === undefined) return session.replyError(frame.id, frame.code, frame.message);
    if (!session.ops.take()) return session.replyError(frame.id, 'RATE_LIMITED', 'too many requests');
    session.replyError(frame.id, frame.code, frame.message);
    // A connect without a usable token is answered as one with an invalid token.
    if (frame.unauthorized === 'no token') session.close(TAIL_CLOSE.unauthorized, 'unauthorized');
    return;
  }
  const { id } = frame;
  if (ctx.stopping) return session.replyError(id, 'UNAVAILABLE', 'server going away', false);
  if (!session.ops.take()) return session.replyError(id, 'RATE_LIMITED', 'too many requests');
  const waits = WAITING_OPS.has(frame.op);
  if (waits && session.inFlight >= ctx.limits.maxInFlight) return session.replyError(id, 'RATE_LIMITED', 'too many requests in flight');
  try {
    const run = HANDLERS[frame.op] as OpHandler<TailOp>;
    const r = run(ctx, session, id, frame.args);
    if (r instanceof Promise) {
      if (waits) session.inFlight++;
      r.catch((err: unknown) => failed(ctx, session, id, err)).finally(() => {
        if (waits) session.inFlight--;
      });
    }
  } catch (err) {
    failed(ctx, session, id, err);
  }
}
