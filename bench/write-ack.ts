/**
 * Write-ack latency: a steady 5 000 writes/s (one 100-byte entry each, spread over several
 * leaders so no session exceeds its own rate limit) through the real server as a child
 * process, paired with the floor: raw better-sqlite3 inserts (WAL, synchronous=FULL) fed by
 * the same schedule and committed in the same bursts (bench/peers/sqlite-floor.ts).
 * Latency runs from each write's due time to its durable ack (to the commit, for the floor).
 * DG_BENCH_PROF=DIR writes a CPU profile of each measured server window into DIR.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSite, signup, type Session } from './lib/auth-client.js';
import { cpuBetween, scriptPath, startChild, type Child } from './lib/child.js';
import { commitCounts, writesPerCommit } from './lib/commit-metrics.js';
import type { Conn } from './lib/fanout-round.js';
import { row, type BenchOptions, type BenchResult } from './lib/result.js';
import { runSchedule } from './lib/schedule.js';
import { fmt, median, Samples } from './lib/stats.js';
import { connectTail } from './lib/targets.js';
import { openFloor } from './peers/sqlite-floor.js';

interface Measured {
  p50: number;
  p99: number;
  /** Writes acked per second over the run (the schedule asks for `rate`). */
  rate: number;
  /** Mean writes of one log committed together (per store transaction and log). */
  perCommit: number;
  /** Serving CPU µs per write (project only; the floor's is the bench process's). */
  cpuPerWrite: number;
}

const ACK_TIMEOUT_MS = 60_000;

