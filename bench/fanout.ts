/**
 * Fan-out benchmark: one leader, N followers, the real server as a child process against
 * a bare `ws` relay as a child process (bench/peers/ws-relay.ts), with the same payloads,
 * batches, pipelining window, follower count and client code. The figure that matters is
 * the serving process's own CPU time (user + system) per delivered entry, where delivered
 * entries = entries × followers; its ratio to the relay's must stay ≤ 0.5 (and never
 * exceed 1.0). Deliveries/s and delivery latency come from the same rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuBetween, scriptPath, startChild, type Child } from './lib/child.js';
import { fanoutRound } from './lib/fanout-round.js';
import { Payload } from './lib/payload.js';
import { row, type BenchOptions, type BenchResult } from './lib/result.js';
import { fmt, median } from './lib/stats.js';
import { projectTarget, relayTarget, type Target } from './lib/targets.js';

interface Measured {
  /** Serving process CPU µs per delivered entry. */
  cpuPerDelivery: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  rssMiB: number;
  /** The bench process's own CPU µs per delivered entry (all clients together). */
  clientCpuPerDelivery: number;
  /** Share of follower frames that carried their entries (no read needed). */
  pushedShare: number;
  framesPerFollower: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(target: Target, child: Child, log: string, payload: Payload, window: number, followers: number): Promise<Measured> {
  const conns = await target.open(log);
  try {
    await sleep(300); // let the connection and lease work finish before the window opens
    const u0 = await child.usage();
    const c0 = process.cpuUsage();
    const s = await fanoutRound(conns.leader, conns.followers, payload, window);
    const u1 = await child.usage();
    const c1 = process.cpuUsage(c0);
    return {
      cpuPerDelivery: cpuBetween(u0, u1) / s.deliveries,
      deliveriesPerSec: s.deliveries / s.seconds,
      p50: s.latency.q(0.5),
      p99: s.latency.q(0.99),
      rssMiB: u1.rss / 2 ** 20,
      clientCpuPerDelivery: (c1.user + c1.system) / s.deliveries,
      pushedShare: s.frames === 0 ? 0 : s.pushed / s.frames,
      framesPerFollower: s.frames / followers,
    };
  } finally {
    await conns.close();
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const followers = opts.quick ? 20 : 50;
  const entries = opts.quick ? 4000 : 20_000;
  const reps = opts.quick ? 1 : 3;
  const entryBytes = 100;
  const window = 8;
  let batch = 100;

  const dataDir = mkdtempSync(join(tmpdir(), 'dg-bench-fanout-'));
  const children: Child[] = [];
  try {
    const server = await startChild(scriptPath('lib/server-child.ts'), [dataDir]);
    children.push(server);
    const relay = await startChild(scriptPath('peers/ws-relay.ts'));
    children.push(relay);
    opts.log(`fanout: server pid ${server.pid}, relay pid ${relay.pid}; signing up ${followers + 1} devices`);
    const project = await projectTarget(server.port, followers);
    const peer = relayTarget(relay.port, followers);

    // Respect the server's announced limit on entries per write (the relay has none).
    const probe = await project.open('fan-probe');
    await probe.close();
    if (probe.maxEntries !== null && probe.maxEntries < batch) batch = probe.maxEntries;
    const payload = new Payload(entries, entryBytes, batch);

    // Warm-up: one smaller round on each side, not measured, so both run optimized code.
    const warm = new Payload(Math.min(entries, 20 * batch), entryBytes, batch);
    await measure(project, server, 'fan-warm', warm, window, followers);
    await measure(peer, relay, 'fan-warm', warm, window, followers);

    const P: Measured[] = [];
    const R: Measured[] = [];
    for (let r = 0; r < reps; r++) {
      // Interleave and alternate the order, so drifts of the shared machine hit both sides.
      const order: [Target, Child, Measured[]][] = [
        [project, server, P],
        [peer, relay, R],
      ];
      if (r % 2 === 1) order.reverse();
      for (const [t, c, out] of order) out.push(await measure(t, c, `fan-${r}`, payload, window, followers));
      const p = P.at(-1);
      const q = R.at(-1);
      if (p !== undefined && q !== undefined) {
        opts.log(`fanout rep ${r + 1}/${reps}: CPU/delivery ${fmt(p.cpuPerDelivery)} vs ${fmt(q.cpuPerDelivery)} µs (ratio ${fmt(p.cpuPerDelivery / q.cpuPerDelivery)}); ` +
          `${fmt(p.deliveriesPerSec)} vs ${fmt(q.deliveriesPerSec)} deliveries/s; p50 ${fmt(p.p50)} vs ${fmt(q.p50)} ms`);
      }
    }

    const pick = (xs: Measured[], k: keyof Measured) => xs.map((m) => m[k]);
    const cpuRow = row('server CPU per delivered entry', 'µs', 'lower', pick(P, 'cpuPerDelivery'), pick(R, 'cpuPerDelivery'), {
      text: '≤ 0.5',
      test: (x) => x <= 0.5,
    });
    const notes = [
      `${followers} followers, ${entries} entries of ${entryBytes} B in writes of ${batch} (at most ${window} batches in flight end to end); ${reps} interleaved repetitions after one warm-up round each.`,
      'CPU is the serving child process\'s own user+system time (process.cpuUsage over IPC) from the first write to the last delivery; set-up (sign-up, connect, lease) is outside the window.',
      `Clients (bench process) used ${fmt(median(pick(P, 'clientCpuPerDelivery')))} µs (project) and ${fmt(median(pick(R, 'clientCpuPerDelivery')))} µs (peer) of CPU per delivered entry; they share the 2 cores with the server.`,
      `Follower frames per follower: ${fmt(median(pick(P, 'framesPerFollower')))} (project) vs ${fmt(median(pick(R, 'framesPerFollower')))} (peer); share of project frames carrying their entries: ${fmt(median(pick(P, 'pushedShare')) * 100)}%.`,
      `Serving process RSS after a round: ${fmt(median(pick(P, 'rssMiB')))} MiB (project, with SQLite) vs ${fmt(median(pick(R, 'rssMiB')))} MiB (peer).`,
    ];
    if (cpuRow.ratio > 1) notes.unshift(`The project used MORE CPU per delivered entry than the bare relay (ratio ${fmt(cpuRow.ratio)} > 1.0).`);
    return {
      name: 'fanout',
      title: `Fan-out: 1 leader, ${followers} followers, ${entries} × ${entryBytes} B entries`,
      project: 'datagrove server (tail over WebSocket, SQLite, acked durable writes)',
      peer: 'bare ws relay (parse + send to every other client; no auth, no durability)',
      quick: opts.quick,
      params: { followers, entries, entryBytes, batch, window, reps },
      rows: [
        cpuRow,
        row('deliveries per second', 'entries/s', 'higher', pick(P, 'deliveriesPerSec'), pick(R, 'deliveriesPerSec')),
        row('delivery latency p50', 'ms', 'lower', pick(P, 'p50'), pick(R, 'p50')),
        row('delivery latency p99', 'ms', 'lower', pick(P, 'p99'), pick(R, 'p99')),
      ],
      notes,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of children) await c.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  }
}
