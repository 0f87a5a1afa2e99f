/**
 * Fan-out against the servers users would pick instead: the real server (tail, durable
 * acked writes) vs Socket.IO rooms, Hocuspocus (Yjs document updates) and the bare ws relay,
 * at 1, 50 and 500 followers, each server a measured child process, all driven by the same
 * round (bench/lib/delivery-round.ts) with the same payloads: 100-byte entries in writes of
 * 100, at most 8 writes not yet delivered to every follower. Figures: the serving process's
 * CPU time per delivered entry (entries × followers), deliveries per second, and delivery
 * latency p50/p99 (from a timestamp in each write's first entry to its arrival).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuBetween, scriptPath, startChild, type Child } from './lib/child.js';
import { deliveryRound } from './lib/delivery-round.js';
import { hocuspocusDelivery, projectDelivery, relayDelivery, socketIoDelivery, type DeliveryTarget } from './lib/delivery-targets.js';
import { requireOpenFiles } from './lib/loopback.js';
import { Payload } from './lib/payload.js';
import { row, type BenchOptions, type BenchResult, type Row } from './lib/result.js';
import { fmt, median } from './lib/stats.js';

interface Measured {
  cpuPerDelivery: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  /** The bench process's own CPU per delivered entry (every client together). */
  clientCpuPerDelivery: number;
}

interface Size {
  followers: number;
  entries: number;
}

