/**
 * A tail node paused (SIGSTOP) while its leader pipelines writes: the others drop it from
 * the shard map, the site moves to the other node, a leader there writes, and then the
 * paused node goes on (SIGCONT) not knowing that it lost the site for a while. The writes
 * it had queued are refused FENCED by the store (every acknowledged write is in the log
 * once, at its place; no refused one is), and its clients are told: the leader hears
 * FENCED and `leader: null`, a follower there gets the entries the other node wrote in
 * order, with no gap, before that `leader` event, and a lease there reports the store's
 * length, not the one the node had before it was paused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { pickShard, type Shard } from '../../src/protocol/shards.js';
import { createSite, get, signupDevice } from '../helpers/auth-client.js';
import { natsServerSkip, startOwnNats } from '../helpers/nats-server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { decodeEntry, entry, TailClient, type TailEventFrame, type TailReply } from '../helpers/tail-client.js';
import { clusterKeys, freePort, nodeDataDir, sleep, spawnCli, until, waitHttp, type Child } from '../server/child.js';

const skip = natsServerSkip() || (await pgSkip());
const run = randomBytes(4).toString('hex');
const schema = `test_paused_${run}`;
const TTL_MS = 2000;

after(async () => {
  if (!skip) await dropPgSchemas(schema);
});

interface Node {
  child: Child;
  http: string;
  ws: string;
}

async function serve(keys: string, roles: string, id: string, bus: string): Promise<Node> {
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  const child = spawnCli([
    'serve', '--roles', roles, '--port', String(port), '--host', '127.0.0.1', '--public-url', http, '--data', nodeDataDir(keys, 'dg-paused-'),
    '--bus', bus, '--db', PG_URL, '--db-schema', schema, '--node-id', id, '--node-ttl-ms', String(TTL_MS), '--log-level', 'error',
  ]);
  await waitHttp(child, `${http}/ready`);
  return { child, http, ws: `ws://127.0.0.1:${port}/tail` };
}

interface Lease {
  handle: string;
  role: string;
  epoch: number;
  length: number;
}

describe('a tail node paused while another takes its site', { skip }, () => {
  it('refuses its queued writes FENCED when it goes on, and tells its clients what the other node wrote', { timeout: 150_000 }, async () => {
    const nats = await startOwnNats();
    let paused: Child | null = null;
    try {
      const keys = clusterKeys('dg-paused-');
      const auth = await serve(keys, 'auth', `auth-${run}`, nats.url);
      const dev = await signupDevice(auth.http, { name: 'writer' });
      const site = await createSite(auth.http, dev.access);
      // `aId` serves the site while both nodes live.
      const ids = [`tail-${run}-1`, `tail-${run}-2`];
      const aId = pickShard(ids.map((id) => ({ id, url: '' })), site)?.id as string;
      const bId = ids.find((id) => id !== aId) as string;
      const [a, b] = await Promise.all([serve(keys, 'tail', aId, nats.url), serve(keys, 'tail', bId, nats.url)]);
      const shardIds = async () => (await get<{ shards: Shard[] }>(auth.http, '/shards')).body.shards.map((s) => s.id).sort();
      await until('auth to list both tail nodes', async () => ((await shardIds()).length === 2 ? true : undefined));

      const leader = await TailClient.connect(a.ws, dev.access);
      const follower = await TailClient.connect(a.ws, dev.access);
      const l1 = await leader.call<Lease>('lease', { site, log: 'main' });
      assert.equal(l1.role, 'leader');
      const f = await follower.call<Lease>('lease', { site, log: 'main', lead: false });

      // The leader pipelines without waiting for acks; node A is paused in the middle of it.
      const sent: { text: string; at: number; reply: Promise<TailReply> }[] = [];
      const write = (at: number) => {
        const text = `a${at}`;
        const id = leader.freshId();
        leader.send({ id, op: 'write', handle: l1.handle, at, entries: [entry(text)], wid: text });
        sent.push({ text, at, reply: leader.reply(id, 60_000) });
      };
      let next = 0;
      for (; next < 10; next++) write(next);
      await Promise.all(sent.map((s) => s.reply));
      let streaming = true;
      const stream = (async () => {
        while (streaming) {
          write(next++);
          await sleep(3);
        }
      })();
      await sleep(150);
      paused = a.child;
      process.kill(a.child.proc.pid as number, 'SIGSTOP');
      await sleep(300);
      streaming = false;
      await stream;

      // The others drop A; B serves the site, and a leader there (the same device, on a new session) writes.
      await until('auth to drop the paused node', async () => ((await shardIds()).join() === bId ? true : undefined), 20_000);
      const taker = await TailClient.connect(b.ws, dev.access);
      // A paused inside a commit's transaction holds the log's row lock until PostgreSQL ends
      // the idle transaction (30 s): B's epoch bump waits for it (UNAVAILABLE after 15 s).
      const l2 = await until(
        'B to take the site',
        async () => {
          const id = taker.freshId();
          taker.send({ id, op: 'lease', site, log: 'main' });
          const r = await taker.reply(id, 40_000);
          return r.error === undefined && r.role === 'leader' ? (r as unknown as Lease) : undefined;
        },
        60_000,
      );
      assert.ok(l2.epoch > l1.epoch);
      let length = l2.length;
      for (let i = 0; i < 5; i++) {
        const r = await taker.call<{ length: number }>('write', { handle: l2.handle, at: length, entries: [entry(`b${i}`)], wid: `b${i}` });
        length = r.length;
      }

      process.kill(a.child.proc.pid as number, 'SIGCONT');
      paused = null;
      const outcomes = await Promise.all(sent.map(async (s) => ({ ...s, r: await s.reply })));
      const reader = await TailClient.connect(b.ws, dev.access);
      const stored = await (async () => {
        const r = await reader.request('lease', { site, log: 'main', lead: false });
        if (r.redirect !== undefined || r.error !== undefined) {
          // A is back in B's map already: read there.
          const there = await TailClient.connect(a.ws, dev.access);
          const h = await there.call<Lease>('lease', { site, log: 'main', lead: false });
          const out = await there.call<{ entries: string[] }>('read', { handle: h.handle, from: 0 });
          there.close();
          return out.entries.map(decodeEntry);
        }
        return (await reader.call<{ entries: string[] }>('read', { handle: r.handle as string, from: 0 })).entries.map(decodeEntry);
      })();
      assert.equal(stored.length, length, 'the log ends with the writes made on B');
      let fenced = 0;
      for (const o of outcomes) {
        if (o.r.error?.code === 'FENCED') {
          fenced++;
          assert.ok(!stored.includes(o.text), `${o.text} was refused FENCED but is in the log`);
        } else if (o.r.error?.code === 'UNAVAILABLE') {
          // Paused inside a commit's transaction for longer than PostgreSQL keeps an idle one
          // (30 s), the node finds its connection ended: the outcome is unknown to the writer,
          // and the write is at most once in the log, at its place.
          fenced++;
          if (stored.includes(o.text)) assert.equal(stored[o.at], o.text, `${o.text} landed at ${o.at}`);
        } else {
          assert.equal(o.r.error, undefined, `${o.text}: ${JSON.stringify(o.r)}`);
          assert.equal(stored[o.at], o.text, `acknowledged ${o.text} at ${o.at}`);
        }
      }
      assert.ok(fenced > 0, 'the writes queued on the paused node were refused (FENCED, or UNAVAILABLE when its transaction was ended)');
      assert.equal(new Set(stored).size, stored.length, 'every write once');

      // The follower on A has every entry, in order with no gap, before it hears the leadership there ended.
      let at = f.length;
      const events: TailEventFrame[] = [];
      while (at < stored.length) {
        const ev = await follower.event((e) => e.handle === f.handle && (e.ev === 'tail' || e.ev === 'leader'));
        events.push(ev);
        assert.equal(ev.ev, 'tail', `the entries come before the leader event: ${JSON.stringify(events)}`);
        assert.equal(ev.at, at, `events in order with no gap: ${JSON.stringify(events.map((e) => [e.at, e.length]))}`);
        if (ev.entries !== undefined) assert.deepEqual((ev.entries as string[]).map(decodeEntry), stored.slice(at, ev.length as number));
        at = ev.length as number;
      }
      const ended = await follower.nextEvent('leader', f.handle);
      assert.equal(ended.leader, null);
      assert.ok((ended.epoch as number) >= l2.epoch);

      // A lease on A reports the log as the store has it, and the old leader takes it back above B's epoch.
      const fresh = await TailClient.connect(a.ws, dev.access);
      const fl = await fresh.call<Lease>('lease', { site, log: 'main', lead: false });
      assert.equal(fl.length, stored.length);
      const back = await leader.call<Lease>('lease', { site, log: 'main' });
      assert.equal(back.role, 'leader');
      assert.ok(back.epoch > l2.epoch);
      assert.equal(back.length, stored.length);
      for (const c of [leader, follower, taker, reader, fresh]) c.close();
      for (const n of [a, b, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
    } finally {
      if (paused !== null) process.kill(paused.proc.pid as number, 'SIGCONT');
      await nats.stop();
    }
  });
});
