import { DgError, toWireError } from '../protocol/errors.js';
import type { Bus, BusHandler, RequestOptions, SubscribeOptions, Subscription } from './bus.js';
import { assertQueue, assertSubject } from './subject.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './bus.js';

interface Entry {
  handler: BusHandler;
  queue: string | undefined;
}

type Logger = { error: (obj: object, msg: string) => void };

/**
 * The in-process bus of the monolith: a direct function call, deferred to a microtask so
 * that delivery is asynchronous exactly as over NATS. Queue groups pick members round-robin.
 */
export class InProcessBus implements Bus {
  readonly #subs = new Map<string, Entry[]>();
  readonly #rr = new Map<string, number>();
  readonly #log: Logger;
  #closed = false;

  constructor(log: Logger = { error: () => {} }) {
    this.#log = log;
  }

  publish(subject: string, message: unknown): void {
    if (this.#closed) throw new DgError('UNAVAILABLE', 'bus closed');
    for (const target of this.#targets(subject)) {
      queueMicrotask(() => {
        try {
          const r = target.handler(message, subject);
          if (r instanceof Promise) r.catch((err: unknown) => this.#log.error({ err, subject }, 'bus handler failed'));
        } catch (err) {
          this.#log.error({ err, subject }, 'bus handler failed');
        }
      });
    }
  }

  subscribe(subject: string, handler: BusHandler, options: SubscribeOptions = {}): Subscription {
    if (this.#closed) throw new DgError('UNAVAILABLE', 'bus closed');
    // Same subject rules as NATS, so code tested in the monolith behaves the same when split.
    assertSubject(subject);
    if (options.queue !== undefined) assertQueue(options.queue);
    const entry: Entry = { handler, queue: options.queue };
    const list = this.#subs.get(subject) ?? [];
    list.push(entry);
    this.#subs.set(subject, list);
    return {
      unsubscribe: () => {
        const cur = this.#subs.get(subject);
        if (cur === undefined) return;
        const i = cur.indexOf(entry);
        if (i >= 0) cur.splice(i, 1);
        if (cur.length === 0) this.#subs.delete(subject);
      },
    };
  }

  async request<T>(subject: string, message: unknown, options: RequestOptions = {}): Promise<T> {
    if (this.#closed) throw new DgError('UNAVAILABLE', 'bus closed');
    const target = this.#targets(subject)[0];
    if (target === undefined) throw new DgError('UNAVAILABLE', `no responders for ${subject}`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    await Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DgError('UNAVAILABLE', `request ${subject} timed out`)), timeoutMs);
    });
    const call = (async () => {
      try {
        return (await target.handler(message, subject)) as T;
      } catch (err) {
        if (!(err instanceof DgError)) this.#log.error({ err, subject }, 'bus request handler failed');
        return { ok: false, error: toWireError(err) } as T;
      }
    })();
    try {
      return await Promise.race([call, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  healthy(): boolean {
    return !this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.resolve();
    this.#subs.clear();
  }

  /** Every plain subscriber, plus one member (round-robin) of each queue group. */
  #targets(subject: string): Entry[] {
    const list = this.#subs.get(subject);
    if (list === undefined || list.length === 0) return [];
    const out: Entry[] = [];
    const groups = new Map<string, Entry[]>();
    for (const e of list) {
      if (e.queue === undefined) out.push(e);
      else {
        const g = groups.get(e.queue) ?? [];
        g.push(e);
        groups.set(e.queue, g);
      }
    }
    for (const [queue, members] of groups) {
      const key = `${subject}\u0000${queue}`;
      const n = this.#rr.get(key) ?? 0;
      this.#rr.set(key, n + 1);
      const pick = members[n % members.length];
      if (pick !== undefined) out.push(pick);
    }
    return out;
  }
}
