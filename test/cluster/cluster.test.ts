/**
 * A real cluster: one `datagrove serve --roles auth,notify` process and two `--roles tail`
 * processes, all on NATS and one PostgreSQL schema, driven the way clients drive it (fetch
 * and WebSocket). Shows that the shard map follows the live tail nodes, that a lease goes
 * to the rendezvous owner and the other node redirects, that events and revocations cross
 * the bus, and that after a tail node is SIGKILLed its sites move to the survivor, which
 * takes leadership with a higher epoch over a log that still holds every acknowledged write;
 * and that an outage of NATS leaves every process with the map it had.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { DatagroveClient, type WebSocketConstructor } from '../../src/client/index.js';
import { pickShard, type Shard } from '../../src/protocol/shards.js';
import { loadVapidKeys, VAPID_FILE } from '../../src/notify/index.js';
import { initKeyFiles, loadSecrets } from '../../src/server/secrets.js';
import { createSite, get, post, signupDevice } from '../helpers/auth-client.js';
import { NATS_URL, PG_URL, natsSkip, pgSkip, dropPgSchemas } from '../helpers/services.js';
import { tempDir } from '../helpers/server.js';
import { decodeEntry, entry, TailClient } from '../helpers/tail-client.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { freePort, sleep, spawnCli, until, waitHttp, type Child } from '../server/child.js';

const skip = (await natsSkip()) || (await pgSkip());
const run = randomBytes(4).toString('hex');
const schema = `test_cluster_${run}`;
/** Short, so the SIGKILLed node leaves within seconds; heartbeats every third of it. */
const TTL_MS = 2000;

interface ShardsReply {
  version: number;
  shards: Shard[];
}

interface LeaseReply {
  handle: string;
  role: 'leader' | 'follower';
  epoch: number;
  length: number;
}

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

interface Node {
  child: Child;
  id: string;
  http: string;
  ws: string;
}

/** The key files every process of the cluster shares, as an operator would copy them. */
function dataDirWithKeys(keys: string): string {
  const dir = tempDir('dg-cluster-');
  initKeyFiles(keys, { file: VAPID_FILE, make: (d) => void loadVapidKeys(d) });
  for (const f of ['hmac-keys.json', 'attestation-keys.json', VAPID_FILE]) copyFileSync(join(keys, f), join(dir, f));
  return dir;
}

async function startNode(keys: string, roles: string, id: string, ttlMs = TTL_MS, bus = NATS_URL): Promise<Node> {
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  // Fresh node ids per run: other runs on the same NATS are other nodes, never these.
  const args = ['serve', '--roles', roles, '--port', String(port), '--host', '127.0.0.1', '--public-url', http, '--data', dataDirWithKeys(keys)];
  args.push('--bus', bus, '--db', PG_URL, '--db-schema', schema, '--node-id', id, '--node-ttl-ms', String(ttlMs), '--log-level', 'warn');
  const child = spawnCli(args);
  return { child, id, http, ws: `ws://127.0.0.1:${port}/tail` };
}

async function shards(authUrl: string): Promise<ShardsReply> {
  const r = await get<ShardsReply>(authUrl, '/shards');
  assert.equal(r.status, 200);
  return r.body;
}

/** How many live tail nodes a process sees (its datagrove_cluster_tail_nodes gauge). */
async function liveNodes(n: Node): Promise<number> {
  const text = await (await fetch(`${n.http}/metrics`)).text();
  const m = /^datagrove_cluster_tail_nodes (\d+)$/m.exec(text);
  return m === null ? -1 : Number(m[1]);
}

