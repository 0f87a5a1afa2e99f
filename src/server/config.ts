/**
 * Configuration of `datagrove serve`: every option is an environment variable and a flag
 * (PROTOCOL.md "Service endpoints and configuration"); a flag wins over the environment.
 */
import type { Agent } from 'node:https';
import { isIP } from 'node:net';
import { parseOidcProviders, type OidcProviderConfig } from '../auth/oidc/config.js';
import { DgError } from '../protocol/errors.js';
import type { TailLimits } from '../tail/index.js';
import { isPushHostEntry } from '../protocol/push-endpoint.js';
import { MAX_NODE_TTL_MS, MIN_NODE_TTL_MS, NODE_ID_RE } from './shard-registry.js';

export type Role = 'auth' | 'tail' | 'notify';
export const ALL_ROLES: readonly Role[] = ['auth', 'tail', 'notify'];

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  publicUrl: string;
  origins: string[];
  pushHosts: string[];
  /** 'sqlite' (files under dataDir) or a postgres:// URL. */
  db: string;
  /** PostgreSQL schema that holds every service's tables (created when missing). */
  dbSchema: string;
  /** 'inproc' or a nats:// URL. */
  bus: string;
  roles: Role[];
  /** This process's tail node id (the shard id); '' derives one (tail-1 in the monolith). */
  nodeId: string;
  /** The ws(s):// URL of this node's /tail that clients use; '' derives it from the public URL. */
  tailUrl: string;
  /** Cluster membership: a tail node is dropped this long after its last heartbeat (sent every third of it). */
  nodeTtlMs: number;
  accessTtlSec: number;
  leaseGraceMs: number;
  /** Tail group commit: while writes keep coming, at most one commit per this many ms (0: one per event-loop turn). */
  commitDelayMs: number;
  /** Tail sessions one node holds at once; more upgrades get 503 with retry-after. */
  maxSessions: number;
  /**
   * Tail sessions one client address may have waiting for `connect` at once (the address
   * as --trust-proxy finds it); more upgrades from it get 503 with retry-after.
   */
  maxPendingPerAddress: number;
  pushIntervalMs: number;
  vapidSubject: string;
  devIdp: boolean;
  /** Serve the demo web app at `/` (only where auth and tail both run). */
  demo: boolean;
  /** OpenID Connect providers for login (JSON array of {id, issuer, clientId, clientSecret, scopes?, prompt?}). */
  oidc: OidcProviderConfig[];
  logLevel: string;
  /**
   * Reverse proxies whose `X-Forwarded-For` is believed (addresses, CIDR ranges, or
   * loopback / linklocal / uniquelocal); empty: the peer address is the client's.
   */
  trustProxy: string[];
  /**
   * When not empty, GET /metrics answers only requests with `authorization: Bearer <it>`
   * (401 otherwise); empty: /metrics is open, to be blocked at the proxy.
   */
  metricsToken: string;
  /** Overrides of the tail service's limits; set in code only (tests shrink the time-based ones). */
  tailLimits?: Partial<TailLimits>;
  /** Overrides of the HTTP server's time limits (HTTP_TIMEOUTS in app.ts); set in code only (tests shrink them). */
  httpTimeouts?: Partial<HttpTimeouts>;
  /** TLS agent for notify's push requests; set in code only (tests trust a local push receiver). */
  notifyPushAgent?: Agent;
}

/** How long an HTTP client may take; over it the server answers 408 and closes the connection. */
export interface HttpTimeouts {
  /** From the connection's first byte (or the end of the last request) to the end of the request's headers. */
  headersMs: number;
  /** From the first byte to the end of the request's body. */
  requestMs: number;
  /** How often connections are checked against the two (ms). */
  checkMs: number;
  /**
   * While a request is being run or answered, how long nothing may move on its connection,
   * either way (ms); then the connection is closed and the answers not yet sent are dropped.
   * A client that stops reading its answers cannot hold the connection and their bytes.
   */
  idleMs: number;
  /**
   * On shutdown, how long requests still coming in or being answered may take before
   * their connections are cut (ms), so a half-sent request cannot hold the process.
   */
  drainMs: number;
}

export const DEFAULT_PUSH_HOSTS = [
  'fcm.googleapis.com',
  'android.googleapis.com',
  'updates.push.services.mozilla.com',
  'push.services.mozilla.com',
  'web.push.apple.com',
  'api.push.apple.com',
  'wns2-par02p.notify.windows.com',
  '*.notify.windows.com',
];

