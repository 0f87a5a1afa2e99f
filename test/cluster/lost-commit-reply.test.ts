/**
 * A tail node whose connection to PostgreSQL dies after it sent COMMIT, before the answer
 * came back: the commit landed, but the node cannot know it. Its writers are told
 * UNAVAILABLE (never an ack the store did not give), a resend with the same write id is
 * `dup` and lands once, and the followers' `tail` events still cover the log in order with
 * no gap: the entries of the lost commit are announced (without entries, to be read) as
 * soon as the node learns of them from the store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { createSite, signupDevice } from '../helpers/auth-client.js';
import { natsServerSkip, startOwnNats, type OwnNats } from '../helpers/nats-server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { decodeEntry, entry, TailClient, type TailEventFrame, type TailReply } from '../helpers/tail-client.js';
import { clusterKeys, freePort, nodeDataDir, sleep, spawnCli, until, waitHttp, type Child } from '../server/child.js';

const skip = natsServerSkip() || (await pgSkip());
const run = randomBytes(4).toString('hex');
const schema = `test_lost_commit_${run}`;

after(async () => {
  if (!skip) await dropPgSchemas(schema);
});

/**
 * A proxy to PostgreSQL that, once armed, forwards the next COMMIT it sees and then holds
 * every answer on every connection (the commit lands, its answer never comes), until `cut`
 * closes them all. New connections pass again after the cut.
 */
