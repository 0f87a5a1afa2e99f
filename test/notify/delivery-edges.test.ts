/**
 * Delivery at its edges: a push service that never ends its reply, a held push for a log
 * the device may read behind one it may not, and tail nodes that expired unnoticed. Driven over the bus as auth and tail drive notify; pushes go to real HTTPS
 * servers on loopback (the push receiver that checks VAPID and decrypts, or a push service
 * that misbehaves on purpose).
 */
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import https from 'node:https';
import { after, describe, it } from 'node:test';
import { makeCertificate, startPushReceiver, type PushReceiver } from '../helpers/push-receiver.js';
import { member, newDevice, newSite, newUser, pushChange, pushedLengths, sleep, startNotify } from './harness.js';

/**
 * A push service that answers 201 at once and then never finishes the response body, and
 * counts the requests whose exchange is still open (its side of "in flight").
 */
async function startStallingPushService(): Promise<{ hosts: string[]; agent: https.Agent; origin: string; open: () => number; maxOpen: () => number; requests: () => number }> {
  const { key, cert } = makeCertificate();
  let open = 0;
  let maxOpen = 0;
  let requests = 0;
  const server = https.createServer({ key, cert }, (req, res) => {
    requests++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    res.on('close', () => open--);
    req.resume();
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'text/plain' });
      res.write('accepted');
      // ...and the rest of the body never comes.
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const agent = new https.Agent({ ca: cert, keepAlive: true });
  after(async () => {
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { hosts: [`127.0.0.1:${port}`], agent, origin: `https://127.0.0.1:${port}`, open: () => open, maxOpen: () => maxOpen, requests: () => requests };
}

/** A browser-like subscription (P-256 key and auth secret) at `origin`. */
function subscription(origin: string): { endpoint: string; keys: { p256dh: string; auth: string } } {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    endpoint: `${origin}/push/${randomBytes(12).toString('base64url')}`,
    keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
  };
}

describe('notify: delivery at its edges', () => {
  it('a push service that answers but never ends its response holds a request slot until the deadline (maxConcurrent bounds open exchanges)', async () => {
    const svc = await startStallingPushService();
    const h = await startNotify({
      receiver: { hosts: svc.hosts, agent: svc.agent } as unknown as PushReceiver,
      limits: { maxConcurrent: 2, requestTimeoutMs: 1500 },
    });
    const site = newSite();
    for (let i = 0; i < 8; i++) {
      const device = newDevice();
      const reply = await h.update({ user: newUser(), version: 1, changes: [{ op: 'join', device, site }, pushChange(device, subscription(svc.origin))] });
      assert.equal(reply.ok, true);
    }
    h.publish(site, 'main', 1);
    await sleep(700);
    assert.ok(svc.maxOpen() <= 2, `${svc.maxOpen()} push requests open at once with maxConcurrent 2`);
    // Each exchange ends at its deadline, then the next ones go: every push is sent.
    const deadline = Date.now() + 10_000;
    while ((await h.metric('datagrove_notify_pushes_sent_total')) < 8 && Date.now() < deadline) await sleep(50);
    assert.equal(svc.requests(), 8);
    assert.ok(svc.maxOpen() <= 2, `${svc.maxOpen()} push requests open at once with maxConcurrent 2`);
    assert.equal(await h.metric('datagrove_notify_pushes_sent_total'), 8, 'a 201 whose body never ended is still a push the service accepted');
  });

  it('a held push for a log the device may read is not lost when a log it may not read grows later in the window', async () => {
    const receiver = await startPushReceiver();
    const h = await startNotify({ receiver, pushIntervalMs: 400 });
    const site = newSite();
    const m = await member(h, receiver, site);
    h.denied.add(`${m.user}/${site}/payroll`);
    h.publish(site, 'public', 1);
    await receiver.waitFor(m.sub.id, 1);
    // Within the window: a write the member may read, then one it may not.
    h.publish(site, 'public', 2);
    await sleep(30);
    h.publish(site, 'payroll', 7);
    await receiver.waitFor(m.sub.id, 2, 2000).catch(() => undefined);
    await sleep(100);
    assert.deepEqual(receiver.received(m.sub.id).map((p) => p.payload), [
      { site, log: 'public', length: 1 },
      { site, log: 'public', length: 2 },
    ], 'the member hears of the public write it may read, and never of payroll');
  });

  it('after an outage longer than a node\'s TTL, a user who left that node before a republished write is pushed for it', async () => {
    const receiver = await startPushReceiver();
    const h = await startNotify({ receiver, pushIntervalMs: 100 });
    const site = newSite();
    const v = await member(h, receiver, site);
    const c = await member(h, receiver, site);
    // V is online on tail-a. Then notify hears nothing from tail-a for longer than its TTL
    // (a bus outage): tail-a expires at about t=300.
    const t0 = Date.now();
    h.presence({ node: 'tail-a', ttlMs: 300, full: true, online: [v.user], offline: [] });
    await sleep(800);
    // The bus is back; notify says hello and tail-a answers: its snapshot (V is gone), who
    // left it and when (V, at about t=450), then its last publish (a write at about t=600).
    const now = Date.now() - t0;
    h.presence({ node: 'tail-a', ttlMs: 300, full: true, online: [], offline: [] });
    h.presence({ node: 'tail-a', ttlMs: 300, full: false, online: [], offline: [], left: [{ user: v.user, agoMs: now - 450 }] });
    h.publish(site, 'main', 5, now - 600);
    await receiver.waitFor(c.sub.id, 1);
    await receiver.waitFor(v.sub.id, 1, 2000).catch(() => undefined);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [5], 'V left before the write and was offline since');
  });

  it('a node that expired is forgotten even when no look-up swept it before its next message', async () => {
    const receiver = await startPushReceiver();
    const h = await startNotify({ receiver, pushIntervalMs: 100 });
    const site = newSite();
    const v = await member(h, receiver, site);
    const c = await member(h, receiver, site);
    h.presence({ node: 'tail-a', ttlMs: 300, full: true, online: [v.user], offline: [] });
    await sleep(600);
    // tail-a comes back with a delta (someone else connected): V, listed before tail-a went
    // silent, is not online again because of it.
    h.presence({ node: 'tail-a', ttlMs: 10_000, full: false, online: ['someone-else'], offline: [] });
    await sleep(20);
    h.publish(site, 'main', 1);
    await receiver.waitFor(c.sub.id, 1);
    await receiver.waitFor(v.sub.id, 1, 1500).catch(() => undefined);
    assert.deepEqual(pushedLengths(receiver, v.sub.id), [1], 'V has been offline since tail-a expired');
  });
});
