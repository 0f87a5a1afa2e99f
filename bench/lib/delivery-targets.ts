/**
 * The four servers of the fan-out comparison, each behind the Group interface of
 * bench/lib/delivery-round.ts (one writer, N readers, one fresh log / room / document per
 * round):
 * - project: the real server; the writer leads a log and `write`s (acked once durable);
 *   readers are sessions holding follower leases and take entries from `tail` events,
 *   `read`ing what an event did not carry;
 * - relay: the bare ws relay (bench/peers/ws-relay.ts), acked writes relayed to all;
 * - socket.io: the writer emits `write` with an acknowledgement, the server emits to the
 *   room; readers are sockets joined to it;
 * - hocuspocus: the writer appends each batch to a Y.Array of a shared document; readers are
 *   HocuspocusProvider clients (ws as the WebSocket) observing the array. Yjs updates are not
 *   acknowledged per write, so the writer is paced by deliveries alone.
 */
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { createSite, grantAndJoin, signup, type Session } from './auth-client.js';
import type { Child } from './child.js';
import { inParallel } from './closed-loop.js';
import type { Group, Reader, Writer } from './delivery-round.js';
import { connectSocketIo, joinRoom } from './idle-sessions.js';
import { connectTail } from './targets.js';
import type { Frame, WsClient } from './ws-client.js';
import { WsClient as Ws } from './ws-client.js';

export interface DeliveryTarget {
  name: 'project' | 'relay' | 'socket.io' | 'hocuspocus';
  child: Child;
  open(tag: string, readers: number): Promise<Group>;
}

const PARALLEL_OPENS = 16;

/** A follower session: entries from `tail` events, the rest by `read`, reported in order. */
class TailReader implements Reader {
  private pos = 0;
  private target = 0;
  private reading = false;

  constructor(
    private readonly client: WsClient,
    private readonly handle: string | number,
  ) {}

  listen(on: (at: number, entries: readonly string[]) => void, fail: (e: Error) => void): void {
    const give = (at: number, entries: string[]) => {
      if (at + entries.length <= this.pos) return;
      on(at, entries);
      this.pos = at + entries.length;
    };
    const readMore = async () => {
      this.reading = true;
      try {
        while (this.pos < this.target) {
          const r = await this.client.request('read', { handle: this.handle, from: this.pos, limit: 1000 });
          const entries = r.entries as string[];
          if (entries.length === 0) break;
          give(r.from as number, entries);
        }
      } catch (e) {
        fail(e instanceof Error ? e : new Error(String(e)));
      } finally {
        this.reading = false;
      }
    };
    this.client.onFrame = (f: Frame) => {
      if (f.ev !== 'tail' || f.handle !== this.handle) return;
      const at = f.at as number;
      const entries = Array.isArray(f.entries) ? (f.entries as string[]) : undefined;
      const length = typeof f.length === 'number' ? f.length : at + (entries?.length ?? 0);
      if (length > this.target) this.target = length;
      if (this.reading) return;
      if (entries !== undefined && at <= this.pos) give(at, entries);
      if (this.pos < this.target) void readMore();
    };
  }
}

function tailWriter(client: WsClient, handle: string | number): Writer {
  return {
    async write(at, entries) {
      const r = await client.send('write', { handle, at, entries, wid: `w${at}` });
      if (r.error !== undefined || r.length !== at + entries.length) throw new Error(`write at ${at} answered ${JSON.stringify(r).slice(0, 200)}`);
    },
  };
}

/** The real server: an owner leads each round's log; `readerUsers` users (read grants) hold the follower sessions, several each. */
export async function projectDelivery(child: Child, readerUsers: number): Promise<DeliveryTarget> {
  const http = `http://127.0.0.1:${child.port}`;
  const url = `ws://127.0.0.1:${child.port}/tail`;
  const owner = await signup(http);
  const site = await createSite(http, owner);
  const readers: Session[] = [];
  for (let i = 0; i < readerUsers; i++) {
    const s = await signup(http);
    await grantAndJoin(http, owner, site, s, ['read']);
    readers.push(s);
  }
  return {
    name: 'project',
    child,
    async open(tag, n) {
      const lead = await connectTail(url, owner.access, site, tag, true);
      const fs = await inParallel(n, PARALLEL_OPENS, (i) => connectTail(url, (readers[i % readers.length] as Session).access, site, tag, false));
      const clients = [lead.conn.client, ...fs.map((f) => f.conn.client)];
      return {
        writer: tailWriter(lead.conn.client, lead.conn.handle),
        readers: fs.map((f) => new TailReader(f.conn.client, f.conn.handle)),
        close: async () => void (await Promise.all(clients.map((c) => c.close()))),
      };
    },
  };
}

