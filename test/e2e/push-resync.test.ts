/**
 * Notify restarts, end to end over split roles: one process-like server with auth and tail,
 * and a separate notify server, both on NATS and one PostgreSQL schema, with a real push
 * receiver. A publish made while notify is down reaches nobody, and a push notify holds for
 * its interval is dropped when it stops; on start notify says dg.notify.hello and tail
 * answers with its presence and then its recent publishes again, so what was missed is
 * pushed once, nothing is pushed twice, and a user online on tail is not pushed. Notify
 * says hello again when its bus comes back after an outage (cut here with a TCP proxy).
 *
 * Notify's push interval is long here (3 s), so that a push is provably held when notify
 * stops; every "no push" assertion has a control pushed by the same restart.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadVapidKeys, VAPID_FILE } from '../../src/notify/index.js';
import { initKeyFiles } from '../../src/server/secrets.js';
import { buildServer } from '../../src/server/app.js';
import { defaultConfig, type Config } from '../../src/server/config.js';
import { createSite, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startPushReceiver, type BrowserSubscription, type PushReceiver } from '../helpers/push-receiver.js';
import { startOwnNats, natsServerAvailable, type OwnNats } from '../helpers/nats-server.js';
import { IN_CI, PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { startServer, tempDir, type TestServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { metric } from '../helpers/metrics.js';
import { VAPID_SUBJECT, Writer, delivered, enablePush, member, pushWithLength, sleep, tailSessions, until, vapidKey } from './push-world.js';

// A NATS server of its own: its tail node must not join the shard map of other files' clusters.
const skip = (natsServerAvailable() || IN_CI ? false : 'nats-server is not installed here; skipped (CI runs it)') || (await pgSkip());
let nats: OwnNats | null = null;
async function natsUrl(): Promise<string> {
  nats ??= await startOwnNats();
  return nats.url;
}
const run = randomBytes(4).toString('hex');
const schema = `test_resync_${run}`;
const INTERVAL_MS = 3000;
/** Longer than a push window: a duplicate would have gone out by then. */
const QUIET_MS = INTERVAL_MS + 1000;
/** Tail holds later commits of a log this long before it publishes them. */
const TAIL_HOLD_MS = 250;

after(async () => {
  if (!skip) await dropPgSchemas(schema);
});

/** A data dir holding the cluster's key files, as an operator copies them to each process. */
function dataDirWithKeys(keys: string): string {
  const dir = tempDir('dg-resync-');
  for (const f of ['hmac-keys.json', 'attestation-keys.json', VAPID_FILE]) copyFileSync(join(keys, f), join(dir, f));
  return dir;
}

/** A notify server as startServer makes one, but stopped at the end of the file, not of the test that restarted it. */
interface NotifyServer {
  url: string;
  stop(): Promise<void>;
}

const notifyServers: NotifyServer[] = [];
after(async () => {
  for (const n of notifyServers) await n.stop();
});
// Last: every server of the file is closed by now.
after(async () => {
  await nats?.stop();
});

async function startNotifyServer(overrides: Partial<Config> & { dataDir: string }): Promise<NotifyServer> {
  const server = await buildServer({ ...defaultConfig(), port: 0, host: '127.0.0.1', logLevel: 'silent', ...overrides });
  const port = await server.listen();
  let stopped: Promise<void> | null = null;
  const n = { url: `http://127.0.0.1:${port}`, stop: () => (stopped ??= server.close()) };
  notifyServers.push(n);
  return n;
}

interface World {
  receiver: PushReceiver;
  /** auth and tail. */
  core: TestServer;
  notify: NotifyServer;
  /** Between notify and NATS, so that a test can cut notify off the bus. */
  notifyBus: TcpProxy;
  vapid: string;
  restartNotify(between?: () => Promise<void>): Promise<void>;
}

async function world(): Promise<World> {
  const receiver = await startPushReceiver();
  const keys = tempDir('dg-resync-keys-');
  initKeyFiles(keys, { file: VAPID_FILE, make: (d) => void loadVapidKeys(d) });
  const pushHosts = receiver.hosts.filter((h) => h.startsWith('127.0.0.1:'));
  const bus = await natsUrl();
  const shared: Partial<Config> = { bus, db: PG_URL, dbSchema: schema, pushHosts, nodeTtlMs: 2000 };
  const core = await startServer({ ...shared, roles: ['auth', 'tail'], nodeId: `tail-resync-${run}`, dataDir: dataDirWithKeys(keys) });
  const notifyBus = await startProxy(bus);
  after(() => notifyBus.stop());
  // Made now, so that they outlive the test that restarts notify.
  const notifyDirs = Array.from({ length: 4 }, () => dataDirWithKeys(keys));
  const startNotify = () =>
    startNotifyServer({
      ...shared,
      roles: ['notify'],
      bus: notifyBus.url,
      dataDir: notifyDirs.shift() ?? assert.fail('no data dir left for notify'),
      pushIntervalMs: INTERVAL_MS,
      vapidSubject: VAPID_SUBJECT,
      notifyPushAgent: receiver.agent,
    });
  const w: World = {
    receiver,
    core,
    notify: await startNotify(),
    notifyBus,
    vapid: '',
    async restartNotify(between) {
      // A graceful stop, as on SIGTERM: what notify holds is dropped, nothing is marked.
      await w.notify.stop();
      await between?.();
      w.notify = await startNotify();
    },
  };
  w.vapid = await vapidKey(w.notify.url);
  await until('tail accepting sessions', async () => (await fetch(`${core.url}/ready`)).status === 200, 15_000);
  return w;
}

