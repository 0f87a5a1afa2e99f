/**
 * Signaling benchmark: WebRTC offer/answer relays through the project's tail `signal` op
 * (two devices holding handles on the same log: A leads it, B follows) against the PeerJS
 * server (`peer` package, PeerServer), both as measured child processes, with the same
 * ~500-byte SDP in every message. A round trip is an offer A → B and an answer B → A: two
 * relays. Two loads:
 * - throughput: many pairs, each with one round trip in flight, back to back (closed loop);
 *   figures: relays per second, server CPU per relay, round-trip p50/p99 under that load;
 * - latency: one pair pacing 100 round trips per second (far below any limit), so the
 *   round trip is the relay path itself, not queueing.
 * The pair count keeps each tail session under its default signal rate limit (200/s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSite, grantAndJoin, signup } from './lib/auth-client.js';
import { cpuBetween, scriptPath, startChild, type Child } from './lib/child.js';
import { closedLoop, inParallel } from './lib/closed-loop.js';
import { row, type BenchOptions, type BenchResult } from './lib/result.js';
import { PeerJsPair, TailPair, type Pair } from './lib/signal-pairs.js';
import { fmt, Samples } from './lib/stats.js';

interface Side {
  name: 'project' | 'peer';
  child: Child;
  open(k: number, tag: string): Promise<Pair>;
}

interface Load {
  relaysPerSec: number;
  cpuPerRelay: number;
  p50: number;
  p99: number;
}

const PACED_PER_SEC = 100;

async function openPairs(side: Side, n: number, tag: string): Promise<Pair[]> {
  return inParallel(n, 16, (k) => side.open(k, tag));
}

async function closeAll(pairs: Pair[]): Promise<void> {
  await Promise.all(pairs.map((p) => p.close()));
}

/** Every pair runs round trips back to back for `ms`. */
async function throughput(side: Side, pairs: Pair[], ms: number): Promise<Load> {
  const u0 = await side.child.usage();
  const r = await closedLoop({
    concurrency: pairs.length,
    durationMs: ms,
    op: async (_i, w) => {
      await (pairs[w] as Pair).roundTrip();
    },
  });
  const u1 = await side.child.usage();
  return { relaysPerSec: (2 * r.ops) / r.seconds, cpuPerRelay: cpuBetween(u0, u1) / (2 * r.ops), p50: r.latency.q(0.5), p99: r.latency.q(0.99) };
}

