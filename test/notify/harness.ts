/**
 * A notify service driven exactly as auth and tail drive it: a real InProcessBus, a real
 * SQLite store in a temp dir, its routes on a fastify instance, and logs captured so tests
 * can check what was logged. Torn down after the calling test file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { Registry } from 'prom-client';
import { InProcessBus } from '../../src/bus/inproc.js';
import { SUBJECTS, type AccessReply, type AccessRequest, type NotifyPublish, type PresenceMessage } from '../../src/protocol/bus-messages.js';
import { createNotify, openSqliteNotifyStore, type NotifyLimits, type NotifyService, type NotifyStore } from '../../src/notify/index.js';
import { tempDir } from '../helpers/server.js';
import type { BrowserSubscription, PushReceiver } from '../helpers/push-receiver.js';

export const SUBJECT = 'mailto:ops@datagrove.test';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Harness {
  notify: NotifyService;
  bus: InProcessBus;
  store: NotifyStore;
  app: FastifyInstance;
  registry: Registry;
  dataDir: string;
  publicKey: string;
  logs: LogLine[];
  update(message: unknown): Promise<{ ok: boolean; version?: number; error?: { code: string } }>;
  /** dg.notify.publish as tail sends it; `ageMs`: how long ago the newest write was taken. */
  publish(site: string, log: string, length: number, ageMs?: number): void;
  /**
   * Auth's answer to dg.auth.access, which notify asks before each push: every (user, site,
   * log) may read unless listed here as `user/site/log` (or `user/site/*`).
   */
  denied: Set<string>;
  /** Stops answering dg.auth.access, as when no auth process is reachable. */
  muteAuth(): void;
  presence(message: PresenceMessage): void;
  /** The value of a counter (summed over label sets matching `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  receiver: PushReceiver;
  dataDir?: string;
  pushIntervalMs?: number;
  limits?: Partial<NotifyLimits>;
  pushHosts?: string[];
  /** The SQLite store file (default: a new one); two harnesses on one file are two notify processes on one store. */
  storePath?: string;
}

export const newDevice = (): string => randomBytes(32).toString('base64url');
let seq = 0;
export const newUser = (): string => `user${seq++}_${randomBytes(4).toString('hex')}`;
export const newSite = (): string => `site${seq++}_${randomBytes(4).toString('hex')}`;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A profile `push` change for a browser subscription. */
export function pushChange(device: string, sub: Pick<BrowserSubscription, 'endpoint' | 'keys'>): unknown {
  return { op: 'push', device, subscription: { endpoint: sub.endpoint, keys: sub.keys } };
}

/** A new user with one device that joined `site` and has a push endpoint at `receiver`. */
export async function member(h: Harness, receiver: PushReceiver, site = newSite()) {
  const user = newUser();
  const device = newDevice();
  const sub = receiver.subscribe(h.publicKey);
  const reply = await h.update({ user, version: 1, changes: [{ op: 'join', device, site }, pushChange(device, sub)] });
  assert.equal(reply.ok, true);
  return { user, device, site, sub };
}

/** The lengths the pushes to subscription `id` carried, in order. */
export const pushedLengths = (receiver: PushReceiver, id: string): unknown[] => receiver.received(id).map((p) => (p.payload as { length?: number }).length);

export async function startNotify(opts: HarnessOptions): Promise<Harness> {
  const dataDir = opts.dataDir ?? tempDir('dg-notify-');
  const logs: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const bus = new InProcessBus(log);
  const store = openSqliteNotifyStore(opts.storePath ?? join(tempDir('dg-notify-db-'), 'notify.db'));
  const registry = new Registry();
  const notify = createNotify({
    store,
    bus,
    dataDir,
    vapidSubject: SUBJECT,
    pushHosts: opts.pushHosts ?? opts.receiver.hosts,
    pushIntervalMs: opts.pushIntervalMs ?? 100,
    log,
    registry,
    limits: opts.limits,
    pushAgent: opts.receiver.agent,
  });
  // Auth's side of dg.auth.access, as notify asks it before each push.
  const denied = new Set<string>();
  const authSide = bus.subscribe(SUBJECTS.authAccess, (m) => {
    const { user, site, log: logName } = m as AccessRequest;
    if (denied.has(`${user}/${site}/${logName}`) || denied.has(`${user}/${site}/*`)) return { ok: true, allowed: false } satisfies AccessReply;
    return { ok: true, allowed: true, rights: ['read'], logs: ['*'], expiresAt: null } satisfies AccessReply;
  });
  const app = Fastify({ logger: false });
  await app.register(notify.routes, { prefix: '/notify/v1' });
  await notify.start();
  await app.ready();
  const res = await app.inject({ method: 'GET', url: '/notify/v1/vapid' });
  const publicKey = (res.json() as { publicKey: string }).publicKey;

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await notify.close();
    await app.close();
    await bus.close();
  };
  after(close);

  return {
    notify,
    bus,
    store,
    app,
    registry,
    dataDir,
    publicKey,
    logs,
    update: (message) => bus.request(SUBJECTS.notifyUpdate, message),
    publish: (site, logName, length, ageMs) => bus.publish(SUBJECTS.notifyPublish, { site, log: logName, length, ...(ageMs === undefined ? {} : { ageMs }) } satisfies NotifyPublish),
    denied,
    muteAuth: () => authSide.unsubscribe(),
    presence: (message) => bus.publish(SUBJECTS.notifyPresence, message),
    async metric(name, labels = {}) {
      const m = registry.getSingleMetric(name);
      if (m === undefined) return 0;
      const { values } = await m.get();
      return values
        .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
        .reduce((sum, v) => sum + v.value, 0);
    },
    close,
  };
}