describe('cluster: split roles over NATS and PostgreSQL', { skip }, () => {
  it('routes sites to live tail nodes, crosses the bus, and moves a dead node’s sites', { timeout: 180_000 }, async () => {
    const keys = tempDir('dg-cluster-keys-');
    loadSecrets(keys);

    const auth = await startNode(keys, 'auth,notify', `auth-${run}`);
    await waitHttp(auth.child, `${auth.http}/ready`);
    const [a, b] = await Promise.all([startNode(keys, 'tail', `tail-${run}-a`), startNode(keys, 'tail', `tail-${run}-b`)]);
    const tails = [a, b] as Node[];
    await Promise.all(tails.map((n) => waitHttp(n.child, `${n.http}/ready`)));

    // Every process sees both tail nodes: auth serves them as the shard map.
    const both = await until('auth to list both tail nodes', async () => {
      const m = await shards(auth.http);
      return m.shards.length === 2 ? m : undefined;
    });
    assert.deepEqual(
      both.shards,
      tails.map((n) => ({ id: n.id, url: n.ws })).sort((x, y) => (x.id < y.id ? -1 : 1)),
    );
    assert.ok(both.version > 0);
    for (const n of tails) await until(`${n.id} to see both nodes`, async () => ((await liveNodes(n)) === 2 ? true : undefined));

    // A user and a site; the rendezvous owner of the site is the node auth names in /lease.
    const dev = await signupDevice(auth.http, { name: 'writer' });
    const site = await createSite(auth.http, dev.access);
    const ownerShard = pickShard(both.shards, site);
    assert.ok(ownerShard !== null);
    const owner = tails.find((n) => n.id === ownerShard.id) as Node;
    const other = tails.find((n) => n.id !== ownerShard.id) as Node;
    const leaseToken = await post<{ shard: Shard }>(auth.http, '/lease', { site, log: 'main' }, dev.access);
    assert.equal(leaseToken.status, 200);
    assert.deepEqual(leaseToken.body.shard, { id: owner.id, url: owner.ws });

    // The owner grants leadership; a second session on the owner follows.
    const leader = await TailClient.connect(owner.ws, dev.access);
    const first = await leader.call<LeaseReply>('lease', { site, log: 'main' });
    assert.equal(first.role, 'leader');
    const follower = await TailClient.connect(owner.ws, dev.access);
    const f = await follower.call<LeaseReply>('lease', { site, log: 'main', lead: false });
    assert.equal(f.role, 'follower');

    // The other node does not serve the site: it redirects to the owner and grants nothing.
    const elsewhere = await TailClient.connect(other.ws, dev.access);
    const redirected = await elsewhere.call<{ redirect?: string; handle?: string }>('lease', { site, log: 'main' });
    assert.equal(redirected.redirect, owner.ws);
    assert.equal(redirected.handle, undefined);

    // Durable writes, seen live by the follower.
    const written: string[] = [];
    for (let i = 0; i < 5; i++) {
      const entries = [entry(`e${i}.0`), entry(`e${i}.1`)];
      const w = await leader.call<{ length: number }>('write', { handle: first.handle, at: written.length, entries, wid: `w${i}` });
      written.push(...entries.map(decodeEntry));
      assert.equal(w.length, written.length);
    }
    const seen: string[] = [];
    while (seen.length < written.length) {
      const ev = await follower.nextEvent('tail', f.handle);
      assert.equal(ev.at, seen.length);
      seen.push(...(ev.entries as string[]).map(decodeEntry));
    }
    assert.deepEqual(seen, written);

    // A site the other node owns is served there, without a redirect.
    let otherSite = '';
    for (let i = 0; i < 40 && otherSite === ''; i++) {
      const s = await createSite(auth.http, dev.access, `site ${i}`);
      if (pickShard(both.shards, s)?.id === other.id) otherSite = s;
    }
    assert.notEqual(otherSite, '', 'no site mapped to the other node in 40 tries');
    const there = await elsewhere.call<LeaseReply>('lease', { site: otherSite, log: 'main' });
    assert.equal(there.role, 'leader');

    // A device revoked through auth loses its session on a tail node: 4403 over NATS.
    const doomed = await signupDevice(auth.http, { name: 'doomed' });
    const doomedSession = await TailClient.connect(other.ws, doomed.access);
    const revoked = await post(auth.http, '/revoke', { device: doomed.device }, doomed.access);
    assert.equal(revoked.status, 200);
    assert.deepEqual(await doomedSession.nextEvent('revoke'), { ev: 'revoke', reason: 'device' });
    assert.equal((await doomedSession.closedWith()).code, 4403);

    // The owner dies without a word (no `leaving`). After its TTL the map lists the survivor alone, the
    // site maps to it, and the survivor leads the log from the store: higher epoch, every
    // acknowledged entry in order.
    assert.equal((await owner.child.stop('SIGKILL')).signal, 'SIGKILL');
    const alone = await until('the dead node to leave the shard map', async () => {
      const m = await shards(auth.http);
      return m.shards.length === 1 ? m : undefined;
    });
    assert.deepEqual(alone.shards, [{ id: other.id, url: other.ws }]);
    assert.ok(alone.version > both.version);
    assert.equal(pickShard(alone.shards, site)?.id, other.id);
    await until(`${other.id} to see itself alone`, async () => ((await liveNodes(other)) === 1 ? true : undefined));

    const taker = await TailClient.connect(other.ws, dev.access);
    const taken = await taker.call<LeaseReply>('lease', { site, log: 'main' });
    assert.equal(taken.role, 'leader');
    assert.ok(taken.epoch > first.epoch, `epoch ${taken.epoch} after ${first.epoch}`);
    assert.equal(taken.length, written.length);
    const read = await taker.call<{ entries: string[]; length: number }>('read', { handle: taken.handle, from: 0 });
    assert.deepEqual(read.entries.map(decodeEntry), written);
    // And the new leader writes on.
    const more = await taker.call<{ length: number }>('write', { handle: taken.handle, at: written.length, entries: [entry('after')] });
    assert.equal(more.length, written.length + 1);

    for (const c of [leader, follower, elsewhere, taker]) c.close();

    // A node that shuts down says so: with a TTL of a minute, only its `leaving` message can
    // take it out of the map within the 20 s this waits.
    const slow = await startNode(keys, 'tail', `tail-${run}-c`, 60_000);
    await waitHttp(slow.child, `${slow.http}/ready`);
    await until('the third node to join', async () => ((await shards(auth.http)).shards.length === 2 ? true : undefined));
    assert.deepEqual(await slow.child.stop('SIGTERM'), { code: 0, signal: null }, slow.child.output());
    const left = await until('the drained node to leave', async () => {
      const m = await shards(auth.http);
      return m.shards.length === 1 ? m : undefined;
    });
    assert.deepEqual(left.shards, [{ id: other.id, url: other.ws }]);

    for (const n of [auth, other]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
  });

  it('moves the handles of a site to a node that joins and takes it; SDK logs follow without loss', { timeout: 180_000 }, async () => {
    const keys = tempDir('dg-cluster-keys-');
    loadSecrets(keys);
    const auth = await startNode(keys, 'auth,notify', `auth-${run}-m`);
    await waitHttp(auth.child, `${auth.http}/ready`);
    const a = await startNode(keys, 'tail', `tail-${run}-m1`);
    await waitHttp(a.child, `${a.http}/ready`);
    const listed = async (ids: string[]) => {
      const m = await shards(auth.http);
      return ids.every((id) => m.shards.some((x) => x.id === id)) ? true : undefined;
    };
    await until('auth to list the first tail node', () => listed([a.id]));

    const sdk = async () => DatagroveClient.create({ url: auth.http, WebSocket: WebSocket as unknown as WebSocketConstructor, RTCPeerConnection: null });
    const writer = await sdk();
    const reader = await sdk();
    await writer.signup('writer');
    const { site } = await writer.createSite('moving');
    const { user } = await reader.signup('reader');
    const grant = writer.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights: ['read'] });
    await writer.declare(grant);
    await reader.join(site, grant);

    // The second node's id is one that wins this site from the first.
    let bId = '';
    for (let i = 0; i < 200 && bId === ''; i++) {
      const id = `tail-${run}-m2-${i}`;
      if (pickShard([{ id: a.id, url: '' }, { id, url: '' }], site)?.id === id) bId = id;
    }
    assert.notEqual(bId, '');

    const wlog = writer.openLog(site, 'doc');
    const rlog = reader.openLog(site, 'doc', { lead: false });
    const seen: string[] = [];
    rlog.subscribe((entries) => seen.push(...entries.map((e) => `${e.index}:${new TextDecoder().decode(e.payload)}`)));
    const expected: string[] = [];
    const append = async (text: string) => {
      const [i] = await wlog.append([new TextEncoder().encode(text)]);
      expected.push(`${i}:${text}`);
    };
    for (let i = 0; i < 3; i++) await append(`before-${i}`);
    assert.equal(wlog.role, 'leader');

    // A bare client on the first node, to see the wire: its follower handle dies `moved`.
    const dev = await signupDevice(auth.http, { name: 'bare' });
    const bareGrant = writer.signGrant({ sub: `user:${dev.user}`, site, logs: ['*'], rights: ['read'] });
    await writer.declare(bareGrant);
    assert.equal((await post(auth.http, '/join', { site, grant: bareGrant }, dev.access)).status, 200);
    const bare = await TailClient.connect(a.ws, dev.access);
    const before = await bare.call<LeaseReply>('lease', { site, log: 'doc', lead: false });
    assert.equal(before.role, 'follower');

    // The writer keeps appending (several in flight) while the site moves.
    let moving = true;
    const during: Promise<void>[] = [];
    const loop = (async () => {
      for (let k = 0; moving; k++) {
        during.push(append(`during-${k}`));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const b = await startNode(keys, 'tail', bId);
    await waitHttp(b.child, `${b.http}/ready`);
    await until('auth to list both tail nodes', () => listed([a.id, bId]));
    assert.deepEqual(await bare.nextEvent('revoke', before.handle), { ev: 'revoke', handle: before.handle, reason: 'moved' });
    const again = await bare.call<{ redirect?: string }>('lease', { site, log: 'doc', lead: false });
    assert.equal(again.redirect, b.ws, 'the first node sends a new lease to the new owner');
    bare.close();

    // The SDK logs lease again, are redirected, and go on at the new owner: every entry
    // once, in order, at a higher epoch, including those appended while the site moved.
    await new Promise((r) => setTimeout(r, 500));
    moving = false;
    await loop;
    await Promise.all(during);
    assert.ok(during.length > 20, `${during.length} appends while moving`);
    for (let i = 0; i < 5; i++) await append(`after-${i}`);
    await until('the reader to see every entry', async () => (seen.length >= expected.length ? true : undefined));
    const byIndex = (x: string, y: string) => Number(x.split(':')[0]) - Number(y.split(':')[0]);
    expected.sort(byIndex);
    assert.deepEqual(expected.map((e) => Number(e.split(':')[0])), expected.map((_, i) => i), 'acknowledged at every index once');
    assert.deepEqual(seen, expected);
    assert.equal(wlog.role, 'leader');
    const onB = await TailClient.connect(b.ws, dev.access);
    const there = await onB.call<LeaseReply>('lease', { site, log: 'doc', lead: false });
    assert.equal(there.role, 'follower');
    assert.ok(there.epoch > 0);
    assert.equal(there.length, expected.length);
    onB.close();

    await Promise.all([wlog.close(), rlog.close()]);
    await Promise.all([writer.close(), reader.close()]);
    for (const n of [b, a, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
  });
  it('a process that starts knows every live tail node once ready: no heartbeat interval of a smaller cluster', { timeout: 180_000 }, async () => {
    // Heartbeats every 10 s: a process that waited for them would see a smaller cluster that long.
    const ttl = 30_000;
    const keys = tempDir('dg-cluster-keys-');
    loadSecrets(keys);
    const auth = await startNode(keys, 'auth', `auth-${run}-s`, ttl);
    await waitHttp(auth.child, `${auth.http}/ready`);
    const a = await startNode(keys, 'tail', `tail-${run}-s1`, ttl);
    await waitHttp(a.child, `${a.http}/ready`);
    await until('auth to list the first tail node', async () => ((await shards(auth.http)).shards.some((x) => x.id === a.id) ? true : undefined));
    const owner = await signupDevice(auth.http, { name: 'owner' });
    const site = await createSite(auth.http, owner.access);
    // A second tail node that does not own the site: right after it is ready, it sends the
    // site's lease to the first node instead of taking the site itself.
    let cId = '';
    for (let i = 0; i < 200 && cId === ''; i++) {
      const id = `tail-${run}-s2-${i}`;
      if (pickShard([{ id: a.id, url: '' }, { id, url: '' }], site)?.id === a.id) cId = id;
    }
    const c = await startNode(keys, 'tail', cId, ttl);
    await waitHttp(c.child, `${c.http}/ready`);
    const client = await TailClient.connect(c.ws, owner.access);
    assert.deepEqual(await client.call('lease', { site, log: 'doc' }), { re: 2, redirect: a.ws });
    client.close();
    // A second auth process, once ready, lists both tail nodes.
    const auth2 = await startNode(keys, 'auth', `auth-${run}-s2`, ttl);
    await waitHttp(auth2.child, `${auth2.http}/ready`);
    assert.deepEqual((await shards(auth2.http)).shards.map((x) => x.id).sort(), [a.id, c.id].sort());
    for (const n of [c, a, auth2, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
  });

  it('SDK logs on a node that dies move to the node that serves the site now, without loss or duplicates', { timeout: 180_000 }, async () => {
    const keys = tempDir('dg-cluster-keys-');
    loadSecrets(keys);
    const auth = await startNode(keys, 'auth,notify', `auth-${run}-f`);
    await waitHttp(auth.child, `${auth.http}/ready`);
    const sdk = async () => DatagroveClient.create({ url: auth.http, WebSocket: WebSocket as unknown as WebSocketConstructor, RTCPeerConnection: null });
    const writer = await sdk();
    const reader = await sdk();
    await writer.signup('writer');
    const { site } = await writer.createSite('failover');
    const { user } = await reader.signup('reader');
    const grant = writer.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights: ['read'] });
    await writer.declare(grant);
    await reader.join(site, grant);
    // Of two node ids, `aId` is the one that serves the site while both live. (Searching for
    // an id that beats a fixed one fails when the fixed one hashes near the top.)
    const ids = [`tail-${run}-f1`, `tail-${run}-f2`];
    const aId = pickShard(ids.map((id) => ({ id, url: '' })), site)?.id ?? '';
    assert.ok(ids.includes(aId), 'one of the two serves the site');
    const bId = ids.find((id) => id !== aId)!;
    const [a, b] = await Promise.all([startNode(keys, 'tail', aId), startNode(keys, 'tail', bId)]);
    await Promise.all([a, b].map((n) => waitHttp(n.child, `${n.http}/ready`)));
    await until('auth to list both tail nodes', async () => ((await shards(auth.http)).shards.length === 2 ? true : undefined));

    const wlog = writer.openLog(site, 'doc');
    const rlog = reader.openLog(site, 'doc', { lead: false });
    const seen: string[] = [];
    rlog.subscribe((entries) => seen.push(...entries.map((e) => `${e.index}:${new TextDecoder().decode(e.payload)}`)));
    const expected: string[] = [];
    const acked: number[] = [];
    const append = async (text: string) => {
      const [i] = await wlog.append([new TextEncoder().encode(text)]);
      expected.push(`${i}:${text}`);
      acked.push(Date.now());
    };
    for (let i = 0; i < 3; i++) await append(`before-${i}`);
    assert.equal(wlog.role, 'leader');

    // The writer keeps appending (several in flight) while the node serving the site dies.
    let running = true;
    const during: Promise<void>[] = [];
    const loop = (async () => {
      for (let k = 0; running; k++) {
        during.push(append(`during-${k}`));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const killedAt = Date.now();
    await a.child.stop('SIGKILL');
    // The map drops the dead node after its TTL; the SDK notices and leases at the survivor.
    await until('an append acknowledged after the kill', async () => (acked.some((t) => t > killedAt + 100) ? true : undefined), 30_000);
    const resumedMs = (acked.find((t) => t > killedAt + 100) ?? 0) - killedAt;
    assert.ok(resumedMs < 15_000, `appends resumed ${resumedMs} ms after the kill`);
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await loop;
    await Promise.all(during);
    for (let i = 0; i < 3; i++) await append(`after-${i}`);
    await until('the reader to see every entry', async () => (seen.length >= expected.length ? true : undefined), 30_000);
    const byIndex = (x: string, y: string) => Number(x.split(':')[0]) - Number(y.split(':')[0]);
    expected.sort(byIndex);
    assert.deepEqual(expected.map((e) => Number(e.split(':')[0])), expected.map((_, i) => i), 'acknowledged at every index once');
    assert.deepEqual(seen, expected, 'the reader moved too, and saw every entry once, in order');
    assert.equal(wlog.role, 'leader');

    await Promise.all([wlog.close(), rlog.close()]);
    await Promise.all([writer.close(), reader.close()]);
    for (const n of [b, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
  });

  it('refuses a second process with a live node id, and says so when a node holds another key ring', { timeout: 180_000 }, async () => {
    const keys = tempDir('dg-cluster-keys-');
    const auth = await startNode(keys, 'auth', `auth-${run}-d`);
    await waitHttp(auth.child, `${auth.http}/ready`);
    const a = await startNode(keys, 'tail', `tail-${run}-d`);
    await waitHttp(a.child, `${a.http}/ready`);
    await until('auth to list the tail node', async () => ((await shards(auth.http)).shards.some((x) => x.id === a.id) ? true : undefined));
    // Same id, another process: it hears the live node before it announces, and exits.
    const twin = await startNode(keys, 'tail', a.id);
    const exit = await twin.child.exited;
    assert.equal(exit.code, 2, twin.child.output());
    assert.match(twin.child.output(), new RegExp(`node id ${a.id} is announced by another live process \\(${a.ws}\\): give each tail node its own --node-id`));
    assert.deepEqual((await shards(auth.http)).shards, [{ id: a.id, url: a.ws }], 'the live node keeps its place');

    // A tail node with key files of its own: every token auth signs is refused, and its log says why.
    const stray = await startNode(tempDir('dg-cluster-keys-'), 'tail', `tail-${run}-k`);
    await waitHttp(stray.child, `${stray.http}/ready`);
    const dev = await signupDevice(auth.http, { name: 'someone' });
    const refused = await TailClient.connect(stray.ws, dev.access).then(
      () => 'connected',
      (err: unknown) => String(err),
    );
    assert.match(refused, /unknown-kid|4401|UNAUTHORIZED/);
    await until('the warning in the stray node\'s log', async () => (/tokens signed with a key this process's hmac-keys\.json lacks were refused/.test(stray.child.output()) ? true : undefined));
    for (const n of [stray, a, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
  });

  it('through a NATS outage every process keeps the map it had: each site stays with its node, and nothing flaps when NATS is back', { timeout: 180_000 }, async () => {
    // Every process reaches NATS through one proxy, so that the test can take NATS away from
    // all of them at once. The TTL is long enough for every process to reconnect within it
    // (the bus's reconnect delay grows to 5 s), short enough for the outage to outlast it.
    const ttl = 8000;
    const proxy = await startProxy(NATS_URL);
    const keys = tempDir('dg-cluster-keys-');
    loadSecrets(keys);
    const auth = await startNode(keys, 'auth', `auth-${run}-o`, ttl, proxy.url);
    await waitHttp(auth.child, `${auth.http}/ready`);
    const tails = await Promise.all([startNode(keys, 'tail', `tail-${run}-o1`, ttl, proxy.url), startNode(keys, 'tail', `tail-${run}-o2`, ttl, proxy.url)]);
    await Promise.all(tails.map((n) => waitHttp(n.child, `${n.http}/ready`)));
    const before = await until('auth to list both tail nodes', async () => {
      const m = await shards(auth.http);
      return m.shards.length === 2 ? m : undefined;
    });
    for (const n of tails) await until(`${n.id} to see both nodes`, async () => ((await liveNodes(n)) === 2 ? true : undefined));
    const dev = await signupDevice(auth.http, { name: 'writer' });
    const site = await createSite(auth.http, dev.access);
    const owner = tails.find((n) => n.id === pickShard(before.shards, site)?.id) as Node;
    const other = tails.find((n) => n !== owner) as Node;
    const leader = await TailClient.connect(owner.ws, dev.access);
    const lease = await leader.call<LeaseReply>('lease', { site, log: 'main' });
    assert.equal(lease.role, 'leader');
    await leader.call('write', { handle: lease.handle, at: 0, entries: [entry('before')] });
    const elsewhere = await TailClient.connect(other.ws, dev.access);

    await proxy.stop();
    // Well past the TTL: without a heartbeat from anyone, each node used to take every site.
    await sleep(ttl + 4000);
    for (const n of [...tails, auth]) assert.equal(await liveNodes(n), 2, `${n.id} keeps both tail nodes`);
    assert.deepEqual(await shards(auth.http), before, 'auth serves the map it had, same version');
    const redirected = await elsewhere.call<{ redirect?: string; handle?: string }>('lease', { site, log: 'main' });
    assert.equal(redirected.redirect, owner.ws, 'the other node still sends the site to its owner');
    assert.equal(redirected.handle, undefined);
    // The owner goes on serving it: the log store is PostgreSQL, which is still there.
    const w = await leader.call<{ length: number }>('write', { handle: lease.handle, at: 1, entries: [entry('during')] });
    assert.equal(w.length, 2);
    assert.match(owner.child.output(), /does not hear its own messages on the bus either/);

    await proxy.restart();
    // Every process reconnects, hears itself again, and keeps the same map: no node leaves
    // and comes back (that would move the site's handles away and back).
    for (const n of [...tails, auth]) {
      await until(`${n.id} to be back on the bus (ready)`, async () => ((await fetch(`${n.http}/ready`)).status === 200 ? true : undefined), 30_000);
    }
    await sleep(ttl + 2000);
    assert.deepEqual(await shards(auth.http), before, 'the same map, same version, after the outage');
    for (const n of tails) assert.equal(await liveNodes(n), 2);
    const after = await leader.call<{ length: number }>('write', { handle: lease.handle, at: 2, entries: [entry('after')] });
    assert.equal(after.length, 3, 'the leader never lost its handle');
    leader.close();
    elsewhere.close();
    for (const n of [...tails, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
    await proxy.stop();
  });

  it('a process whose NATS connection is black-holed says not ready within seconds, and ready again once it flows', { timeout: 120_000 }, async () => {
    const proxy = await startProxy(NATS_URL);
    const keys = tempDir('dg-cluster-keys-');
    loadSecrets(keys);
    const node = await startNode(keys, 'auth,tail', `tail-${run}-bh`, TTL_MS, proxy.url);
    try {
      await waitHttp(node.child, `${node.http}/ready`);
      proxy.stall();
      const stalledAt = Date.now();
      const notReady = await until(
        'ready to turn 503',
        async () => {
          const r = await fetch(`${node.http}/ready`);
          return r.status === 503 ? ((await r.json()) as { error: { message: string } }).error.message : undefined;
        },
        20_000,
      );
      assert.match(notReady, /bus carries no messages/);
      assert.ok(Date.now() - stalledAt < 12_000, `503 within seconds, not after the ~30 s of NATS pings (${Date.now() - stalledAt} ms)`);
      proxy.resume();
      await until('ready again', async () => ((await fetch(`${node.http}/ready`)).status === 200 ? true : undefined), 20_000);
    } finally {
      proxy.resume();
      await node.child.stop('SIGTERM');
      await proxy.stop();
    }
  });
});
