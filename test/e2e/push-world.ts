/**
 * The steps of the end-to-end push tests, each done the way a client does it: HTTP to
 * /auth/v1 and /notify/v1, a tail WebSocket session for the writer, and a real push
 * receiver (test/helpers/push-receiver.ts) standing in for the browser's push service.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { ProfileReply, ProfileUpdateReply } from '../../src/protocol/auth-schemas.js';
import type { Config } from '../../src/server/config.js';
import { declareGrant, get, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import type { BrowserSubscription, PushReceiver, ReceivedPush } from '../helpers/push-receiver.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { TailClient, entry } from '../helpers/tail-client.js';
import { metric } from '../helpers/metrics.js';

export const VAPID_SUBJECT = 'mailto:ops@datagrove.test';
/** Short enough that coalescing windows never slow a test down. */
export const PUSH_INTERVAL_MS = 100;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it holds; fails after `timeoutMs` naming `what`. */
export async function until(what: string, f: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(15);
  }
}

/** The monolith, with the receiver (and only it) on the push allowlist and trusted for TLS. */
export function startPushServer(receiver: PushReceiver, overrides: Partial<Config> = {}): Promise<TestServer> {
  const loopback = receiver.hosts.filter((h) => h.startsWith('127.0.0.1:'));
  return startServer({
    pushHosts: loopback,
    pushIntervalMs: PUSH_INTERVAL_MS,
    vapidSubject: VAPID_SUBJECT,
    notifyPushAgent: receiver.agent,
    ...overrides,
  });
}

/** GET /notify/v1/vapid: the applicationServerKey a browser subscribes with. */
export async function vapidKey(url: string): Promise<string> {
  const res = await fetch(`${url}/notify/v1/vapid`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { publicKey?: unknown };
  assert.equal(typeof body.publicKey, 'string');
  return String(body.publicKey);
}

export const SYNC_METRIC = 'datagrove_auth_notify_sync_total';

/** Resolves once auth counted `n` more notify syncs with `outcome` than `before`. */
export async function syncedAfter(url: string, outcome: string, before: number, n = 1): Promise<void> {
  await until(`${n} notify sync(s) with outcome ${outcome}`, async () => (await metric(url, SYNC_METRIC, `outcome="${outcome}"`)) >= before + n);
}

/** The `Topic` header PROTOCOL.md defines, computed independently of the server. */
export function topicOf(device: string, site: string): string {
  return createHash('sha256').update(`${device}/${site}`, 'utf8').digest('base64url').slice(0, 32);
}

// ---- users, grants, profiles ----

/** A new user whose device was granted `rights` on the site by its owner (declare, then join). */
export async function member(url: string, owner: SignedUpDevice, site: string, rights: ('read' | 'write' | 'admin')[] = ['read', 'write']): Promise<SignedUpDevice> {
  const dev = await signupDevice(url, { name: 'member device' });
  const grant = await declareGrant(url, owner, { sub: `user:${dev.user}`, site, logs: ['*'], rights });
  const r = await post(url, '/join', { site, grant: grant.hash }, dev.access);
  assert.equal(r.status, 200, r.text);
  return dev;
}

export async function getProfile(url: string, dev: SignedUpDevice): Promise<ProfileReply> {
  const r = await get<ProfileReply>(url, '/profile', dev.access);
  assert.equal(r.status, 200, r.text);
  assert.ok(Value.Check(ProfileReply, r.body), r.text);
  return r.body;
}

/** POST /profile at the current version, as a client does after reading its profile. */
export async function changeProfile(url: string, dev: SignedUpDevice, changes: unknown[]): Promise<ProfileUpdateReply> {
  const { version } = await getProfile(url, dev);
  const r = await post<ProfileUpdateReply>(url, '/profile', { version, changes }, dev.access);
  assert.equal(r.status, 200, r.text);
  assert.ok(Value.Check(ProfileUpdateReply, r.body), r.text);
  return r.body;
}

/** Like changeProfile, but the update must be accepted and reach notify before it resolves. */
export async function changeProfileSynced(url: string, dev: SignedUpDevice, changes: unknown[]): Promise<void> {
  const before = await metric(url, SYNC_METRIC, 'outcome="changes"');
  const r = await changeProfile(url, dev, changes);
  assert.equal(r.ok, true, JSON.stringify(r));
  await syncedAfter(url, 'changes', before);
}

export function pushChange(device: string, sub: BrowserSubscription): unknown {
  return { op: 'push', device, subscription: { endpoint: sub.endpoint, keys: sub.keys } };
}

/**
 * What a browser app does to get notified about a site: subscribe with the server's VAPID
 * key, register the subscription (one profile update), then join the site (another).
 */
export async function enablePush(url: string, dev: SignedUpDevice, receiver: PushReceiver, applicationServerKey: string, site: string): Promise<BrowserSubscription> {
  const sub = receiver.subscribe(applicationServerKey);
  await changeProfileSynced(url, dev, [pushChange(dev.device, sub)]);
  await changeProfileSynced(url, dev, [{ op: 'join', device: dev.device, site }]);
  return sub;
}

// ---- the writer ----

/** A leader over a real tail session, appending entries to one log. */
export class Writer {
  length: number;

  private constructor(
    readonly client: TailClient,
    readonly handle: string,
    length: number,
  ) {
    this.length = length;
  }

  static async open(wsUrl: string, dev: SignedUpDevice, site: string, log: string): Promise<Writer> {
    const client = await TailClient.connect(wsUrl, dev.access);
    const lease = await client.call<{ handle: string; role: string; length: number }>('lease', { site, log });
    assert.equal(lease.role, 'leader');
    return new Writer(client, lease.handle, lease.length);
  }

  /** Appends `n` entries; resolves with the new length once durable. */
  async write(n = 1): Promise<number> {
    const entries = Array.from({ length: n }, (_, i) => entry(`entry ${this.length + i}`));
    const r = await this.client.call<{ length: number }>('write', { handle: this.handle, at: this.length, entries });
    assert.equal(r.length, this.length + n);
    this.length = r.length;
    return r.length;
  }

  close(): void {
    this.client.close();
  }
}

/** Waits until the server counts `count` open tail sessions (so presence has followed). */
export async function tailSessions(url: string, count: number): Promise<void> {
  await until(`${count} open tail session(s)`, async () => (await metric(url, 'datagrove_tail_sessions')) === count);
}

/** The pushes for `sub` that verified and decrypted. */
export function delivered(receiver: PushReceiver, sub: BrowserSubscription): ReceivedPush[] {
  return receiver.received(sub.id).filter((p) => p.error === null);
}

/** Waits for a verified push to `sub` carrying `length` (or more). */
export async function pushWithLength(receiver: PushReceiver, sub: BrowserSubscription, length: number, timeoutMs = 5000): Promise<ReceivedPush> {
  let found: ReceivedPush | undefined;
  await until(
    `a push of length ${length} to ${sub.id}`,
    () => {
      found = delivered(receiver, sub).find((p) => (p.payload as { length?: number } | undefined)?.length === length);
      return found !== undefined;
    },
    timeoutMs,
  );
  assert.ok(found !== undefined);
  return found;
}