/** Longest lease grace: a departed leader's device holding a log for more than 10 minutes helps nobody. */
export const MAX_LEASE_GRACE_MS = 600_000;
/** Longest push interval: one day. */
export const MAX_PUSH_INTERVAL_MS = 86_400_000;

interface OptionSpec {
  key: keyof Config;
  flag: string;
  env: string;
  help: string;
  kind: 'string' | 'int' | 'list' | 'bool' | 'roles' | 'oidc';
}

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'port', flag: '--port', env: 'DATAGROVE_PORT', kind: 'int', help: 'TCP port to listen on (default 8080; 0 picks a free port)' },
  { key: 'host', flag: '--host', env: 'DATAGROVE_HOST', kind: 'string', help: 'address to bind (default 0.0.0.0)' },
  { key: 'dataDir', flag: '--data', env: 'DATAGROVE_DATA', kind: 'string', help: 'data directory: SQLite files and generated secrets (default ./data)' },
  { key: 'publicUrl', flag: '--public-url', env: 'DATAGROVE_PUBLIC_URL', kind: 'string', help: 'URL clients use to reach this server (default http://localhost:PORT)' },
  { key: 'origins', flag: '--origins', env: 'DATAGROVE_ORIGINS', kind: 'list', help: 'comma-separated CORS origins allowed to call the HTTP APIs (default: none)' },
  { key: 'pushHosts', flag: '--push-hosts', env: 'DATAGROVE_PUSH_HOSTS', kind: 'list', help: 'comma-separated hosts, host:port, *.domain or *.domain:port allowed as Web Push endpoints (default: public browser push services)' },
  { key: 'db', flag: '--db', env: 'DATAGROVE_DB', kind: 'string', help: "store: 'sqlite' (files in the data dir, default) or a postgres:// URL" },
  { key: 'dbSchema', flag: '--db-schema', env: 'DATAGROVE_DB_SCHEMA', kind: 'string', help: 'PostgreSQL schema for every service\'s tables, created when missing (default public)' },
  { key: 'bus', flag: '--bus', env: 'DATAGROVE_BUS', kind: 'string', help: "bus: 'inproc' (default) or a nats:// URL" },
  { key: 'roles', flag: '--roles', env: 'DATAGROVE_ROLES', kind: 'roles', help: 'comma-separated services to run here: auth,tail,notify (default all)' },
  { key: 'nodeId', flag: '--node-id', env: 'DATAGROVE_NODE_ID', kind: 'string', help: 'id of this tail node in the shard map (default tail-1 with the in-process bus, else tail-HOST-PORT)' },
  { key: 'tailUrl', flag: '--tail-url', env: 'DATAGROVE_TAIL_URL', kind: 'string', help: "ws(s):// URL clients use to reach this node's /tail (default: the public URL with ws, plus /tail)" },
  { key: 'nodeTtlMs', flag: '--node-ttl-ms', env: 'DATAGROVE_NODE_TTL_MS', kind: 'int', help: `a tail node leaves the shard map this long after its last heartbeat (default 10000, ${MIN_NODE_TTL_MS} to ${MAX_NODE_TTL_MS})` },
  { key: 'accessTtlSec', flag: '--access-ttl', env: 'DATAGROVE_ACCESS_TTL', kind: 'int', help: 'access and lease token lifetime in seconds (default 900, at most 900)' },
  { key: 'leaseGraceMs', flag: '--lease-grace-ms', env: 'DATAGROVE_LEASE_GRACE_MS', kind: 'int', help: `how long a departed leader's device may retake leadership (default 3000, at most ${MAX_LEASE_GRACE_MS})` },
  { key: 'commitDelayMs', flag: '--commit-delay-ms', env: 'DATAGROVE_COMMIT_DELAY_MS', kind: 'int', help: 'while writes keep coming, a tail node starts at most one durable commit per this many ms, so they share it; a write after a quiet spell commits at once (default 2, 0 to 50; 0: one commit per event-loop turn)' },
  { key: 'maxSessions', flag: '--max-sessions', env: 'DATAGROVE_MAX_SESSIONS', kind: 'int', help: 'tail WebSocket sessions one node holds at once; further upgrades get 503 with retry-after (default 100000, at least 1; sessions that have not sent connect yet: at most a tenth of it)' },
  { key: 'maxPendingPerAddress', flag: '--max-pending-per-address', env: 'DATAGROVE_MAX_PENDING_PER_ADDRESS', kind: 'int', help: 'tail WebSocket sessions one client address may have open without a connect yet; further upgrades from it get 503 with retry-after (default 100, at least 1; raise it for many clients behind one NAT)' },
  { key: 'pushIntervalMs', flag: '--push-interval-ms', env: 'DATAGROVE_PUSH_INTERVAL_MS', kind: 'int', help: `at most one push per (device, site) per interval (default 10000, at most ${MAX_PUSH_INTERVAL_MS})` },
  { key: 'vapidSubject', flag: '--vapid-subject', env: 'DATAGROVE_VAPID_SUBJECT', kind: 'string', help: 'VAPID subject, a mailto: or https: URL (default mailto:admin@localhost)' },
  { key: 'devIdp', flag: '--dev-idp', env: 'DATAGROVE_DEV_IDP', kind: 'bool', help: 'mount a development OpenID Connect provider (refused with NODE_ENV=production)' },
  { key: 'demo', flag: '--demo', env: 'DATAGROVE_DEMO', kind: 'bool', help: 'serve the demo web app at / where auth and tail both run (default on; --demo=false or DATAGROVE_DEMO=0 turns it off)' },
  { key: 'oidc', flag: '--oidc', env: 'DATAGROVE_OIDC', kind: 'oidc', help: 'OpenID Connect providers: JSON array of {id, issuer, clientId, clientSecret, scopes?, prompt?} (default: none)' },
  { key: 'trustProxy', flag: '--trust-proxy', env: 'DATAGROVE_TRUST_PROXY', kind: 'list', help: 'comma-separated addresses or CIDR ranges (or loopback, linklocal, uniquelocal) of reverse proxies whose X-Forwarded-For names the client (default: none)' },
  { key: 'metricsToken', flag: '--metrics-token', env: 'DATAGROVE_METRICS_TOKEN', kind: 'string', help: 'when set (16 to 256 printable ASCII characters, no spaces), GET /metrics needs "authorization: Bearer <token>" and answers 401 without it (default: open); prefer the environment variable, which ps does not show' },
  { key: 'logLevel', flag: '--log-level', env: 'DATAGROVE_LOG_LEVEL', kind: 'string', help: 'fatal, error, warn, info (default), debug, trace or silent' },
];

