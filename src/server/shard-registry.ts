/**
 * Cluster membership of tail nodes and the shard map built from it (PROTOCOL.md "Shards").
 *
 * Every process that runs the tail role announces itself on `dg.tail.node`: a heartbeat
 * `{id, url, ttlMs, at}` every `ttlMs / 3` and whenever a starting process asks
 * (`{probe:true}`), and `{id, url, leaving:true}` when it drains.
 * Every process that runs auth or tail keeps a ShardRegistry: the set of nodes heard from
 * within their TTL. Auth serves it as `GET /auth/v1/shards` and names the owner of a site
 * in `/lease`; tail answers `redirect` for sites another live node owns.
 *
 * Guarantees:
 * - A node is live from its first heartbeat until `ttlMs` (as it announced) after its last
 *   one, measured on this process's clock (senders' clocks are never compared), or until
 *   it says `leaving`. A killed node therefore leaves by itself within its TTL.
 * - `version` grows on every change of the live set (a join, a departure, an expiry, a
 *   node's URL changing). It is `max(previous + 1, now in ms)`, so it never repeats in a
 *   process, and maps served by different auth processes compare roughly by time.
 * - This process's own node is in its own map while it announces, whatever the bus does:
 *   a node cut off from the bus keeps serving the sites it is asked about instead of
 *   refusing every one.
 * - Silence is not taken for death while this process cannot hear itself. Every
 *   `ttlMs / 3` it publishes an echo on a subject only it listens to
 *   (`dg.cluster.echo.<random>`; src/bus/self-echo.ts, the process's one when given). A
 *   peer past its TTL leaves the map only once an echo
 *   sent no earlier than a heartbeat interval before that deadline has come back, i.e. the
 *   bus was carrying this process's messages when the peer's should have arrived. While
 *   no echo comes back (NATS down or stalled, this process cut off) the map stays as it
 *   was: in an outage of the whole bus every process keeps routing every site to the same
 *   node, instead of each process taking every site for itself. When echoes come back
 *   after a gap, every peer gets a fresh TTL from then and is asked to beat at once (a
 *   probe), so a reconnect does not flush the map either. The price: a node that dies
 *   during an outage keeps its sites until the bus is back and its TTL runs out.
 * - The live set is bounded (`MAX_NODES`); messages that are not well-formed are dropped.
 *
 * Processes may briefly disagree about who owns a site (a heartbeat in flight, a node that
 * just died, a partition). That cannot corrupt a log: the log store is the fence. An
 * append commits only if the log's stored length and epoch match, checked in the same
 * transaction that stores the entries, and taking leadership bumps the stored epoch. So
 * when two nodes both think they own a site, the later leader's epoch fences the earlier
 * one's writes (FENCED); at worst a client is redirected once more or re-leases.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import type { Bus, Subscription } from '../bus/bus.js';
import { RefusalLog } from '../bus/refusal-log.js';
import { SelfEcho } from '../bus/self-echo.js';
import { SUBJECTS, type TailNodeMessage } from '../protocol/bus-messages.js';
import { pickShard, type Shard } from '../protocol/shards.js';

export interface ShardMap {
  version: number;
  /** Sorted by id. */
  shards: Shard[];
}

export interface ShardRegistryOptions {
  bus: Bus;
  log: FastifyBaseLogger;
  /** Heartbeat lifetime this process announces; heartbeats go out every ttlMs / 3. */
  ttlMs: number;
  /**
   * The process's echo check, started and stopped by its owner (it should send every
   * ttlMs / 3 or more often). Without it the registry runs one of its own.
   */
  echo?: SelfEcho;
  /** This process's tail node (its URL may be known only once listening); null without tail. */
  self: { id: string; url: () => string } | null;
  /** Where the `datagrove_cluster_tail_nodes` gauge goes. */
  registry?: Registry;
  /**
   * Told (in a microtask) after each change of the live set that a message or a read of
   * the map brought: tail moves the handles of sites another node now serves at once.
   */
  onChange?: () => void;
  now?: () => number;
  /**
   * How long after `start` the map counts as complete (`settled`): the probe sent at start
   * makes every live tail node announce itself at once, so this is a margin for the bus round
   * trip. Default: the smaller of 1 s and a heartbeat interval.
   */
  settleMs?: number;
}

