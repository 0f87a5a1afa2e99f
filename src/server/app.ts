/**
 * The composition root: wires the services (libraries) with a bus and stores, on one
 * HTTP server. `buildServer()` builds without listening (tests inject requests); `listen()`
 * binds the port. The monolith is all roles, the in-process bus and SQLite files.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import { openPgRateLimits } from '../auth/rate-limit-pg.js';
import { clientAddressOf } from './client-address.js';
import type { Bus } from '../bus/bus.js';
import { InProcessBus } from '../bus/inproc.js';
import { NatsBus } from '../bus/nats.js';
import { SelfEcho } from '../bus/self-echo.js';
import { createAuth, openPgAuthStore, openSqliteAuthStore, type AuthService } from '../auth/index.js';
import { createTail, openPgLogStore, openSqliteLogStore, type TailService } from '../tail/index.js';
import { createNotify, VAPID_FILE, openPgNotifyStore, openSqliteNotifyStore, type NotifyService } from '../notify/index.js';
import { createDevIdp, DEV_PROVIDER_ID } from '../devidp/index.js';
import { DgError, type ErrorCode } from '../protocol/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../protocol/json-depth.js';
import { hasLoneSurrogate, mayHoldSurrogates } from '../protocol/unicode.js';
import { refuseSocket } from '../protocol/raw-error-response.js';
import type { Config, HttpTimeouts } from './config.js';
import { createMetrics } from './metrics.js';
import { metricsGate } from './metrics-gate.js';
import { boundPipelining } from './pipelining.js';
import { asksForWebSocket, servePlainUpgrade } from './plain-upgrade.js';
import { clientErrorHandler, frameworkErrorHandler, installErrorHandlers, routeMiss, sendError } from './http-errors.js';
import { refuseBackupDir } from './backup.js';
import { demoRoutes } from './demo/routes.js';
import { ATTESTATION_FILE, createPrivateFiles, ensureDataDir, HMAC_FILE, loadSecrets, type Secrets } from './secrets.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { openPostgres, openSqliteFile } from './database-open.js';
import { refuseLostKeys, refuseLostKeysPg } from './lost-keys.js';
import { defaultNodeId, ShardRegistry, type ShardMap } from './shard-registry.js';

export const BODY_LIMIT = 64 * 1024;

export interface DatagroveServer {
  config: Config;
  app: FastifyInstance;
  bus: Bus;
  secrets: Secrets;
  auth: AuthService | null;
  tail: TailService | null;
  notify: NotifyService | null;
  /** Binds the port; resolves with the bound port. */
  listen(): Promise<number>;
  /** Graceful stop: refuse new work, finish commits, close sessions with 1001, close stores. */
  close(): Promise<void>;
}

