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
import type { TailConnection } from './tail-connection.js';

export { pickShard };

/**
 * The tail URL of a shard URL: http(s) becomes ws(s), and a bare origin gets "/tail".
 *
 * @example
 * ```ts
 * import { tailUrl } from 'datagrove/client';
 * tailUrl('https://example.com'); // "wss://example.com/tail"
 * ```
 */
export function tailUrl(url: string): string {
  const u = new URL(url);
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
  private closed = false;

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
    return this.norm(shard.url);
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
      c = this.opts.connect(url);
      this.conns.set(url, c);
    }
    return c;
  }

  /** Every connection opened so far. */
  connections(): TailConnection[] {
    return [...this.conns.values()];
  }

  close(reason?: DgError): void {
    this.closed = true;
    for (const c of this.conns.values()) c.close(reason);
    this.conns.clear();
  }
}