const ENTRY_BYTES = 100;
const BATCH = 100;
const WINDOW = 8;
/** Users holding the follower sessions on the project side (a user may hold many sessions). */
const READER_USERS = 20;
const PEER_LABEL: Record<DeliveryTarget['name'], string> = { project: 'project', relay: 'bare ws relay', 'socket.io': 'Socket.IO', hocuspocus: 'Hocuspocus' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(t: DeliveryTarget, tag: string, payload: Payload, followers: number): Promise<Measured> {
  const group = await t.open(tag, followers);
  try {
    // Let set-up traffic (handshakes, presence, initial sync) settle before the window opens.
    await sleep(300 + followers * 2);
    const u0 = await t.child.usage();
    const c0 = process.cpuUsage();
    const s = await deliveryRound(group, payload, WINDOW);
    const u1 = await t.child.usage();
    const c1 = process.cpuUsage(c0);
    return {
      cpuPerDelivery: cpuBetween(u0, u1) / s.deliveries,
      deliveriesPerSec: s.deliveries / s.seconds,
      p50: s.latency.q(0.5),
      p99: s.latency.q(0.99),
      clientCpuPerDelivery: (c1.user + c1.system) / s.deliveries,
    };
  } finally {
    await group.close();
    await sleep(200);
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const quick = opts.quick;
  const sizes: Size[] = quick
    ? [{ followers: 1, entries: 5000 }, { followers: 50, entries: 2000 }]
    : // One follower gets more entries, so its round lasts long enough to measure CPU over.
      [{ followers: 1, entries: 100_000 }, { followers: 50, entries: 20_000 }, { followers: 500, entries: 4000 }];
  const reps = quick ? 1 : 3;
  requireOpenFiles(Math.max(...sizes.map((s) => s.followers)) + 64, 'fanout-peers');

  const dataDir = mkdtempSync(join(tmpdir(), 'dg-bench-fanout-peers-'));
  const children: Child[] = [];
  const start = async (script: string, args: string[] = []) => {
    const c = await startChild(scriptPath(script), args);
    children.push(c);
    return c;
  };
  try {
    const server = await start('lib/server-child.ts', [dataDir]);
    const targets: DeliveryTarget[] = [
      await projectDelivery(server, READER_USERS),
      relayDelivery(await start('peers/ws-relay.ts')),
      socketIoDelivery(await start('peers/socketio-server.ts')),
      hocuspocusDelivery(await start('peers/hocuspocus-server.ts')),
    ];
    opts.log(`fanout-peers: ${targets.map((t) => `${t.name} pid ${t.child.pid}`).join(', ')}`);

    const rows: Row[] = [];
    const notes: string[] = [
      `Writes of ${BATCH} entries of ${ENTRY_BYTES} B, at most ${WINDOW} writes not yet delivered to every follower; ${reps} repetitions per size, the order of the four servers rotating each time, after one smaller warm-up round each.`,
      'CPU is each serving child\'s own user+system time (process.cpuUsage over IPC) from the first write to the last delivery; set-up (sign-up, connect, lease / join / sync) is outside the window.',
      'Project: followers are sessions of 20 users holding read grants, each a follower lease on the round\'s log; writes are durable (SQLite, synchronous=FULL) before they are acked and fanned out. Socket.IO: the writer emits with an acknowledgement, the server emits to the room (encoded once). Hocuspocus: no persistence extension (documents in memory), providers with awareness off; Yjs updates are not acknowledged, so its writer is paced by deliveries alone.',
    ];
    let seq = 0;
    for (const size of sizes) {
      const payload = new Payload(size.entries, ENTRY_BYTES, BATCH);
      const warm = new Payload(Math.min(size.entries, 10 * BATCH), ENTRY_BYTES, BATCH);
      const runs = new Map<DeliveryTarget['name'], Measured[]>(targets.map((t) => [t.name, []]));
      for (const t of targets) await measure(t, `fp-${size.followers}-warm-${seq++}`, warm, size.followers);
      for (let r = 0; r < reps; r++) {
        const order = targets.map((_, i) => targets[(i + r) % targets.length] as DeliveryTarget);
        for (const t of order) runs.get(t.name)?.push(await measure(t, `fp-${size.followers}-${r}-${seq++}`, payload, size.followers));
        opts.log(`fanout-peers ${size.followers} followers, rep ${r + 1}/${reps}: ` +
          targets.map((t) => {
            const m = runs.get(t.name)?.at(-1);
            return `${t.name} ${fmt(m?.cpuPerDelivery ?? NaN)} µs/delivery, ${fmt(m?.deliveriesPerSec ?? NaN)}/s, p50 ${fmt(m?.p50 ?? NaN)} ms`;
          }).join('; '));
      }
      const P = runs.get('project') ?? [];
      const pick = (xs: Measured[], k: keyof Measured) => xs.map((m) => m[k]);
      const label = `${size.followers} follower${size.followers === 1 ? '' : 's'}`;
      for (const peer of targets.slice(1)) {
        const R = runs.get(peer.name) ?? [];
        const vs = `vs ${PEER_LABEL[peer.name]}`;
        rows.push(
          row(`server CPU per delivered entry, ${label}, ${vs}`, 'µs', 'lower', pick(P, 'cpuPerDelivery'), pick(R, 'cpuPerDelivery')),
          row(`deliveries per second, ${label}, ${vs}`, 'entries/s', 'higher', pick(P, 'deliveriesPerSec'), pick(R, 'deliveriesPerSec')),
          row(`delivery latency p50, ${label}, ${vs}`, 'ms', 'lower', pick(P, 'p50'), pick(R, 'p50')),
          row(`delivery latency p99, ${label}, ${vs}`, 'ms', 'lower', pick(P, 'p99'), pick(R, 'p99')),
        );
      }
      notes.push(`${label}: ${size.entries} entries (${size.entries * size.followers} deliveries per round); client CPU per delivered entry (the bench process, sharing the 2 cores) ` +
        targets.map((t) => `${t.name} ${fmt(median(pick(runs.get(t.name) ?? [], 'clientCpuPerDelivery')))} µs`).join(', ') + '.');
    }
    return {
      name: 'fanout-peers',
      title: 'Fan-out vs Socket.IO, Hocuspocus and a bare relay',
      project: 'datagrove server (tail over WebSocket, SQLite, acked durable writes)',
      peer: 'Socket.IO rooms / Hocuspocus (Yjs) / bare ws relay, as named in each row',
      quick,
      params: { sizes: sizes.map((s) => `${s.followers}×${s.entries}`).join(','), entryBytes: ENTRY_BYTES, batch: BATCH, window: WINDOW, reps },
      rows,
      notes,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of children) await c.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  }
}
