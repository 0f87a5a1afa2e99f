/**
 * dg.tail.user: user-scoped events (`device`, `envelope`) for that user's sessions on this
 * node, or only the sessions of `device` when it is set. The event is serialized once.
 */
import type { UserEvent } from '../protocol/bus-messages.js';
import type { TailContext } from './context.js';

function eventOf(value: unknown): UserEvent['event'] | null {
  if (value === null || typeof value !== 'object') return null;
  const e = value as Record<string, unknown>;
  if (e.ev === 'device' && typeof e.device === 'string' && typeof e.name === 'string') {
    return typeof e.identity === 'string' ? { ev: 'device', device: e.device, name: e.name, identity: e.identity } : { ev: 'device', device: e.device, name: e.name };
  }
  if (e.ev === 'envelope' && typeof e.id === 'string' && typeof e.from === 'string') return { ev: 'envelope', id: e.id, from: e.from };
  return null;
}

export function onUserEvent(ctx: TailContext, message: unknown): void {
  if (message === null || typeof message !== 'object') return;
  const m = message as Partial<UserEvent>;
  if (typeof m.user !== 'string') return;
  const event = eventOf(m.event);
  if (event === null) return;
  const device = typeof m.device === 'string' ? m.device : null;
  let frame: Buffer | null = null;
  for (const s of ctx.sessions.ofUser(m.user)) {
    if (device !== null && s.auth?.device !== device) continue;
    frame ??= Buffer.from(JSON.stringify(event));
    s.send(frame);
  }
}