/** One pair, `n` round trips paced at PACED_PER_SEC. */
async function paced(pair: Pair, n: number): Promise<Samples> {
  const s = new Samples();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / PACED_PER_SEC;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    s.add(await pair.roundTrip());
  }
  return s;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const quick = opts.quick;
  const reps = quick ? 2 : 5;
  const pairsN = 200;
  const ms = quick ? 1000 : 3000;
  const pacedN = quick ? 100 : 300;

  const dataDir = mkdtempSync(join(tmpdir(), 'dg-bench-signal-'));
  const children: Child[] = [];
  try {
    const server = await startChild(scriptPath('lib/server-child.ts'), [dataDir]);
    children.push(server);
    const peerjs = await startChild(scriptPath('peers/peerjs-server.ts'));
    children.push(peerjs);
    opts.log(`signaling: server pid ${server.pid}, PeerServer pid ${peerjs.pid}; ${pairsN} pairs`);

    const http = `http://127.0.0.1:${server.port}`;
    const url = `ws://127.0.0.1:${server.port}/tail`;
    const a = await signup(http);
    const site = await createSite(http, a);
    const b = await signup(http);
    await grantAndJoin(http, a, site, b, ['read']);
    const P: Side = {
      name: 'project',
      child: server,
      open: (k, tag) => TailPair.open(url, site, `sig-${tag}-${k}`, a, { access: b.access, device: b.device.id }),
    };
    const R: Side = { name: 'peer', child: peerjs, open: (k, tag) => PeerJsPair.open(peerjs.port, k + (tag === 'one' ? 100_000 : 0)) };

    // Pairs stay open for the whole run; each side's single pair too.
    const many = new Map<Side, Pair[]>();
    const one = new Map<Side, Pair>();
    for (const s of [P, R]) {
      many.set(s, await openPairs(s, pairsN, 'many'));
      one.set(s, await s.open(0, 'one'));
    }
    try {
      for (const s of [P, R]) {
        await throughput(s, many.get(s) ?? [], quick ? 300 : 1000);
        await paced(one.get(s) as Pair, 30);
      }
      const loads: [Load[], Load[]] = [[], []];
      const lat: [Samples[], Samples[]] = [[], []];
      for (let r = 0; r < reps; r++) {
        const order: [Side, 0 | 1][] = r % 2 === 0 ? [[P, 0], [R, 1]] : [[R, 1], [P, 0]];
        for (const [s, k] of order) loads[k].push(await throughput(s, many.get(s) ?? [], ms));
        for (const [s, k] of order) lat[k].push(await paced(one.get(s) as Pair, pacedN));
        const p = loads[0].at(-1);
        const q = loads[1].at(-1);
        opts.log(`signaling rep ${r + 1}/${reps}: relays/s ${fmt(p?.relaysPerSec ?? NaN)} vs ${fmt(q?.relaysPerSec ?? NaN)}; CPU/relay ${fmt(p?.cpuPerRelay ?? NaN)} vs ${fmt(q?.cpuPerRelay ?? NaN)} µs; ` +
          `paced round trip p50 ${fmt(lat[0].at(-1)?.q(0.5) ?? NaN)} vs ${fmt(lat[1].at(-1)?.q(0.5) ?? NaN)} ms`);
      }
      const pick = (k: 0 | 1, f: keyof Load) => loads[k].map((l) => l[f]);
      const q = (k: 0 | 1, p: number) => lat[k].map((s) => s.q(p));
      return {
        name: 'signaling',
        title: 'Signaling: WebRTC offer/answer relays',
        project: 'datagrove tail `signal` (authenticated sessions, handles on one log, rate limits)',
        peer: 'PeerJS server (peer 1.x PeerServer, defaults)',
        quick,
        params: { reps, pairs: pairsN, msPerRep: ms, pacedRoundTrips: pacedN, pacedPerSec: PACED_PER_SEC, sdpBytes: 500 },
        rows: [
          row(`relays per second, ${pairsN} pairs`, 'relays/s', 'higher', pick(0, 'relaysPerSec'), pick(1, 'relaysPerSec')),
          row('server CPU per relay', 'µs', 'lower', pick(0, 'cpuPerRelay'), pick(1, 'cpuPerRelay')),
          row(`offer→answer round trip p50, ${pairsN} pairs`, 'ms', 'lower', pick(0, 'p50'), pick(1, 'p50')),
          row(`offer→answer round trip p99, ${pairsN} pairs`, 'ms', 'lower', pick(0, 'p99'), pick(1, 'p99')),
          row(`offer→answer round trip p50, 1 pair at ${PACED_PER_SEC}/s`, 'ms', 'lower', q(0, 0.5), q(1, 0.5)),
          row(`offer→answer round trip p99, 1 pair at ${PACED_PER_SEC}/s`, 'ms', 'lower', q(0, 0.99), q(1, 0.99)),
        ],
        notes: [
          `${pairsN} pairs (${2 * pairsN} WebSocket sessions per side), each with one round trip in flight, for ${ms} ms per repetition; then one pair pacing ${pacedN} round trips at ${PACED_PER_SEC}/s; ${reps} interleaved repetitions after a warm-up.`,
          'A round trip is two relays; server CPU per relay is the serving child\'s own CPU time over the throughput window divided by the relays in it.',
          'The tail server also answers each signal with a reply to its sender ({} or an error), checks the sender\'s handle and its signal rate and byte budgets, and stamps `from`; PeerServer forwards without a reply. PeerJS clients send a HEARTBEAT every 5 s, as its client library does.',
        ],
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      for (const s of [P, R]) {
        await closeAll(many.get(s) ?? []);
        await one.get(s)?.close();
      }
    }
  } finally {
    for (const c of children) await c.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  }
}
