/**
 * Shard routing (PROTOCOL.md "Shards"): the shard map from GET /auth/v1/shards, the
 * rendezvous rule (shared with the server in protocol/shards.ts), one TailConnection per
 * shard in use, and `redirect` replies followed.
 *
 * A redirect wins over the map for that site until the map is fetched again (which a
 * redirect triggers): the node that answered knows better than a possibly stale map.
 */
import { DgError } from '../protocol/errors.js';
import { pickShard } from '../protocol/shards.js';
import type { AuthClient, ShardMapInfo } from './auth-client.js';
import { sleep } from './backoff.js';
import type { TailConnection } from './tail-connection.js';

export { pickShard };

/** How often the map is fetched again while a connection cannot reach its node. */
export const SHARD_RECHECK_MS = 2000;

/**
 * The tail URL of a shard URL: http(s) becomes ws(s), and a bare origin gets "/tail".
 * Anything else (not a URL, another scheme) is refused with BAD_REQUEST.
 *
 * @example
 * ```ts
 * import { tailUrl } from 'datagrove/client';
 * tailUrl('https://example.com'); // "wss://example.com/tail"
 * ```
 */
export function tailUrl(url: string): string {
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {
    // Not a URL: refused below.
  }
  if (u === null || !['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw new DgError('BAD_REQUEST', `not a ws(s) or http(s) URL: ${JSON.stringify(String(url)).slice(0, 200)}`);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/tail';
  return u.toString();
}

export interface ShardRouterOptions {
  auth: AuthClient;
  connect: (url: string) => TailConnection;
  /** Rewrites a shard's URL before use (e.g. when the server's public URL is not reachable as written). */
  mapUrl?: (url: string) => string;
}

/**
 * Routes sites to tail connections (the client makes one; use it directly only without a client).
 *
 * @example
 * ```ts
 * import { AuthClient, ShardRouter, TailConnection } from 'datagrove/client';
 * const router = new ShardRouter({ auth: new AuthClient({ url }), connect: (u) => new TailConnection({ url: u, WebSocket, token }) });
 * const conn = await router.connectionFor(site);
 * ```
 */
export class ShardRouter {
  private map: ShardMapInfo | null = null;
  private loading: Promise<ShardMapInfo> | null = null;
  private readonly overrides = new Map<string, string>();
  private readonly conns = new Map<string, TailConnection>();
  private readonly watching = new Set<TailConnection>();
  private lastCheck = 0;
  private closed = false;
  /** Aborted by close(): ends the waits of `watch`, so that no timer outlives the router. */
  private readonly closing = new AbortController();

  constructor(private readonly opts: ShardRouterOptions) {}

  /** The current shard map (fetched on first use). */
  async shardMap(refresh = false): Promise<ShardMapInfo> {
    if (this.map !== null && !refresh) return this.map;
    if (this.loading === null) {
      this.loading = this.opts.auth
        .shards()
        .then((m) => {
          this.map = m;
          this.overrides.clear();
          return m;
        })
        .finally(() => (this.loading = null));
    }
    return this.loading;
  }

  /** The tail URL that serves `site`. */
  async urlFor(site: string): Promise<string> {
    const o = this.overrides.get(site);
    if (o !== undefined) return o;
    const map = await this.shardMap();
    const shard = pickShard(map.shards, site);
    if (shard === null) throw new DgError('UNAVAILABLE', 'the shard map lists no tail node');
    try {
      return this.norm(shard.url);
    } catch (err) {
      // The server's map is wrong for this node (a misconfigured node URL): its sites cannot be
      // reached until the map changes, the others are not affected.
      if (err instanceof DgError) throw new DgError('UNAVAILABLE', `the shard map gives tail node ${shard.id} a URL that cannot be used (${err.message})`);
      throw err;
    }
  }

  /** The connection for `site` (one per shard, opened lazily). */
  async connectionFor(site: string): Promise<TailConnection> {
    return this.connection(await this.urlFor(site));
  }

  /** Follows a `redirect` reply: refreshes the map and routes `site` to `url`. */
  async redirected(site: string, url: string): Promise<TailConnection> {
    await this.shardMap(true).catch(() => null);
    const target = this.norm(url);
    this.overrides.set(site, target);
    return this.connection(target);
  }

  private norm(url: string): string {
    const u = tailUrl(url);
    return this.opts.mapUrl ? this.opts.mapUrl(u) : u;
  }

  private connection(url: string): TailConnection {
    if (this.closed) throw new DgError('UNAVAILABLE', 'client closed');
    let c = this.conns.get(url);
    if (c === undefined || c.state === 'stopped') {
      const conn = this.opts.connect(url);
      // Not on the first drop (a blip reconnects at once): once a reconnect attempt failed.
      conn.on('retrying', ({ failures }) => {
        if (failures >= 2) this.watch(url, conn).catch(() => undefined);
      });
      this.conns.set(url, conn);
      c = conn;
    }
    return c;
  }

  /**
   * A connection that cannot reach its node: while it stays down, the map is fetched again
   * every `SHARD_RECHECK_MS`; once the map lists tail nodes but not this one (it died and
   * its TTL ran out, or it drained), the connection is retired, and its users lease again
   * through the map, at the node that serves their sites now.
   */
  private async watch(url: string, conn: TailConnection): Promise<void> {
    if (this.watching.has(conn)) return;
    this.watching.add(conn);
    const down = (): boolean => !this.closed && conn.state !== 'open' && conn.state !== 'stopped';
    try {
      while (down()) {
        const wait = this.lastCheck + SHARD_RECHECK_MS - Date.now();
        if (wait > 0) await sleep(wait, this.closing.signal);
        if (!down()) return;
        // One fetch serves every connection that waits (another may have just made it).
        if (Date.now() - this.lastCheck >= SHARD_RECHECK_MS) {
          this.lastCheck = Date.now();
          await this.shardMap(true).catch(() => null);
        }
        const map = this.map;
        if (map === null || !down()) continue;
        // A URL that cannot be used names no node this connection could be for.
        const urls = map.shards.flatMap((s) => {
          try {
            return [this.norm(s.url)];
          } catch {
            return [];
          }
        });
        if (urls.length > 0 && !urls.includes(url)) {
          if (this.conns.get(url) === conn) this.conns.delete(url);
          conn.retire(new DgError('UNAVAILABLE', `the tail node ${url} left the shard map`));
          return;
        }
      }
    } finally {
      this.watching.delete(conn);
    }
  }

  /** Every connection opened so far. */
  connections(): TailConnection[] {
    return [...this.conns.values()];
  }

  close(reason?: DgError): void {
    this.closed = true;
    this.closing.abort();
    for (const c of this.conns.values()) c.close(reason);
    this.conns.clear();
  }
}