/** Node ids: what a shard id may be (also a NATS-safe, log-safe token). */
export const NODE_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
export const MIN_NODE_TTL_MS = 100;
export const MAX_NODE_TTL_MS = 600_000;
const MAX_URL = 2048;
/** More tail nodes than any sane cluster; beyond it strangers are ignored (and logged). */
const MAX_NODES = 1024;

/**
 * The default node id of a tail process in a cluster: stable across restarts on the same
 * host and port (its sites come back to it), random when the port is picked at bind time.
 */
export function defaultNodeId(port: number, host = hostname()): string {
  const h = host.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 80) || 'host';
  return port === 0 ? `tail-${h}-${randomBytes(4).toString('hex')}` : `tail-${h}-${port}`;
}

function isNodeMessage(m: unknown): m is TailNodeMessage {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (r.probe === true) return typeof r.from === 'string' && r.from.length <= 256 && (r.instance === undefined || (typeof r.instance === 'string' && r.instance.length <= 64));
  if (typeof r.id !== 'string' || !NODE_ID_RE.test(r.id)) return false;
  if (typeof r.url !== 'string' || r.url.length > MAX_URL || !/^wss?:\/\//.test(r.url)) return false;
  if (r.leaving === true) return true;
  return (
    typeof r.ttlMs === 'number' &&
    Number.isInteger(r.ttlMs) &&
    r.ttlMs >= MIN_NODE_TTL_MS &&
    r.ttlMs <= MAX_NODE_TTL_MS &&
    typeof r.at === 'number' &&
    Number.isFinite(r.at)
  );
}

interface Peer {
  url: string;
  ttlMs: number;
  expiresAt: number;
}

export class ShardRegistry {
  readonly #opts: ShardRegistryOptions;
  readonly #now: () => number;
  readonly #log: FastifyBaseLogger;
  /** Malformed node messages: anyone on the bus can send them as fast as it carries them. */
  readonly #refusals: RefusalLog;
  /** Other nodes, by id (this process's own node is kept apart, see `#announcing`). */
  readonly #peers = new Map<string, Peer>();
  #announcing = false;
  #version = 0;
  #sub: Subscription | null = null;
  /** This process's echoes; `#ownsEcho` when the registry made (so starts and stops) it. */
  readonly #echo: SelfEcho;
  readonly #ownsEcho: boolean;
  #echoSub: Subscription | null = null;
  /** True while expiries are held back for want of an echo (logged once per outage). */
  #holding = false;
  #timer: NodeJS.Timeout | null = null;
  #warnedFull = false;
  #warnedTwin = false;
  #startedAt: number | null = null;
  #lastProbeAnswer = 0;
  /** The URL of another live process heard announcing this process's node id before it announced. */
  #twinUrl: string | null = null;
  /** This process's own, among processes that may share a node id (in its probes). */
  readonly #instance = randomBytes(9).toString('base64url');

  constructor(opts: ShardRegistryOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log.child({ svc: 'cluster' });
    this.#refusals = new RefusalLog(this.#log);
    this.#ownsEcho = opts.echo === undefined;
    this.#echo = opts.echo ?? new SelfEcho({ bus: opts.bus, intervalMs: this.#interval(), now: this.#now });
    if (opts.registry !== undefined && opts.registry.getSingleMetric('datagrove_cluster_tail_nodes') === undefined) {
      const live = () => this.shards().shards.length;
      new Gauge({
        name: 'datagrove_cluster_tail_nodes',
        help: 'Live tail nodes in the shard map as this process sees it',
        registers: [opts.registry],
        collect() {
          this.set(live());
        },
      });
    }
  }

  /**
   * Listens to membership messages, and asks every live tail node to announce itself now: a
   * process that waited for the next heartbeats would, for a heartbeat interval, think the
   * cluster smaller than it is (a new tail node serving sites another node serves, an auth
   * process naming the wrong shard).
   */
  start(): void {
    if (this.#sub !== null) return;
    this.#sub = this.#opts.bus.subscribe(SUBJECTS.tailNode, (m) => this.#onMessage(m));
    this.#echoSub = this.#echo.onHeard((gap) => this.#onEcho(gap));
    this.#startedAt = this.#now();
    this.#probe();
    if (this.#ownsEcho) this.#echo.start();
  }

  /**
   * Sends this process an echo over the bus (a timer does, every heartbeat interval): peers
   * expire only while echoes come back. Public for tests that drive the clock.
   */
  echo(): void {
    this.#echo.echo();
  }

  #interval(): number {
    return Math.max(1, Math.floor(this.#opts.ttlMs / 3));
  }

  #probe(): void {
    this.#publish({ probe: true, from: this.#opts.self?.id ?? `auth-${hostname()}`, instance: this.#instance });
  }

  #onEcho(gap: number): void {
    const now = this.#now();
    if (gap > 2 * this.#interval()) {
      // The bus carries this process's messages again after a gap: peers' heartbeats were
      // lost with it, so give each a fresh TTL and ask them to beat now.
      for (const p of this.#peers.values()) p.expiresAt = Math.max(p.expiresAt, now + p.ttlMs);
      this.#probe();
    }
    if (this.#holding) this.#log.info({ nodes: this.#peers.size, silentMs: gap }, 'this process hears itself on the bus again; shard map kept');
    this.#holding = false;
  }

  /** Whether the bus carries this process's own messages (SelfEcho.hearsItself). */
  hearsItself(): boolean {
    return this.#echo.hearsItself();
  }

  /** Whether the map has had time to hear from every live node since `start` (see `settleMs`). */
  settled(): boolean {
    return this.#startedAt !== null && this.#settleLeftMs() <= 0;
  }

  /** Resolves once `settled()` (the probe's answers have had time to arrive); at once before `start`. */
  async settle(): Promise<void> {
    const left = this.#startedAt === null ? 0 : this.#settleLeftMs();
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }

  #settleLeftMs(): number {
    const settleMs = this.#opts.settleMs ?? Math.min(1000, Math.floor(this.#opts.ttlMs / 3));
    return (this.#startedAt ?? 0) + settleMs - this.#now();
  }

  /**
   * The URL of another live process that announces this process's node id, heard before
   * this one announced (after `settle()`, every live node has answered the probe); null
   * when none did. Two processes with one id would each get half of its sites' traffic.
   */
  twin(): string | null {
    return this.#twinUrl;
  }

  /** Starts heartbeats of this process's node (call once it accepts connections). */
  announce(): void {
    const self = this.#opts.self;
    if (self === null || this.#announcing) return;
    this.#announcing = true;
    this.#changed();
    this.#log.info({ node: self.id, url: self.url(), ttlMs: this.#opts.ttlMs }, 'tail node joins the cluster');
    this.#heartbeat();
    this.#timer = setInterval(() => this.#heartbeat(), this.#interval());
    this.#timer.unref();
  }

  /** Says `leaving` (so the node's sites move at once) and stops listening. Idempotent. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#ownsEcho) this.#echo.stop();
    this.#echoSub?.unsubscribe();
    this.#echoSub = null;
    const self = this.#opts.self;
    if (self !== null && this.#announcing) {
      this.#announcing = false;
      this.#changed();
      this.#publish({ id: self.id, url: self.url(), leaving: true });
    }
    this.#sub?.unsubscribe();
    this.#sub = null;
  }

  /** The map's version (it changes with every change of the live set). */
  get version(): number {
    this.#expire();
    return this.#version;
  }

  /** The live nodes, sorted by id, and the map's version. */
  shards(): ShardMap {
    this.#expire();
    const shards: Shard[] = [...this.#peers].map(([id, p]) => ({ id, url: p.url }));
    const self = this.#opts.self;
    if (self !== null && this.#announcing) shards.push({ id: self.id, url: self.url() });
    shards.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { version: this.#version, shards };
  }

  /** The node that serves `site` (rendezvous hashing over the live set), or null when none is live. */
  owner(site: string): Shard | null {
    return pickShard(this.shards().shards, site);
  }

  /**
   * For tail's `redirect`: the URL of the owner of `site` when that is another live node;
   * null when it is this node, or when no other node is known.
   */
  redirectFor(site: string): string | null {
    const owner = this.owner(site);
    if (owner === null || owner.id === this.#opts.self?.id) return null;
    return owner.url;
  }

  #heartbeat(): void {
    const self = this.#opts.self;
    if (self === null) return;
    this.#publish({ id: self.id, url: self.url(), ttlMs: this.#opts.ttlMs, at: this.#now() });
  }

  #publish(m: TailNodeMessage): void {
    try {
      this.#opts.bus.publish(SUBJECTS.tailNode, m);
    } catch (err) {
      // The bus reconnects by itself; the next heartbeat tries again.
      this.#log.warn({ err }, 'tail node heartbeat not published');
    }
  }

  #onMessage(m: unknown): void {
    if (!isNodeMessage(m)) {
      this.#refusals.refused({}, 'malformed tail node message dropped');
      return;
    }
    const self = this.#opts.self;
    if ('probe' in m) {
      // Answered with a heartbeat, at most every 50 ms however many processes start.
      const now = this.#now();
      // Not our own probe: one from another process with our node id is answered too, so
      // that process sees it would be a twin and refuses to start.
      const ours = m.instance === undefined ? m.from === self?.id : m.instance === this.#instance;
      if (this.#announcing && !ours && now - this.#lastProbeAnswer >= 50) {
        this.#lastProbeAnswer = now;
        this.#heartbeat();
      }
      return;
    }
    if (self !== null && m.id === self.id && !this.#announcing && !('leaving' in m)) {
      // Before this process announces, a heartbeat with its id is another live process's.
      this.#twinUrl ??= m.url;
      return;
    }
    if (self !== null && m.id === self.id) {
      // Our own heartbeat, echoed by the bus. Another process with our id would steal our
      // sites' traffic half the time: say so, once.
      if (m.url !== self.url() && !this.#warnedTwin) {
        this.#warnedTwin = true;
        this.#log.error({ node: m.id, url: m.url }, 'another process announces this node id; give each tail node its own --node-id');
      }
      return;
    }
    if ('leaving' in m) {
      if (this.#peers.delete(m.id)) {
        this.#changed();
        this.#log.info({ node: m.id }, 'tail node left the cluster');
      }
      return;
    }
    const expiresAt = this.#now() + m.ttlMs;
    const known = this.#peers.get(m.id);
    if (known !== undefined) {
      known.expiresAt = expiresAt;
      known.ttlMs = m.ttlMs;
      if (known.url !== m.url) {
        known.url = m.url;
        this.#changed();
      }
      return;
    }
    this.#expire();
    if (this.#peers.size >= MAX_NODES) {
      if (!this.#warnedFull) this.#log.error({ max: MAX_NODES }, 'too many tail nodes; ignoring new ones');
      this.#warnedFull = true;
      return;
    }
    this.#peers.set(m.id, { url: m.url, ttlMs: m.ttlMs, expiresAt });
    this.#changed();
    this.#log.info({ node: m.id, url: m.url }, 'tail node joined the cluster');
  }

  #expire(): void {
    const now = this.#now();
    for (const [id, p] of this.#peers) {
      if (p.expiresAt > now) continue;
      // Expired only if the bus carried this process's own echo when p's heartbeat was due
      // (an echo sent within an interval before p's deadline, or later, came back).
      const lastEcho = this.#echo.lastHeard();
      if (lastEcho < p.expiresAt - this.#interval()) {
        if (!this.#holding) {
          this.#holding = true;
          this.#log.warn(
            { node: id, silentMs: now - lastEcho },
            'no heartbeat from a tail node, but this process does not hear its own messages on the bus either; keeping the shard map as it is until the bus carries them again',
          );
        }
        continue;
      }
      this.#peers.delete(id);
      this.#changed();
      this.#log.warn({ node: id }, 'tail node expired (no heartbeat within its TTL)');
    }
  }

  #changed(): void {
    this.#version = Math.max(this.#version + 1, this.#now());
    const onChange = this.#opts.onChange;
    if (onChange === undefined) return;
    queueMicrotask(() => {
      try {
        onChange();
      } catch (err) {
        this.#log.error({ err }, 'shard map change handler failed');
      }
    });
  }
}