export function defaultConfig(): Config {
  return {
    port: 8080,
    host: '0.0.0.0',
    dataDir: './data',
    publicUrl: '',
    origins: [],
    pushHosts: DEFAULT_PUSH_HOSTS,
    db: 'sqlite',
    dbSchema: 'public',
    bus: 'inproc',
    roles: [...ALL_ROLES],
    nodeId: '',
    tailUrl: '',
    nodeTtlMs: 10000,
    accessTtlSec: 900,
    leaseGraceMs: 3000,
    commitDelayMs: 2,
    maxSessions: 100_000,
    maxPendingPerAddress: 100,
    pushIntervalMs: 10000,
    vapidSubject: 'mailto:admin@localhost',
    devIdp: false,
    demo: true,
    oidc: [],
    logLevel: 'info',
    trustProxy: [],
    metricsToken: '',
  };
}

function parseValue(spec: OptionSpec, raw: string): Config[keyof Config] {
  switch (spec.kind) {
    case 'int': {
      if (!/^\d+$/.test(raw)) throw new DgError('BAD_REQUEST', `${spec.flag} (${spec.env}) must be a non-negative integer, got '${raw}'`);
      return Number(raw);
    }
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'bool':
      if (!/^(|1|true|yes|0|false|no)$/.test(raw)) throw new DgError('BAD_REQUEST', `${spec.flag} (${spec.env}) must be true, false, yes, no, 1 or 0, got '${raw}'`);
      return raw === '' || raw === '1' || raw === 'true' || raw === 'yes';
    case 'roles': {
      const roles = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      for (const r of roles) {
        if (!(ALL_ROLES as readonly string[]).includes(r)) throw new DgError('BAD_REQUEST', `unknown role '${r}' (expected auth, tail, notify)`);
      }
      if (roles.length === 0) throw new DgError('BAD_REQUEST', '--roles needs at least one role');
      return [...new Set(roles)] as Role[];
    }
    case 'oidc':
      return parseOidcProviders(raw);
    default:
      return raw;
  }
}

