/**
 * ShardRegistry over the real in-process bus, with a clock the test moves: joins, TTL
 * expiry, departures, the version, ownership and redirects, and bad messages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { InProcessBus } from '../../src/bus/inproc.js';
import { SUBJECTS } from '../../src/protocol/bus-messages.js';
import { pickShard } from '../../src/protocol/shards.js';
import { defaultNodeId, ShardRegistry } from '../../src/server/shard-registry.js';

const log = pino({ level: 'silent' });
/** Lets queued bus deliveries (microtasks) run. */
const settle = () => new Promise((r) => setImmediate(r));

function setup(self: { id: string; url: string } | null = null, ttlMs = 3000) {
  const bus = new InProcessBus();
  let now = 1_000_000;
  const sent: unknown[] = [];
  const changes: number[] = [];
  bus.subscribe(SUBJECTS.tailNode, (m) => void sent.push(m));
  const reg = new ShardRegistry({
    bus,
    log,
    ttlMs,
    self: self === null ? null : { id: self.id, url: () => self.url },
    now: () => now,
    onChange: () => changes.push(reg.version),
  });
  reg.start();
  return {
    bus,
    reg,
    sent,
    /** The map's version each time onChange was told. */
    changes,
    /** Time passes with the bus down: no echo comes back. */
    advance: (ms: number) => (now += ms),
    /** Time passes with the bus up: this process's echo comes back every heartbeat interval. */
    pass: async (ms: number) => {
      const step = Math.floor(ttlMs / 3);
      for (let left = ms; left > 0; left -= step) {
        now += Math.min(step, left);
        reg.echo();
        await settle();
      }
    },
    beat: async (id: string, url = `ws://${id}.test/tail`, ttl = 3000) => {
      bus.publish(SUBJECTS.tailNode, { id, url, ttlMs: ttl, at: now });
      await settle();
    },
  };
}

