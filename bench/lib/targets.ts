/**
 * Where the fan-out clients connect: the real server (sign-up, a site, grants, then
 * connect + lease over the tail protocol) or the relay peer (a plain socket). Both give
 * back the same leader/followers connections for lib/fanout-round.ts.
 */
import { createSite, grantAndJoin, signup, type Session } from './auth-client.js';
import { inParallel } from './closed-loop.js';
import type { Conn } from './fanout-round.js';
import { WsClient } from './ws-client.js';

export interface Connections {
  leader: Conn;
  followers: Conn[];
  /** The limits the server announced on connect (absent for the relay). */
  maxEntries: number | null;
  close(): Promise<void>;
}

export interface Target {
  name: 'project' | 'peer';
  open(log: string): Promise<Connections>;
}

async function closeAll(conns: Conn[]): Promise<void> {
  await Promise.all(conns.map((c) => c.client.close()));
}

/** Opens a tail session (connect) and leases `log` as leader (`lead`) or follower; checks the role. */
export async function connectTail(url: string, access: string, site: string, log: string, lead: boolean): Promise<{ conn: Conn; maxEntries: number }> {
  const client = await WsClient.open(url, 'datagrove.v1');
  const hello = await client.request('connect', { token: access });
  const lease = await client.request('lease', { site, log, lead });
  if (lease.needproof === true || (typeof lease.handle !== 'string' && typeof lease.handle !== 'number')) throw new Error(`lease refused: ${JSON.stringify(lease)}`);
  const want = lead ? 'leader' : 'follower';
  if (lease.role !== want) throw new Error(`expected role ${want}, got ${String(lease.role)}`);
  const limits = hello.limits as { maxEntries?: number } | undefined;
  return { conn: { client, handle: lease.handle }, maxEntries: limits?.maxEntries ?? Number.POSITIVE_INFINITY };
}

/** Sets up an owner (the leader's user) and `followers` users holding a read grant on one site. */
export async function projectTarget(port: number, followers: number): Promise<Target> {
  const http = `http://127.0.0.1:${port}`;
  const url = `ws://127.0.0.1:${port}/tail`;
  const owner = await signup(http);
  const site = await createSite(http, owner);
  const readers = await inParallel(followers, 4, async () => {
    const s = await signup(http);
    await grantAndJoin(http, owner, site, s, ['read']);
    return s;
  });

  const connect = (s: Session, lead: boolean, log: string) => connectTail(url, s.access, site, log, lead);

  return {
    name: 'project',
    async open(log) {
      const l = await connect(owner, true, log);
      const fs = await inParallel(readers.length, 8, (i) => connect(readers[i] as Session, false, log));
      const all = [l.conn, ...fs.map((f) => f.conn)];
      return { leader: l.conn, followers: fs.map((f) => f.conn), maxEntries: l.maxEntries, close: () => closeAll(all) };
    },
  };
}

export function relayTarget(port: number, followers: number): Target {
  const url = `ws://127.0.0.1:${port}/`;
  return {
    name: 'peer',
    async open() {
      const leader: Conn = { client: await WsClient.open(url), handle: 0 };
      const fs = await inParallel(followers, 8, async () => ({ client: await WsClient.open(url), handle: 0 }) satisfies Conn);
      // A round trip through the relay, so every follower is registered before writes start.
      await leader.client.request('ping');
      return { leader, followers: fs, maxEntries: null, close: () => closeAll([leader, ...fs]) };
    },
  };
}