/** Builds the configuration from defaults, then the environment, then flags. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const spec of OPTIONS) {
    const v = env[spec.env];
    if (v !== undefined && v !== '') config[spec.key] = parseValue(spec, v);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = OPTIONS.find((o) => o.flag === name);
    if (spec === undefined) throw new DgError('BAD_REQUEST', `unknown option '${arg}' (see datagrove --help)`);
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new DgError('BAD_REQUEST', `${spec.flag} needs a value`);
      value = next;
      i++;
    }
    config[spec.key] = parseValue(spec, value);
  }
  const c = config as unknown as Config;
  if (c.accessTtlSec < 1 || c.accessTtlSec > 900) throw new DgError('BAD_REQUEST', '--access-ttl must be between 1 and 900 seconds');
  if (c.port > 65535) throw new DgError('BAD_REQUEST', '--port must be at most 65535');
  if (c.db !== 'sqlite' && !/^postgres(ql)?:\/\//.test(c.db)) throw new DgError('BAD_REQUEST', "--db must be 'sqlite' or a postgres:// URL");
  if (c.bus !== 'inproc' && !/^nats:\/\//.test(c.bus)) throw new DgError('BAD_REQUEST', "--bus must be 'inproc' or a nats:// URL");
  if (c.bus !== 'inproc' && c.db === 'sqlite') {
    // A SQLite file is one process's: a tail node with its own would acknowledge writes that
    // the node serving the site next never sees, and no store would fence their leaders.
    throw new DgError('BAD_REQUEST', '--bus nats:// needs --db postgres://: the processes of a cluster share one PostgreSQL store, which fences every append');
  }
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(c.dbSchema)) throw new DgError('BAD_REQUEST', '--db-schema must be a lower-case SQL identifier');
  if (c.nodeId !== '' && !NODE_ID_RE.test(c.nodeId)) throw new DgError('BAD_REQUEST', '--node-id must be 1 to 128 of A-Z a-z 0-9 . _ : -');
  // An empty flag value is a mistake (`--data "$DIR"` with DIR unset), not the default.
  if (c.dataDir === '') throw new DgError('BAD_REQUEST', '--data needs a directory (leave it unset for ./data)');
  if (c.host === '') throw new DgError('BAD_REQUEST', '--host needs an address (leave it unset for 0.0.0.0)');
  if (c.tailUrl !== '') checkTailUrl(c.tailUrl);
  if (c.nodeTtlMs < MIN_NODE_TTL_MS || c.nodeTtlMs > MAX_NODE_TTL_MS) throw new DgError('BAD_REQUEST', `--node-ttl-ms must be between ${MIN_NODE_TTL_MS} and ${MAX_NODE_TTL_MS}`);
  if (c.maxSessions < 1) throw new DgError('BAD_REQUEST', '--max-sessions must be at least 1');
  if (c.maxPendingPerAddress < 1) throw new DgError('BAD_REQUEST', '--max-pending-per-address must be at least 1');
  if (c.commitDelayMs > 50) throw new DgError('BAD_REQUEST', '--commit-delay-ms must be between 0 and 50');
  for (const p of c.trustProxy) checkProxy(p);
  if (c.publicUrl !== '') checkPublicUrl(c.publicUrl);
  for (const o of c.origins) checkOrigin(o);
  if (c.pushHosts.length === 0) throw new DgError('BAD_REQUEST', '--push-hosts: no host given (leave it unset for the public browser push services)');
  for (const h of c.pushHosts) {
    if (!isPushHostEntry(h)) throw new DgError('BAD_REQUEST', `--push-hosts: '${h}' is not a host, host:port, *.domain or *.domain:port`);
  }
  if (c.leaseGraceMs > MAX_LEASE_GRACE_MS) throw new DgError('BAD_REQUEST', `--lease-grace-ms must be at most ${MAX_LEASE_GRACE_MS}`);
  if (c.pushIntervalMs > MAX_PUSH_INTERVAL_MS) throw new DgError('BAD_REQUEST', `--push-interval-ms must be at most ${MAX_PUSH_INTERVAL_MS}`);
  if (c.metricsToken !== '' && !/^[\x21-\x7e]{16,256}$/.test(c.metricsToken)) {
    throw new DgError('BAD_REQUEST', '--metrics-token must be 16 to 256 printable ASCII characters without spaces');
  }
  if (!LOG_LEVELS.includes(c.logLevel)) throw new DgError('BAD_REQUEST', `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  if (!/^(mailto:[^\s@]+@[^\s@]+|https:\/\/[^\s/]+(\/\S*)?)$/.test(c.vapidSubject)) {
    throw new DgError('BAD_REQUEST', '--vapid-subject must be a mailto: URL with an address (mailto:ops@example.com) or an https:// URL');
  }
  return c;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** --public-url: an http(s) URL without credentials, query or fragment (a path prefix is allowed). */