describe('ShardRegistry', () => {
  it('tells onChange of every change of the live set, and of nothing else', async () => {
    const t = setup();
    await t.beat('a');
    await t.beat('b');
    await t.beat('a');
    assert.equal(t.changes.length, 2, 'two joins; a repeated heartbeat is no change');
    t.bus.publish(SUBJECTS.tailNode, { id: 'b', url: 'ws://b.test/tail', leaving: true });
    await settle();
    assert.equal(t.changes.length, 3, 'a departure');
    await t.pass(10_000);
    assert.deepEqual(t.reg.shards().shards, [], 'a expired when the map was read');
    await settle();
    assert.equal(t.changes.length, 4, 'the expiry');
    assert.deepEqual([...t.changes].sort((x, y) => x - y), t.changes, 'told in order of the versions');
  });

  it('lists the nodes it heard from, sorted by id, with a growing version', async () => {
    const t = setup();
    assert.deepEqual(t.reg.shards().shards, []);
    const v0 = t.reg.shards().version;
    await t.beat('b');
    const v1 = t.reg.shards().version;
    assert.ok(v1 > v0);
    await t.beat('a');
    const m = t.reg.shards();
    assert.deepEqual(m.shards, [
      { id: 'a', url: 'ws://a.test/tail' },
      { id: 'b', url: 'ws://b.test/tail' },
    ]);
    assert.ok(m.version > v1);
    // A repeated heartbeat is no change.
    await t.beat('a');
    assert.equal(t.reg.shards().version, m.version);
    // A new URL for a known id is.
    await t.beat('a', 'ws://a2.test/tail');
    assert.ok(t.reg.shards().version > m.version);
    assert.equal(t.reg.shards().shards[0]?.url, 'ws://a2.test/tail');
  });

  it('drops a node after its own TTL without a heartbeat, and keeps one that beats', async () => {
    const t = setup();
    await t.beat('slow', undefined, 1000);
    await t.beat('steady', undefined, 5000);
    await t.pass(900);
    assert.equal(t.reg.shards().shards.length, 2);
    const before = t.reg.shards().version;
    await t.pass(200);
    assert.deepEqual(t.reg.shards().shards.map((s) => s.id), ['steady']);
    assert.ok(t.reg.shards().version > before);
    await t.pass(4000);
    await t.beat('steady', undefined, 5000);
    await t.pass(4000);
    assert.deepEqual(t.reg.shards().shards.map((s) => s.id), ['steady']);
    await t.pass(1001);
    assert.deepEqual(t.reg.shards().shards, []);
  });

  it('keeps every node while it does not hear itself on the bus, and gives each a fresh TTL when it does again', async () => {
    const t = setup({ id: 'self', url: 'ws://self.test/tail' });
    t.reg.announce();
    await t.beat('a');
    await t.beat('b');
    await t.pass(2000);
    await t.beat('a');
    await t.beat('b');
    const v = t.reg.version;
    // The bus goes quiet for this process: no heartbeat, and no echo of its own.
    t.advance(20_000);
    assert.deepEqual(t.reg.shards().shards.map((s) => s.id), ['a', 'b', 'self'], 'silence is not death while this process cannot hear itself');
    assert.equal(t.reg.version, v);
    const sites = Array.from({ length: 32 }, (_, i) => `site-${i}`);
    assert.ok(sites.some((site) => t.reg.redirectFor(site) !== null), 'the sites of the others still go to them');
    // The bus is back: the first echo gives every node a TTL from now and asks them to beat.
    const probes = () => t.sent.filter((m) => (m as { probe?: boolean }).probe === true).length;
    const probesBefore = probes();
    t.reg.echo();
    await settle();
    assert.equal(probes(), probesBefore + 1, 'a probe once the bus carries messages again');
    await t.pass(2900);
    assert.deepEqual(t.reg.shards().shards.map((s) => s.id), ['a', 'b', 'self']);
    // b answers; a is really gone and leaves once its fresh TTL runs out with the bus up.
    await t.beat('b');
    await t.pass(200);
    assert.deepEqual(t.reg.shards().shards.map((s) => s.id), ['b', 'self']);
    assert.ok(t.reg.version > v);
    t.reg.stop();
  });

  it('hears itself while echoes come back, and not once they stop for the interval plus 2 s (at least 5 s)', async () => {
    const t = setup({ id: 'self', url: 'ws://self.test/tail' }, 9000);
    await t.pass(10_000);
    assert.equal(t.reg.hearsItself(), true);
    // Silence (a black-holed connection): within the bound it still counts as heard...
    t.advance(4900);
    assert.equal(t.reg.hearsItself(), true);
    // ...past it (interval 3 s + 2 s = 5 s) it does not, until an echo comes back.
    t.advance(200);
    assert.equal(t.reg.hearsItself(), false);
    t.reg.echo();
    await settle();
    assert.equal(t.reg.hearsItself(), true);
    t.reg.stop();
  });

  it('a node that stops beating while echoes still come back leaves on time, however slowly echoes come', async () => {
    const t = setup();
    await t.beat('a');
    // Echoes one interval apart: the last one before the deadline is enough.
    await t.pass(2999);
    assert.equal(t.reg.shards().shards.length, 1);
    await t.pass(2);
    assert.deepEqual(t.reg.shards().shards, []);
  });

  it('drops a node that says it is leaving at once', async () => {
    const t = setup();
    await t.beat('x');
    await t.beat('y');
    const v = t.reg.shards().version;
    t.bus.publish(SUBJECTS.tailNode, { id: 'x', url: 'ws://x.test/tail', leaving: true });
    await settle();
    assert.deepEqual(t.reg.shards().shards.map((s) => s.id), ['y']);
    assert.ok(t.reg.shards().version > v);
  });

  it('ignores malformed messages', async () => {
    const t = setup();
    const bad: unknown[] = [
      null,
      'x',
      { id: 'a' },
      { id: 'bad id', url: 'ws://a/tail', ttlMs: 1000, at: 1 },
      { id: 'a', url: 'http://a/tail', ttlMs: 1000, at: 1 },
      { id: 'a', url: 'ws://a/tail', ttlMs: 5, at: 1 },
      { id: 'a', url: 'ws://a/tail', ttlMs: 1.5, at: 1 },
      { id: 'a', url: 'ws://a/tail', ttlMs: 10_000_000, at: 1 },
      { id: 'a', url: 'ws://a/tail', ttlMs: 1000 },
      { id: 'a', url: `ws://${'a'.repeat(3000)}/tail`, ttlMs: 1000, at: 1 },
      { id: 'a'.repeat(200), url: 'ws://a/tail', ttlMs: 1000, at: 1 },
    ];
    for (const m of bad) t.bus.publish(SUBJECTS.tailNode, m);
    await settle();
    assert.deepEqual(t.reg.shards(), { version: 0, shards: [] });
  });

  it('owner() and redirectFor() follow rendezvous hashing, and a node never redirects to itself', async () => {
    const t = setup({ id: 'self', url: 'ws://self.test/tail' });
    // Before announcing, the node knows nobody: it serves what it is asked.
    assert.equal(t.reg.redirectFor('site-1'), null);
    t.reg.announce();
    await settle();
    // Its own echoed heartbeat does not count twice.
    assert.deepEqual(t.reg.shards().shards, [{ id: 'self', url: 'ws://self.test/tail' }]);
    for (let i = 0; i < 20; i++) assert.equal(t.reg.redirectFor(`site-${i}`), null);
    await t.beat('other');
    const map = t.reg.shards().shards;
    assert.equal(map.length, 2);
    let redirected = 0;
    for (let i = 0; i < 64; i++) {
      const site = `site-${i}`;
      const owner = pickShard(map, site);
      assert.deepEqual(t.reg.owner(site), owner);
      if (owner?.id === 'other') {
        assert.equal(t.reg.redirectFor(site), 'ws://other.test/tail');
        redirected++;
      } else {
        assert.equal(t.reg.redirectFor(site), null);
      }
    }
    // Rendezvous hashing splits 64 sites between two nodes; all on one side is a bug.
    assert.ok(redirected > 0 && redirected < 64, `redirected ${redirected} of 64`);
    // Once the other node expires, this node owns everything again.
    await t.pass(3001);
    await t.beat('self', 'ws://self.test/tail');
    for (let i = 0; i < 64; i++) assert.equal(t.reg.redirectFor(`site-${i}`), null);
    t.reg.stop();
  });

  it('announces heartbeats with its TTL, and says leaving on stop', async () => {
    const t = setup({ id: 'n1', url: 'ws://n1.test/tail' }, 90);
    t.reg.announce();
    await new Promise((r) => setTimeout(r, 150));
    t.reg.stop();
    await settle();
    const beats = t.sent.filter((m) => (m as { ttlMs?: number }).ttlMs === 90);
    // One at once and one every 30 ms after: at least 3 within 150 ms on a loaded machine.
    assert.ok(beats.length >= 3, `${beats.length} heartbeats`);
    assert.deepEqual(Object.keys(beats[0] as object).sort(), ['at', 'id', 'ttlMs', 'url']);
    assert.deepEqual(t.sent.at(-1), { id: 'n1', url: 'ws://n1.test/tail', leaving: true });
    assert.deepEqual(t.reg.shards().shards, []);
    const count = t.sent.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.sent.length, count, 'no heartbeat after stop');
  });

  it('a starting process asks every announcing node to beat at once, and is settled after settleMs', async () => {
    // An announcing node, up for a while: its next heartbeat is far away.
    const old = setup({ id: 'n1', url: 'ws://n1.test/tail' }, 600_000);
    old.reg.announce();
    await settle();
    const before = old.sent.filter((m) => (m as { id?: string }).id === 'n1').length;
    // A new process on the same bus: its probe makes n1 beat now, so it knows n1 at once.
    let now = 5_000;
    const fresh = new ShardRegistry({ bus: old.bus, log, ttlMs: 600_000, self: null, now: () => now, settleMs: 500 });
    assert.equal(fresh.settled(), false, 'not before start');
    fresh.start();
    await settle();
    await settle();
    const probes = old.sent.filter((m) => (m as { probe?: boolean }).probe === true) as { from: string }[];
    assert.equal(probes.length, 2, "the old node's own probe at its start, and the new process's");
    assert.match(probes[1]?.from ?? '', /^auth-/);
    assert.equal(old.sent.filter((m) => (m as { id?: string }).id === 'n1').length, before + 1, 'n1 beat once more');
    assert.deepEqual(fresh.shards().shards, [{ id: 'n1', url: 'ws://n1.test/tail' }]);
    assert.equal(fresh.settled(), false);
    now += 500;
    assert.equal(fresh.settled(), true);
    old.reg.stop();
    fresh.stop();
  });

  it('reports the live node count as a gauge', async () => {
    const bus = new InProcessBus();
    const registry = new Registry();
    const reg = new ShardRegistry({ bus, log, ttlMs: 3000, self: null, registry });
    reg.start();
    bus.publish(SUBJECTS.tailNode, { id: 'g1', url: 'ws://g1/tail', ttlMs: 3000, at: Date.now() });
    await settle();
    assert.match(await registry.metrics(), /^datagrove_cluster_tail_nodes 1$/m);
  });

  it('derives node ids that are stable for a fixed port and unique for port 0', () => {
    assert.equal(defaultNodeId(8081, 'host.example'), 'tail-host.example-8081');
    assert.equal(defaultNodeId(8081, 'weird host/name'), 'tail-weird-host-name-8081');
    assert.notEqual(defaultNodeId(0, 'h'), defaultNodeId(0, 'h'));
    assert.match(defaultNodeId(0, 'h'), /^tail-h-[0-9a-f]{8}$/);
  });
});

describe('ShardRegistry: a second process with a live node id', () => {
  it('hears the live process answer its probe, and names it as the twin; a process alone has none', async () => {
    const bus = new InProcessBus();
    const make = (url: string) =>
      new ShardRegistry({ bus, log, ttlMs: 3000, settleMs: 50, self: { id: 't2', url: () => url } });
    const live = make('ws://live.test/tail');
    live.start();
    await live.settle();
    assert.equal(live.twin(), null, 'alone on the bus');
    live.announce();
    await settle();
    const second = make('ws://second.test/tail');
    second.start();
    await second.settle();
    assert.equal(second.twin(), 'ws://live.test/tail', 'the live process answered the probe of one with its id');
    second.stop();
    live.stop();
  });
});