async function commitHoldingProxy(target: string) {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let armed = false;
  let held = false;
  const server: Server = createServer((client) => {
    const upstream = tcpConnect({ host: t.hostname, port: Number(t.port || 5432) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        upstreams.delete(upstream);
        client.destroy();
        upstream.destroy();
      });
    }
    upstreams.add(upstream);
    if (held) upstream.pause();
    client.on('data', (d: Buffer) => {
      upstream.write(d);
      if (armed && d.includes('COMMIT\0')) {
        armed = false;
        held = true;
        for (const u of upstreams) u.pause();
      }
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    arm: () => void (armed = true),
    get held() {
      return held;
    },
    cut: () => {
      held = false;
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function serve(keys: string, roles: string, id: string, bus: string, db: string): Promise<{ child: Child; http: string; ws: string }> {
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  const child = spawnCli([
    'serve', '--roles', roles, '--port', String(port), '--host', '127.0.0.1', '--public-url', http, '--data', nodeDataDir(keys, 'dg-lost-commit-'),
    '--bus', bus, '--db', db, '--db-schema', schema, '--node-id', id, '--log-level', 'error',
  ]);
  await waitHttp(child, `${http}/ready`);
  return { child, http, ws: `ws://127.0.0.1:${port}/tail` };
}

function outcome(r: TailReply): string {
  return r.error?.code ?? (r.dup === true ? 'dup' : r.nack === true ? 'nack' : 'ok');
}

describe('a commit whose answer is lost with the connection to PostgreSQL', { skip }, () => {
  it('is never acknowledged, is dup when resent, and its entries reach the followers in order', { timeout: 90_000 }, async () => {
    const nats: OwnNats = await startOwnNats();
    const proxy = await commitHoldingProxy(PG_URL);
    try {
      const keys = clusterKeys('dg-lost-commit-');
      const auth = await serve(keys, 'auth', `auth-${run}`, nats.url, PG_URL);
      const tail = await serve(keys, 'tail', `tail-${run}`, nats.url, proxy.url);
      const dev = await signupDevice(auth.http, { name: 'writer' });
      const site = await createSite(auth.http, dev.access);
      const leader = await TailClient.connect(tail.ws, dev.access);
      const follower = await TailClient.connect(tail.ws, dev.access);
      let lease = await leader.call<{ handle: string; length: number }>('lease', { site, log: 'main' });
      const followed = await follower.call<{ handle: string; length: number }>('lease', { site, log: 'main', lead: false });
      assert.equal(followed.length, 0);

      // The leader pipelines (8 in flight) and stops at its first failure; one COMMIT's answer is held, then every connection cut.
      const sent: { text: string; at: number; reply: Promise<TailReply> }[] = [];
      let failed = false;
      let stop = false;
      const stream = (async () => {
        for (let at = 0; !failed && !stop; at++) {
          const text = `w${at}`;
          const reply = leader.request('write', { handle: lease.handle, at, entries: [entry(text)], wid: text });
          void reply.then((r) => void (failed ||= r.error !== undefined));
          sent.push({ text, at, reply });
          if (sent.length >= 8) await (sent[sent.length - 8] as (typeof sent)[number]).reply;
          await sleep(2);
        }
      })();
      await sleep(150);
      proxy.arm();
      await until('a COMMIT whose answer is held', async () => (proxy.held ? true : undefined), 10_000, 5);
      await sleep(200);
      proxy.cut();
      stop = true;
      await stream;
      const outcomes = await Promise.all(sent.map(async (s) => ({ ...s, r: await s.reply })));
      const unavailable = outcomes.filter((o) => outcome(o.r) === 'UNAVAILABLE');
      assert.ok(unavailable.length > 0, 'the writes of the held commit failed');
      for (const o of outcomes) assert.ok(['ok', 'UNAVAILABLE'].includes(outcome(o.r)), `${o.text}: ${JSON.stringify(o.r)}`);

      // The held commit landed: the log holds the failed writes too, at the places they were sent to.
      const reader = await TailClient.connect(tail.ws, dev.access);
      const rlease = await until('the store back', async () => {
        const r = await reader.request('lease', { site, log: 'main', lead: false });
        return r.error === undefined ? (r as unknown as { handle: string; length: number }) : undefined;
      });
      const read = await reader.call<{ entries: string[]; length: number }>('read', { handle: rlease.handle, from: 0 });
      const stored = read.entries.map(decodeEntry);
      for (const o of outcomes) if (outcome(o.r) === 'ok') assert.equal(stored[o.at], o.text, `acknowledged ${o.text} at ${o.at}`);
      assert.ok(unavailable.some((o) => stored[o.at] === o.text), 'the lost commit landed (the answer was lost, not the commit)');

      // Resent with the same write ids: dup for what landed, once in the log whatever happened.
      lease = await leader.call<{ handle: string; length: number }>('lease', { site, log: 'main' });
      assert.equal(lease.length, read.length);
      let length = lease.length;
      for (const o of unavailable) {
        const r = await leader.call<{ length: number; dup?: boolean }>('write', { handle: lease.handle, at: length, entries: [entry(o.text)], wid: o.text });
        if (stored[o.at] === o.text) assert.equal(r.dup, true, `${o.text} landed: its resend is dup`);
        length = Math.max(length, r.length);
      }
      const last = await leader.call<{ length: number }>('write', { handle: lease.handle, at: length, entries: [entry('last')], wid: 'last' });
      const all = (await reader.call<{ entries: string[] }>('read', { handle: rlease.handle, from: 0 })).entries.map(decodeEntry);
      assert.equal(all.length, last.length);
      assert.equal(new Set(all).size, all.length, 'every write once');

      // The follower's events cover 0 … the end in order, with no gap.
      const events: TailEventFrame[] = [];
      let at = followed.length;
      while (at < last.length) {
        const ev = await follower.nextEvent('tail', followed.handle, 10_000);
        events.push(ev);
        assert.equal(ev.at, at, `events in order with no gap: ${JSON.stringify(events.map((e) => [e.at, e.length]))}`);
        if (ev.entries !== undefined) assert.deepEqual((ev.entries as string[]).map(decodeEntry), all.slice(at, ev.length as number));
        at = ev.length as number;
      }
      for (const c of [leader, follower, reader]) c.close();
      for (const n of [tail, auth]) assert.deepEqual(await n.child.stop('SIGTERM'), { code: 0, signal: null }, n.child.output());
    } finally {
      await proxy.close();
      await nats.stop();
    }
  });
});