interface Member {
  dev: SignedUpDevice;
  sub: BrowserSubscription;
}

async function pushMember(w: World, owner: SignedUpDevice, site: string): Promise<Member> {
  const dev = await member(w.core.url, owner, site);
  return { dev, sub: await enablePush(w.core.url, dev, w.receiver, w.vapid, site) };
}

const lengths = (w: World, m: Member): number[] => delivered(w.receiver, m.sub).map((p) => (p.payload as { length: number }).length);

describe('push resync after notify restarts (split roles on NATS and PostgreSQL)', { skip }, async () => {
  if (skip) return;
  const w = await world();
  /** Every member made so far, with the pushes it must have from now on. */
  const everyone: { m: Member; pushes: number[] }[] = [];

  it('writes made while notify was down are pushed once, with the latest length, after it starts; a user online on tail is not pushed', async () => {
    const owner = await signupDevice(w.core.url, { name: 'A laptop' });
    const site = await createSite(w.core.url, owner.access, 'notes');
    const b = await pushMember(w, owner, site);
    const c = await pushMember(w, owner, site);
    const open = await metric(w.core.url, 'datagrove_tail_sessions');
    const writer = await Writer.open(w.core.wsUrl, owner, site, 'notes');
    // B is online on tail (a session without a lease) from before the restart to the end.
    const bSession = await TailClient.connect(w.core.wsUrl, b.dev.access);
    await tailSessions(w.core.url, open + 2);
    await writer.write(1);
    await pushWithLength(w.receiver, c.sub, 1);

    let length = 0;
    await w.restartNotify(async () => {
      await writer.write(1);
      await writer.write(1);
      length = await writer.write(1);
      // Everything tail held for the log has been published, to nobody.
      await sleep(TAIL_HOLD_MS * 3);
    });
    assert.equal(length, 4);
    // C's first push opened a window; the missed writes go when it ends.
    await pushWithLength(w.receiver, c.sub, length, INTERVAL_MS + 5000);
    await sleep(QUIET_MS);
    assert.deepEqual(lengths(w, c), [1, 4]);
    assert.deepEqual(lengths(w, b), [], 'B, online on tail, was pushed');
    bSession.close();
    writer.close();
    everyone.push({ m: b, pushes: [] }, { m: c, pushes: [1, 4] });
  });

  it('a push held for its interval when notify stops is pushed once after it starts again', async () => {
    const owner = await signupDevice(w.core.url, { name: 'A laptop' });
    const site = await createSite(w.core.url, owner.access, 'board');
    const c = await pushMember(w, owner, site);
    const writer = await Writer.open(w.core.wsUrl, owner, site, 'cards');
    await writer.write(1);
    await pushWithLength(w.receiver, c.sub, 1);
    // Within C's window: notify takes the publish and holds the push until the window ends.
    const length = await writer.write(1);
    await sleep(TAIL_HOLD_MS * 3);
    assert.deepEqual(lengths(w, c), [1], 'the second push was not held');
    await w.restartNotify();
    await pushWithLength(w.receiver, c.sub, length, INTERVAL_MS + 5000);
    await sleep(QUIET_MS);
    assert.deepEqual(lengths(w, c), [1, 2]);
    writer.close();
    everyone.push({ m: c, pushes: [1, 2] });
  });

  it('a restart pushes nothing that was pushed already', async () => {
    const owner = await signupDevice(w.core.url, { name: 'A laptop' });
    const site = await createSite(w.core.url, owner.access, 'pushed');
    const c = await pushMember(w, owner, site);
    const writer = await Writer.open(w.core.wsUrl, owner, site, 'done');
    await writer.write(1);
    await pushWithLength(w.receiver, c.sub, 1);
    // The control: another site, written while notify is down, is pushed after the restart.
    const controlSite = await createSite(w.core.url, owner.access, 'control');
    const d = await pushMember(w, owner, controlSite);
    const control = await Writer.open(w.core.wsUrl, owner, controlSite, 'missed');
    await sleep(QUIET_MS);
    await w.restartNotify(async () => {
      await control.write(1);
      await sleep(TAIL_HOLD_MS * 3);
    });
    await pushWithLength(w.receiver, d.sub, 1, 5000);
    await sleep(QUIET_MS);
    assert.deepEqual(lengths(w, d), [1]);
    assert.deepEqual(lengths(w, c), [1], 'C was pushed again');
    for (const e of everyone) assert.deepEqual(lengths(w, e.m), e.pushes, 'an earlier member was pushed again, or for writes made while it was online');
    writer.close();
    control.close();
  });

  it('writes made while notify was cut off the bus are pushed once it is back', async () => {
    const owner = await signupDevice(w.core.url, { name: 'A laptop' });
    const site = await createSite(w.core.url, owner.access, 'outage');
    const c = await pushMember(w, owner, site);
    const writer = await Writer.open(w.core.wsUrl, owner, site, 'log');
    await writer.write(1);
    await pushWithLength(w.receiver, c.sub, 1);
    await sleep(QUIET_MS);
    await w.notifyBus.stop();
    await writer.write(1);
    const length = await writer.write(1);
    await sleep(TAIL_HOLD_MS * 3);
    await w.notifyBus.restart();
    await pushWithLength(w.receiver, c.sub, length, 10_000);
    await sleep(QUIET_MS);
    assert.deepEqual(lengths(w, c), [1, 3]);
    for (const e of everyone) assert.deepEqual(lengths(w, e.m), e.pushes, 'an earlier member was pushed again, or for writes made while it was online');
    writer.close();
  });
});