/** The host part of a URL for a bound address: a wildcard address means this machine. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/** A request URL without its query string (`?…` says one was there). */
export function pathOnly(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?…`;
}

/**
 * The `/tail` URL under the public URL, with `ws`/`wss`. Parsed, not pattern-matched: a
 * scheme or host written in capitals (`HTTPS://Example.com`) is still http(s), and a
 * WebSocket client refuses anything but ws(s).
 */
function wsUrl(publicUrl: string): string {
  // --public-url is checked to parse at start; a URL made from a bound address may not
  // (an IPv6 zone id), and is then only rewritten as text.
  if (!URL.canParse(publicUrl)) return `${publicUrl.replace(/^http/i, 'ws').replace(/\/$/, '')}/tail`;
  const u = new URL(publicUrl);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/$/, '')}/tail`;
  return u.href;
}

/** The HTTP server's time limits (config.httpTimeouts overrides them). */
const HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 20_000, requestMs: 30_000, checkMs: 2_000, idleMs: 60_000, drainMs: 5_000 };

export async function buildServer(config: Config): Promise<DatagroveServer> {
  refuseBackupDir(config.dataDir);
  ensureDataDir(config.dataDir);
  // SQLite files are one process's: the directory is locked before anything in it is read.
  const lock = config.db === 'sqlite' ? lockDataDir(config.dataDir) : null;
  try {
    return await build(config, lock);
  } catch (err) {
    lock?.release();
    throw err;
  }
}

async function build(config: Config, lock: DataDirLock | null): Promise<DatagroveServer> {
  // A cluster's processes share key files; one that made its own would refuse every token.
  const cluster = config.bus !== 'inproc';
  const keyFiles = [HMAC_FILE, ATTESTATION_FILE, ...(config.roles.includes('notify') ? [VAPID_FILE] : [])];
  if (config.db === 'sqlite') {
    refuseLostKeys(config.dataDir, keyFiles);
    createPrivateFiles(config.dataDir, config.roles.map((r) => `${r}.db`));
  } else if (!cluster) {
    await refuseLostKeysPg(config.dataDir, keyFiles, config.db, config.dbSchema);
  }
  const secrets = loadSecrets(config.dataDir, { create: !cluster, alsoRequire: config.roles.includes('notify') ? [VAPID_FILE] : [] });
  const metrics = createMetrics();
  const upgradeHandlers: ((req: IncomingMessage, socket: Duplex, head: Buffer) => boolean)[] = [];

  const countError = (code: ErrorCode): void => metrics.errors.inc({ code });
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    frameworkErrors: frameworkErrorHandler(countError),
    clientErrorHandler: clientErrorHandler(countError),
    // Only the listed proxies may say who the client is (X-Forwarded-For): never everyone.
    trustProxy: config.trustProxy.length > 0 ? config.trustProxy : false,
    logger: {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'body.refresh', 'body.token', 'body.sig'], censor: '[redacted]' },
      // Query strings carry credentials and personal data (an OIDC callback's code and state,
      // an email looked up): request lines are logged with the path only.
      serializers: {
        req: (req: { method?: string; url?: string; hostname?: string; ip?: string; socket?: { remotePort?: number } }) => ({
          method: req.method,
          url: pathOnly(req.url ?? ''),
          hostname: req.hostname,
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort,
        }),
      },
    },
    serverFactory: (handler) => {
      const t = { ...HTTP_TIMEOUTS, ...config.httpTimeouts };
      // Node's defaults (300 s for a request, checked every 30 s) let a slow client hold a
      // connection for minutes; the API's requests are small JSON bodies. A WebSocket, once
      // upgraded, is not an HTTP request any more and is not cut by these. A client that
      // pipelines requests without reading the answers is cut too (pipelining.ts).
      const server = createServer(
        { headersTimeout: t.headersMs, requestTimeout: t.requestMs, connectionsCheckingInterval: t.checkMs },
        boundPipelining(handler, () => metrics.pipelineCloses.inc()),
      );
      // The limits above end once a request has arrived: a client that then stops reading
      // the answers would hold the connection, and the answers' bytes, for good. A connection
      // on which nothing moves either way for idleMs is closed. It never cuts an idle
      // kept-alive connection sooner than Node's keepAliveTimeout (5 s) does, nor an
      // upgraded WebSocket (ws turns the socket's timeout off).
      server.setTimeout(t.idleMs);
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        // `Upgrade: h2c` and the like are offers the server declines: plain requests.
        if (!asksForWebSocket(req)) return servePlainUpgrade(req, socket, head, handler, { maxBodyBytes: BODY_LIMIT, requestMs: t.requestMs });
        for (const h of upgradeHandlers) if (h(req, socket, head)) return;
        const miss = routeMiss(req.method, req.url);
        countError(miss.code);
        refuseSocket(socket, miss.code, miss.message);
      });
      return server;
    },
  });
  installErrorHandlers(app, countError);
  if (lock !== null && lock.previousPid !== 0) {
    app.log.warn({ previousPid: lock.previousPid, data: config.dataDir }, 'the previous server on this data directory did not stop cleanly; its lock is taken over');
  }
  // JSON bodies nested deeper than any request needs are refused before they are parsed
  // (deep nesting costs far more to parse than its size, and overflows recursive walks).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    // An empty body is no body, whatever its content-type says (many HTTP clients set it on
    // every request): routes whose body is optional take it, the others say what is missing.
    if (isBlank(body)) return done(null, undefined);
    if (nestsDeeperThan(body)) return done(new DgError('BAD_REQUEST', `body: nests deeper than ${MAX_JSON_DEPTH} levels`), undefined);
    const text = body.toString('utf8');
    parseJson(req, text, (err, value) => {
      // The parser refuses keys that would reach an object's prototype, and says only "not valid JSON".
      if (err !== null && /"(__proto__|constructor)"\s*:/.test(text)) {
        return done(new DgError('BAD_REQUEST', 'body: the keys __proto__ and constructor.prototype are not allowed'), undefined);
      }
      if (err === null && mayHoldSurrogates(text) && hasLoneSurrogate(value)) {
        return done(new DgError('BAD_REQUEST', 'body: a string holds a lone UTF-16 surrogate (not Unicode text)'), undefined);
      }
      done(err, value);
    });
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  await app.register(helmet, { global: true, contentSecurityPolicy: false });
  await app.register(cors, {
    // A request without Origin is not a browser's cross-origin one: no CORS headers, and an
    // OPTIONS without Origin is an unknown route like any other (the error shape, not text).
    origin: (origin, cb) => cb(null, origin !== undefined && (config.origins.includes('*') || config.origins.includes(origin))),
    // An allowed origin's OPTIONS without Access-Control-Request-Method gets the preflight answer.
    strictPreflight: false,
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['content-type', 'authorization'],
    // A browser app backs off by these (429 and 503 carry retry-after).
    exposedHeaders: ['retry-after'],
    maxAge: 600,
  });
  // Auth processes sharing a PostgreSQL database count their limits there, together.
  const sharedLimits = config.db !== 'sqlite' && config.roles.includes('auth') ? await openPostgres(config.db, () => openPgRateLimits(config.db, config.dbSchema)) : null;
  if (sharedLimits !== null) app.addHook('onClose', async () => sharedLimits.close());
  await app.register(rateLimit, {
    global: false,
    ...(sharedLimits === null ? {} : { store: sharedLimits.store }),
    errorResponseBuilder: (_req, ctx) => {
      const err = Object.assign(new Error('too many requests'), { statusCode: 429, retryAfter: Math.ceil(ctx.ttl / 1000) });
      return err;
    },
  });

  const bus: Bus =
    config.bus === 'inproc' ? new InProcessBus(app.log) : await NatsBus.connect(config.bus, { name: `datagrove-${config.roles.join('+')}-${process.pid}`, log: app.log });
  const publicUrl = config.publicUrl || `http://localhost:${config.port}`;
  // What auth and the dev IdP use as the public URL: with port 0 it is known only once listening.
  let boundUrl = publicUrl;
  const publicUrlNow = () => boundUrl;
  const devIdp = config.devIdp ? createDevIdp({ publicUrl: publicUrlNow, appOrigins: config.origins, log: app.log }) : null;
  if (devIdp !== null) {
    if (config.oidc.some((p) => p.id === DEV_PROVIDER_ID)) throw new DgError('BAD_REQUEST', `--oidc: provider id '${DEV_PROVIDER_ID}' is taken by --dev-idp`);
    await app.register(devIdp.routes);
  }
  const oidcProviders = () => (devIdp === null ? config.oidc : [...config.oidc, devIdp.provider()]);
  // Shards: the monolith (in-process bus) has one tail node, itself. In a cluster (NATS)
  // the map is the set of tail nodes heard from within their TTL (shard-registry.ts), and
  // two processes briefly disagreeing about a site's owner is safe: the log store fences
  // every append by length and epoch in one transaction, so a log cannot be corrupted.
  const nodeId = config.nodeId || (config.bus === 'inproc' ? 'tail-1' : defaultNodeId(config.port));
  // Every process on NATS, whatever its roles, checks that the bus carries its own messages
  // (for /ready, and for the shard map's expiries): a black-holed connection looks healthy
  // to NATS for about 30 s. The in-process bus cannot be cut off.
  const echo = config.bus === 'inproc' ? null : new SelfEcho({ bus, intervalMs: config.nodeTtlMs / 3 });
  echo?.start();
  const tailUrlNow = () => config.tailUrl || wsUrl(boundUrl);
  const membership =
    config.bus !== 'inproc' && (config.roles.includes('auth') || config.roles.includes('tail'))
      ? new ShardRegistry({
          bus,
          log: app.log,
          ttlMs: config.nodeTtlMs,
          ...(echo === null ? {} : { echo }),
          self: config.roles.includes('tail') ? { id: nodeId, url: tailUrlNow } : null,
          registry: metrics.registry,
          onChange: () => onShardChange(),
        })
      : null;
  /** Set once tail runs here: it moves handles as soon as the map changes. */
  let onShardChange = (): void => {};
  membership?.start();
  const shardMap = (): ShardMap => membership?.shards() ?? { version: 1, shards: [{ id: nodeId, url: tailUrlNow() }] };
  const closers: (() => Promise<void>)[] = [];
  // One PostgreSQL database is shared by every role of a cluster (tables are prefixed per service).
  const pg = config.db !== 'sqlite';

  let auth: AuthService | null = null;
  if (config.roles.includes('auth')) {
    const store = pg
      ? await openPostgres(config.db, () => openPgAuthStore(config.db, { schema: config.dbSchema }))
      : openSqliteFile('auth', join(config.dataDir, 'auth.db'), openSqliteAuthStore);
    auth = createAuth({
      store,
      bus,
      ring: secrets.ring,
      attestation: secrets.attestation,
      publicUrl: publicUrlNow,
      origins: config.origins,
      oidc: oidcProviders,
      accessTtlSec: config.accessTtlSec,
      pushHosts: config.pushHosts,
      shards: shardMap,
      log: app.log,
      registry: metrics.registry,
    });
    await app.register(auth.routes, { prefix: '/auth/v1' });
    await auth.start();
    const a = auth;
    closers.push(() => a.close());
  }

  let tail: TailService | null = null;
  if (config.roles.includes('tail')) {
    const store = pg
      ? await openPostgres(config.db, () => openPgLogStore(config.db, { schema: config.dbSchema }))
      : openSqliteFile('tail', join(config.dataDir, 'tail.db'), (path) => openSqliteLogStore(path));
    tail = createTail({
      store,
      bus,
      ring: secrets.ring,
      nodeId,
      publicUrl,
      leaseGraceMs: config.leaseGraceMs,
      redirectFor: (site) => membership?.redirectFor(site) ?? null,
      shardVersion: () => membership?.version ?? 0,
      clusterSettled: () => membership?.settled() ?? true,
      log: app.log,
      registry: metrics.registry,
      limits: { commitDelayMs: config.commitDelayMs, maxSessions: config.maxSessions, maxPendingPerAddress: config.maxPendingPerAddress, ...config.tailLimits },
      clientAddress: clientAddressOf(config.trustProxy),
    });
    await tail.start();
    const t = tail;
    onShardChange = () => t.shardChanged();
    upgradeHandlers.push((req, socket, head) => {
      if ((req.url ?? '').split('?')[0] !== '/tail') return false;
      t.handleUpgrade(req, socket, head);
      return true;
    });
    closers.unshift(() => t.close());
  }

  let notify: NotifyService | null = null;
  if (config.roles.includes('notify')) {
    notify = createNotify({
      store: pg
        ? await openPostgres(config.db, () => openPgNotifyStore(config.db, { schema: config.dbSchema }))
        : openSqliteFile('notify', join(config.dataDir, 'notify.db'), openSqliteNotifyStore),
      bus,
      dataDir: config.dataDir,
      vapidSubject: config.vapidSubject,
      pushHosts: config.pushHosts,
      pushIntervalMs: config.pushIntervalMs,
      log: app.log,
      registry: metrics.registry,
      pushAgent: config.notifyPushAgent,
    });
    await app.register(notify.routes, { prefix: '/notify/v1' });
    await notify.start();
    const n = notify;
    closers.push(() => n.close());
  }

  if (config.demo && auth !== null && tail !== null) await app.register(demoRoutes({ tailUrls: () => shardMap().shards.map((s) => s.url) }));
  app.get('/health', async () => ({ ok: true }));
  app.get('/ready', async (_req, reply) => {
    // What an operator looking at a 503 needs first: which part is not ready.
    const reasons = [
      bus.healthy() ? null : 'bus unreachable',
      bus.healthy() && echo !== null && !echo.hearsItself() ? 'bus carries no messages (this process hears none of its own)' : null,
      (membership?.settled() ?? true) ? null : 'joining the cluster',
      (auth?.ready() ?? true) ? null : 'auth store unavailable',
      tail?.notReady() ?? null,
      notify?.notReady() ?? null,
    ].filter((r) => r !== null);
    if (reasons.length > 0) return sendError(reply, 'UNAVAILABLE', `not ready: ${reasons.join('; ')}`);
    return { ok: true };
  });
  const metricsAllowed = metricsGate(config.metricsToken);
  app.get('/metrics', async (req, reply) => {
    if (!metricsAllowed(req.headers.authorization)) {
      void reply.header('www-authenticate', 'Bearer realm="metrics"');
      return sendError(reply, 'UNAUTHORIZED', 'GET /metrics needs authorization: Bearer <the metrics token>');
    }
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.text();
  });

  let closed = false;
  const server: DatagroveServer = {
    config,
    app,
    bus,
    secrets,
    auth,
    tail,
    notify,
    async listen() {
      await app.listen({ port: config.port, host: config.host });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : config.port;
      if (config.publicUrl === '' && config.port === 0) boundUrl = `http://${urlHost(config.host)}:${port}`;
      // Join the shard map only once the tail URL is known and connections are accepted,
      // and never under a node id another live process announces.
      if (membership !== null && config.roles.includes('tail')) {
        await membership.settle();
        const twin = membership.twin();
        if (twin !== null) {
          await server.close();
          throw new DgError('BAD_REQUEST', `node id ${nodeId} is announced by another live process (${twin}): give each tail node its own --node-id`);
        }
      }
      membership?.announce();
      return port;
    },
    async close() {
      if (closed) return;
      closed = true;
      // Leave the shard map first, so clients are sent to the remaining nodes at once.
      membership?.stop();
      echo?.stop();
      if (tail !== null) await tail.drain();
      // Fastify closes idle connections at once and waits for the others: past the drain
      // time, a connection still sending its request (or not reading the answer) is cut.
      const drainMs = config.httpTimeouts?.drainMs ?? HTTP_TIMEOUTS.drainMs;
      const cut = setTimeout(() => app.server.closeAllConnections(), drainMs);
      try {
        await app.close();
      } finally {
        clearTimeout(cut);
      }
      try {
        for (const c of closers) await c();
        await bus.close();
      } finally {
        // Last: the stores are closed, so another server may open them.
        lock?.release();
      }
    },
  };
  return server;
}

/** Whether `body` holds only JSON whitespace (or nothing). */
function isBlank(body: Buffer): boolean {
  for (const b of body) if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return false;
  return true;
}