async function measureProject(child: Child, conns: Conn[], rate: number, seconds: number, entry: string, profile: string | null): Promise<Measured> {
  const lat = new Samples();
  let acked = 0;
  let failure: Error | null = null;
  const m0 = await commitCounts(child.port);
  if (profile !== null) await child.profileStart();
  const u0 = await child.usage();
  const t0 = performance.now();
  const total = await runSchedule(rate, conns.length, seconds, (burst) => {
    for (const d of burst) {
      const c = conns[d.writer];
      if (c === undefined) continue;
      c.client.send('write', { handle: c.handle, at: d.n, entries: [entry], wid: `a${d.n}` }).then(
        (r) => {
          if (r.error !== undefined || r.length !== d.n + 1) failure ??= new Error(`write ${d.n} of writer ${d.writer} answered ${JSON.stringify(r).slice(0, 200)}`);
          lat.add(performance.now() - d.at);
          acked++;
        },
        (e: unknown) => (failure ??= e instanceof Error ? e : new Error(String(e))),
      );
    }
  });
  const deadline = performance.now() + ACK_TIMEOUT_MS;
  while (acked < total && failure === null && performance.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  if (failure !== null) throw failure;
  if (acked < total) throw new Error(`only ${acked} of ${total} writes acked`);
  const elapsed = (performance.now() - t0) / 1000;
  const u1 = await child.usage();
  if (profile !== null) await child.profileStop(profile);
  const m1 = await commitCounts(child.port);
  return {
    p50: lat.q(0.5),
    p99: lat.q(0.99),
    rate: total / elapsed,
    perCommit: writesPerCommit(m0, m1),
    cpuPerWrite: cpuBetween(u0, u1) / total,
  };
}

async function measureFloor(dir: string, name: string, writers: number, rate: number, seconds: number, entry: Buffer): Promise<Measured> {
  const floor = openFloor(dir, name, writers);
  try {
    const lat = new Samples();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const total = await runSchedule(rate, writers, seconds, (burst) => {
      floor.commit(burst, entry);
      const now = performance.now();
      for (const d of burst) lat.add(now - d.at);
    });
    const elapsed = (performance.now() - t0) / 1000;
    const c1 = process.cpuUsage(c0);
    return { p50: lat.q(0.5), p99: lat.q(0.99), rate: total / elapsed, perCommit: floor.writes / floor.logCommits, cpuPerWrite: (c1.user + c1.system) / total };
  } finally {
    floor.close();
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const rate = 5000;
  const seconds = opts.quick ? 3 : 10;
  const reps = opts.quick ? 1 : 5;
  // The tail service limits each session to 2 000 ops/s; 5 leaders at 1 000 writes/s each stay well inside it.
  const writers = 5;
  const entryBytes = 100;
  const raw = randomBytes(entryBytes);
  const entry = raw.toString('base64url');

  const dataDir = mkdtempSync(join(tmpdir(), 'dg-bench-ack-'));
  const floorDir = mkdtempSync(join(tmpdir(), 'dg-bench-floor-'));
  let server: Child | null = null;
  try {
    server = await startChild(scriptPath('lib/server-child.ts'), [dataDir]);
    const http = `http://127.0.0.1:${server.port}`;
    const url = `ws://127.0.0.1:${server.port}/tail`;
    const owners: { s: Session; site: string }[] = [];
    for (let w = 0; w < writers; w++) {
      const s = await signup(http);
      owners.push({ s, site: await createSite(http, s) });
    }
    const open = async (log: string): Promise<Conn[]> => Promise.all(owners.map(async (o) => (await connectTail(url, o.s.access, o.site, log, true)).conn));
    const project = async (log: string, secs: number): Promise<Measured> => {
      const conns = await open(log);
      try {
        await new Promise((r) => setTimeout(r, 200));
        const prof = process.env.DG_BENCH_PROF;
        const path = prof === undefined || prof === '' ? null : join(prof, `write-ack-${log}.cpuprofile`);
        return await measureProject(server as Child, conns, rate, secs, entry, path);
      } finally {
        await Promise.all(conns.map((c) => c.client.close()));
      }
    };

    // Warm-up, not measured.
    await project('ack-warm', 1);
    await measureFloor(floorDir, 'warm', writers, rate, 1, raw);

    const P: Measured[] = [];
    const F: Measured[] = [];
    for (let r = 0; r < reps; r++) {
      const runs: [() => Promise<Measured>, Measured[]][] = [
        [() => project(`ack-${r}`, seconds), P],
        [() => measureFloor(floorDir, `floor-${r}`, writers, rate, seconds, raw), F],
      ];
      if (r % 2 === 1) runs.reverse();
      for (const [f, out] of runs) out.push(await f());
      const p = P.at(-1);
      const q = F.at(-1);
      if (p !== undefined && q !== undefined) {
        opts.log(`write-ack rep ${r + 1}/${reps}: p50 ${fmt(p.p50)} vs ${fmt(q.p50)} ms, p99 ${fmt(p.p99)} vs ${fmt(q.p99)} ms; ${fmt(p.rate)} vs ${fmt(q.rate)} writes/s; ${fmt(p.perCommit)} vs ${fmt(q.perCommit)} writes/commit`);
      }
    }
    const pick = (xs: Measured[], k: keyof Measured) => xs.map((m) => m[k]);
    return {
      name: 'write-ack',
      title: `Write-ack latency at ${rate.toLocaleString('en-US')} writes/s`,
      project: 'datagrove server: write → durable ack over WebSocket (group commit, SQLite FULL)',
      peer: 'floor: raw better-sqlite3 inserts, same schedule and bursts, WAL + synchronous=FULL',
      quick: opts.quick,
      params: { rate, seconds, reps, writers, entryBytes },
      rows: [
        row('write-ack latency p50', 'ms', 'lower', pick(P, 'p50'), pick(F, 'p50')),
        row('write-ack latency p99', 'ms', 'lower', pick(P, 'p99'), pick(F, 'p99')),
        row('writes acked per second', 'writes/s', 'higher', pick(P, 'rate'), pick(F, 'rate')),
        row('writes per commit, per log', 'writes', 'higher', pick(P, 'perCommit'), pick(F, 'perCommit')),
      ],
      notes: [
        `${writers} leaders (one log each) at ${rate / writers} writes/s each, one ${entryBytes}-byte entry per write with a write id; ${seconds} s per run; ${reps} interleaved repetitions after a 1 s warm-up each.`,
        'Latency is measured from each write\'s due time on the schedule, so time a write waited to be sent counts against it, on both sides.',
        'Writes per commit, per log: for the server, the datagrove_tail_commit_batch_writes histogram (writes of one log committed together); for the floor, writes per (transaction, log).',
        `Server CPU per write: ${fmt(median(pick(P, 'cpuPerWrite')))} µs (the floor spent ${fmt(median(pick(F, 'cpuPerWrite')))} µs per write in one process, scheduler included).`,
      ],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await server?.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(floorDir, { recursive: true, force: true });
  }
}