function checkPublicUrl(raw: string): void {
  const url = URL.canParse(raw) ? new URL(raw) : null;
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || /\s/.test(raw)) {
    throw new DgError('BAD_REQUEST', `--public-url must be an http:// or https:// URL without credentials, query or fragment, got '${raw}'`);
  }
}

/**
 * --tail-url: a ws(s) URL that parses, without credentials or fragment. It is published in
 * the shard map as it is written, and a client that cannot parse it cannot reach the node.
 */
function checkTailUrl(raw: string): void {
  const url = URL.canParse(raw) ? new URL(raw) : null;
  if (url === null || (url.protocol !== 'ws:' && url.protocol !== 'wss:') || url.hostname === '' || url.username !== '' || url.password !== '' || raw.includes('#') || /\s/.test(raw)) {
    throw new DgError('BAD_REQUEST', `--tail-url must be a ws:// or wss:// URL without credentials or fragment, got '${raw}'`);
  }
}

/** One --origins item: '*' or an origin as browsers send it (scheme://host[:port], nothing after). */
function checkOrigin(o: string): void {
  if (o === '*') return;
  const origin = URL.canParse(o) ? new URL(o).origin : null;
  if (origin === null || origin === 'null' || origin !== o) {
    throw new DgError('BAD_REQUEST', `--origins: '${o}' is not an origin (scheme://host or scheme://host:port, lower-case, no path or trailing slash) or *`);
  }
}

const PROXY_PRESETS = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** One --trust-proxy item: an IPv4 or IPv6 address, a CIDR range, or a preset name. */
function checkProxy(p: string): void {
  if (PROXY_PRESETS.has(p)) return;
  const slash = p.indexOf('/');
  const addr = slash < 0 ? p : p.slice(0, slash);
  const family = isIP(addr);
  const bits = slash < 0 ? null : p.slice(slash + 1);
  const max = family === 6 ? 128 : 32;
  if (family !== 0 && (bits === null || (/^\d{1,3}$/.test(bits) && Number(bits) <= max))) return;
  throw new DgError('BAD_REQUEST', `--trust-proxy: '${p}' is not an address, a CIDR range, loopback, linklocal or uniquelocal`);
}

export function helpText(): string {
  const lines = [
    'datagrove: device identity, grants, fenced durable logs, signaling and Web Push.',
    '',
    'Usage:',
    '  datagrove serve [options]      run the server (the monolith unless --roles says otherwise)',
    '  datagrove backup --to DIR [--data DIR] [--no-keys]  copy the databases (and key files) while the server runs (SQLite)',
    '  datagrove restore --from DIR [--data DIR]     put a backup into an empty data directory, ready to serve',
    '  datagrove lift-epochs [--data DIR | --db URL]  after restoring a store any other way: run once, before serving',
    '  datagrove keys init [--data DIR]              make the key files a data directory lacks (a cluster copies them to every process)',
    '  datagrove keys rotate [--data DIR]            add a new HMAC key and attestation key; old ones keep verifying',
    '  datagrove keys revoke-attestation KID [--data DIR]  mark a compromised attestation key revoked',
    '  datagrove --help               this text',
    '',
    'Options (each also an environment variable; a flag wins):',
  ];
  for (const o of OPTIONS) lines.push(`  ${(o.flag + (o.kind === 'bool' ? '' : ' VALUE')).padEnd(22)} ${o.env.padEnd(28)} ${o.help}`);
  lines.push('', 'Endpoints: /auth/v1/*, /notify/v1/*, WebSocket /tail, /health, /ready, /metrics.', 'Docs: docs/protocol.md, docs/architecture.md, docs/security.md.');
  return lines.join('\n');
}
