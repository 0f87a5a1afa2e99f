/**
 * `signal`: relays WebRTC signaling (or small data) between devices holding handles on
 * the same log. `from` (the sender's device) and `peer` (its handle's address) are stamped
 * by the server; each session has a count and a byte
 * budget for signals, and a recipient with over `softBuffer` bytes queued gets none.
 *
 * A signal refused for the budget spends none of it: one over the byte budget gives back the
 * count it took. One refused because its recipient is not reading is the recipient's
 * state, not the sender's rate: it does not count toward the sender's 4429 close.
 */
import { SIGNAL_PEER_PATTERN, type SignalArgs } from '../protocol/tail-schemas.js';
import type { TailContext } from './context.js';
import { errorFrame } from './frames.js';
import type { Handle } from './live-log.js';
import type { Session } from './session.js';

const PEER_RE = new RegExp(SIGNAL_PEER_PATTERN);

/**
 * The handle `to` designates on the sender's log: the leader; the handle whose `peer` it is
 * (one session, when its device holds several); or, for a device id, that device's leader
 * handle if it leads, else its newest handle.
 */
function recipient(sender: Handle, to: string): Handle | null {
  const log = sender.log;
  if (to === 'leader') return log.leader !== null && log.leader !== sender ? log.leader : null;
  if (PEER_RE.test(to)) {
    for (const h of log.handles) if (h.peer === to && h !== sender) return h;
    return null;
  }
  if (log.leader !== null && log.leader !== sender && log.leader.session.auth?.device === to) return log.leader;
  let found: Handle | null = null;
  for (const h of log.handles) if (h !== sender && h.session.auth?.device === to) found = h;
  return found;
}

export function handleSignal(ctx: TailContext, session: Session, id: number, args: SignalArgs): void {
  const h = session.handles.get(args.handle);
  if (h === undefined || h.releasing) return session.replyError(id, 'NOT_FOUND', 'no such handle');
  const data = JSON.stringify(args.data);
  const bytes = Buffer.byteLength(data);
  if (bytes > ctx.limits.maxSignalBytes) return session.replyError(id, 'TOO_LARGE', `data: over ${ctx.limits.maxSignalBytes} bytes`);
  if (!session.signals.take(1)) return session.replyError(id, 'RATE_LIMITED', 'too many signals');
  if (!session.signalBytes.take(bytes)) {
    // The count taken above goes back: a refused signal costs nothing.
    session.signals.refund(1);
    return session.replyError(id, 'RATE_LIMITED', 'too many signal bytes');
  }
  const target = recipient(h, args.to);
  if (target === null) return session.replyError(id, 'NOT_FOUND', `no peer '${args.to}' on this log`);
  // A recipient that is not reading gets no more: senders must not push it to the 4408 close.
  if (target.session.buffered > ctx.limits.softBuffer) {
    ctx.fanout.watchBacklog(target.session);
    // Not through `replyError`: that counts toward 4429, and a recipient that stops reading
    // must not get the sessions signaling it closed.
    ctx.metrics.error('RATE_LIMITED');
    return session.send(errorFrame(id, 'RATE_LIMITED', `peer '${args.to}' is not keeping up`));
  }
  const from = session.auth?.device ?? '';
  target.session.send(`{"ev":"signal","handle":"${target.id}","from":"${from}","peer":"${h.peer}","kind":"${args.kind}","data":${data}}`);
  session.reply(id, {});
}