/** The bare relay: every client gets every other client's frames. */
export function relayDelivery(child: Child): DeliveryTarget {
  const url = `ws://127.0.0.1:${child.port}/`;
  return {
    name: 'relay',
    child,
    async open(_tag, n) {
      const lead = await Ws.open(url);
      const fs = await inParallel(n, PARALLEL_OPENS, () => Ws.open(url));
      await lead.request('ping'); // every reader is registered once this comes back
      return {
        writer: tailWriter(lead, 0),
        readers: fs.map((c) => ({
          listen(on) {
            c.onFrame = (f) => {
              if (f.op === 'write') on(f.at as number, f.entries as string[]);
            };
          },
        })),
        close: async () => void (await Promise.all([lead, ...fs].map((c) => c.close()))),
      };
    },
  };
}

export function socketIoDelivery(child: Child): DeliveryTarget {
  const url = `http://127.0.0.1:${child.port}`;
  return {
    name: 'socket.io',
    child,
    async open(tag, n) {
      const lead = await connectSocketIo(url);
      const fs = await inParallel(n, PARALLEL_OPENS, async () => {
        const s = await connectSocketIo(url);
        await joinRoom(s, tag);
        return s;
      });
      return {
        writer: {
          async write(at, entries) {
            const r = (await lead.emitWithAck('write', { room: tag, at, entries })) as { length?: number };
            if (r.length !== at + entries.length) throw new Error(`socket.io write at ${at} answered ${JSON.stringify(r)}`);
          },
        },
        readers: fs.map((s) => ({
          listen(on) {
            s.on('write', (m: { at: number; entries: string[] }) => on(m.at, m.entries));
          },
        })),
        close: () => {
          for (const s of [lead, ...fs]) s.close();
          return Promise.resolve();
        },
      };
    },
  };
}

/** A provider synced with the server (awareness off: the comparison is about document updates). */
function syncedProvider(url: string, name: string): Promise<{ provider: HocuspocusProvider; socket: HocuspocusProviderWebsocket; doc: Y.Doc }> {
  const doc = new Y.Doc();
  // Each reader is its own client: its own socket (ws standing in for the browser WebSocket).
  const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket });
  const provider = new HocuspocusProvider({ websocketProvider: socket, name, document: doc, awareness: null });
  const synced = new Promise<{ provider: HocuspocusProvider; socket: HocuspocusProviderWebsocket; doc: Y.Doc }>((resolve, reject) => {
    const t = setTimeout(() => {
      provider.destroy();
      socket.destroy();
      reject(new Error(`hocuspocus ${name}: not synced in time`));
    }, 30_000);
    provider.on('synced', () => {
      clearTimeout(t);
      resolve({ provider, socket, doc });
    });
  });
  // A provider given a socket it does not own attaches to it explicitly.
  provider.attach();
  return synced;
}

export function hocuspocusDelivery(child: Child): DeliveryTarget {
  const url = `ws://127.0.0.1:${child.port}`;
  return {
    name: 'hocuspocus',
    child,
    async open(tag, n) {
      const lead = await syncedProvider(url, tag);
      const fs = await inParallel(n, PARALLEL_OPENS, () => syncedProvider(url, tag));
      const array = lead.doc.getArray<string>('log');
      return {
        writer: {
          write(_at, entries) {
            array.push(entries);
            return Promise.resolve();
          },
        },
        readers: fs.map(({ doc }) => ({
          listen(on) {
            doc.getArray<string>('log').observe((event) => {
              let index = 0;
              for (const d of event.changes.delta) {
                if (typeof d.retain === 'number') index += d.retain;
                if (Array.isArray(d.insert)) {
                  on(index, d.insert as string[]);
                  index += d.insert.length;
                }
              }
            });
          },
        })),
        close: () => {
          for (const p of [lead, ...fs]) {
            p.provider.destroy();
            p.socket.destroy();
          }
          return Promise.resolve();
        },
      };
    },
  };
}
