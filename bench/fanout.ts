/**
 * Fan-out benchmark: one leader, N followers, the real server as a child process against
 * a bare `ws` relay as a child process (bench/peers/ws-relay.ts), with the same payloads,
 * writes, pipelining window, follower count and client code. The figure that matters is
 * the serving process's own CPU time (user + system) per delivered entry, where delivered
 * entries = entries × followers; its ratio to the relay's must stay ≤ 0.5 (and never
 * exceed 1.0). Deliveries/s and delivery latency come from the same rounds.
 *
 * The same entries are written 1, 10 or 100 to a write (collaborative apps write small
 * entries often), with the client SDK's pipelining window, and 100 to a write one at a time.
 * Both sides receive exactly the same leader messages, one per write.
 * DG_BENCH_PROF=DIR writes a CPU profile of each measured window of each serving process
 * into DIR (for diagnosis only: profiling adds its own cost).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuBetween, scriptPath, startChild, type Child } from './lib/child.js';
import { commitCounts, writesPerCommit } from './lib/commit-metrics.js';
import { fanoutRound, type Pace } from './lib/fanout-round.js';
import { Payload } from './lib/payload.js';
import { row, type BenchOptions, type BenchResult, type Row } from './lib/result.js';
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
  /** Writes per durable commit (project only: the server's commit-group histogram). */
  writesPerCommit: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function measure(target: Target, child: Child, log: string, payload: Payload, window: number, followers: number, pace: Pace): Promise<Measured> {
  const conns = await target.open(log);
  try {
    await sleep(300); // let the connection and lease work finish before the window opens
    const prof = process.env.DG_BENCH_PROF;
    const m0 = target.name === 'project' ? await commitCounts(child.port) : null;
    if (prof !== undefined && prof !== '') await child.profileStart();
    const u0 = await child.usage();
    const c0 = process.cpuUsage();
    const s = await fanoutRound(conns.leader, conns.followers, payload, window, pace);
    const u1 = await child.usage();
    if (prof !== undefined && prof !== '') await child.profileStop(join(prof, `fanout-${target.name}-${log}.cpuprofile`));
    const c1 = process.cpuUsage(c0);
    const m1 = m0 === null ? null : await commitCounts(child.port);
    return {
      cpuPerDelivery: cpuBetween(u0, u1) / s.deliveries,
      deliveriesPerSec: s.deliveries / s.seconds,
      p50: s.latency.q(0.5),
      p99: s.latency.q(0.99),
      rssMiB: u1.rss / 2 ** 20,
      clientCpuPerDelivery: (c1.user + c1.system) / s.deliveries,
      pushedShare: s.frames === 0 ? 0 : s.pushed / s.frames,
      framesPerFollower: s.frames / followers,
      writesPerCommit: m0 === null || m1 === null ? Number.NaN : writesPerCommit(m0, m1),
    };
  } finally {
    await conns.close();
  }
}

interface Scenario {
  /** Entries per write. */
  perWrite: number;
  /** Writes in flight end to end (sent but not yet delivered to every follower). */
  window: number;
  label: string;
}

/**
 * Writes the client SDK keeps in flight (MAX_INFLIGHT in src/client/log-sequencer.ts).
 * Here a write counts until every follower has it, a little stricter than the SDK's
 * "until acked" (a follower gets a write about when the leader gets its ack).
 */
const SDK_WINDOW = 4;

/**
 * The write size at the SDK's pipelining (the server can merge writes committed together
 * into fewer, larger events), and one write of 100 at a time (no merging possible: the
 * same one frame per write per follower as the relay), the worst case.
 */
function scenarios(quick: boolean): Scenario[] {
  const sizes = quick ? [10, 100] : [1, 10, 100];
  const out: Scenario[] = sizes.map((n) => ({ perWrite: n, window: SDK_WINDOW, label: `${n} per write, ${SDK_WINDOW} in flight` }));
  out.push({ perWrite: 100, window: 1, label: '100 per write, 1 in flight' });
  return out;
}

/**
 * The tail service lets a session send 2 000 operations a second (burst 4 000: limits.ts);
 * the leader keeps a little inside that, on both sides, so no write is refused.
 */
const PACE: Pace = { perSec: 1900, burst: 3000 };

/** Fewest writes in a warm-up round. */
const WARM_WRITES = 4000;

/** The warm-up payload: the scenario's, or a longer one of the same writes when that is short. */
function warmPayload(payload: Payload, perWrite: number): Payload {
  if (payload.batches >= WARM_WRITES) return payload;
  return new Payload(WARM_WRITES * perWrite, payload.entryBytes, perWrite);
}

/**
 * Repetitions of a scenario: FULL_REPS, or SHORT_REPS when a round has fewer than
 * SHORT_ROUND_WRITES writes (a fraction of a second each, where the shared machine's
 * noise weighs most).
 */
const FULL_REPS = 5;
const SHORT_REPS = 11;
const SHORT_ROUND_WRITES = 2000;
function defaultReps(payload: Payload): number {
  return payload.batches < SHORT_ROUND_WRITES ? SHORT_REPS : FULL_REPS;
}

/** How many repetitions and what warm-up the run had, for its notes. */
function repsNote(quick: boolean, repsOverride: number): string {
  if (quick) return `${repsOverride} repetition per scenario after one warm-up round of the same size (quick: a smoke check).`;
  const reps = repsOverride
    ? `${repsOverride} interleaved repetitions per scenario`
    : `${FULL_REPS} interleaved repetitions per scenario (${SHORT_REPS} when a round has fewer than ${SHORT_ROUND_WRITES} writes)`;
  return `${reps} after one warm-up round each of at least ${WARM_WRITES} writes.`;
}

async function scenario(
  sc: Scenario,
  sides: { project: Target; peer: Target; server: Child; relay: Child },
  payload: Payload,
  warm: Payload,
  reps: number,
  followers: number,
  log: (line: string) => void,
): Promise<{ P: Measured[]; R: Measured[] }> {
  const { project, peer, server, relay } = sides;
  const key = `e${sc.perWrite}w${sc.window}`;
  // Warm-up: one round on each side, not measured, of at least WARM_WRITES writes, so both
  // run optimized code (with 200 writes of 100 entries, the server's per-write code was
  // still being optimized during the measured rounds).
  await measure(project, server, `fan-${key}-warm`, warm, sc.window, followers, PACE);
  await measure(peer, relay, `fan-${key}-warm`, warm, sc.window, followers, PACE);
  const P: Measured[] = [];
  const R: Measured[] = [];
  for (let r = 0; r < reps; r++) {
    // Interleave and alternate the order, so drifts of the shared machine hit both sides.
    const order: [Target, Child, Measured[]][] = [
      [project, server, P],
      [peer, relay, R],
    ];
    if (r % 2 === 1) order.reverse();
    for (const [t, c, out] of order) out.push(await measure(t, c, `fan-${key}-${r}`, payload, sc.window, followers, PACE));
    const p = P.at(-1);
    const q = R.at(-1);
    if (p !== undefined && q !== undefined) {
      log(`fanout ${sc.label}, rep ${r + 1}/${reps}: CPU/delivery ${fmt(p.cpuPerDelivery)} vs ${fmt(q.cpuPerDelivery)} µs (ratio ${fmt(p.cpuPerDelivery / q.cpuPerDelivery)}); ` +
        `${fmt(p.deliveriesPerSec)} vs ${fmt(q.deliveriesPerSec)} deliveries/s; p50 ${fmt(p.p50)} vs ${fmt(q.p50)} ms; ${fmt(p.framesPerFollower)} vs ${fmt(q.framesPerFollower)} frames/follower; ${fmt(p.writesPerCommit)} writes/commit`);
    }
  }
  return { P, R };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const followers = opts.quick ? 20 : 50;
  const entries = opts.quick ? 4000 : 20_000;
  const repsOverride = Number(process.env.DG_BENCH_FANOUT_REPS ?? '') || (opts.quick ? 1 : 0); // the variable: diagnosis only
  const reps = repsOverride || FULL_REPS;
  const entryBytes = 100;
  const only = process.env.DG_BENCH_FANOUT_ONLY; // diagnosis: e.g. "1" runs only 1 entry per write
  const all = scenarios(opts.quick).filter((sc) => only === undefined || only === '' || only.split(',').includes(String(sc.perWrite)));

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
    const maxEntries = probe.maxEntries ?? Number.POSITIVE_INFINITY;
    for (const sc of all) if (sc.perWrite > maxEntries) throw new Error(`the server takes at most ${maxEntries} entries per write, the benchmark writes ${sc.perWrite}`);

    const rows: Row[] = [];
    const notes = [
      `${followers} followers, ${entries} entries of ${entryBytes} B in writes of 1, 10 or 100 entries; a window of W writes means at most W writes not yet delivered to every follower ` +
        `(W = ${SDK_WINDOW} is what the client SDK keeps in flight); ${repsNote(opts.quick, repsOverride)}`,
      `The leader keeps to ${PACE.perSec} writes/s (burst ${PACE.burst}) on both sides, inside the server's limit of 2 000 operations/s per session.`,
      'CPU is the serving child process\'s own user+system time (process.cpuUsage over IPC) from the first write to the last delivery; set-up (sign-up, connect, lease) is outside the window.',
    ];
    const pick = (xs: Measured[], k: keyof Measured) => xs.map((m) => m[k]);
    for (const sc of all) {
      const payload = new Payload(entries, entryBytes, sc.perWrite);
      // A quick run warms up with the scenario's own payload.
      const warm = opts.quick ? payload : warmPayload(payload, sc.perWrite);
      const { P, R } = await scenario(sc, { project, peer, server, relay }, payload, warm, repsOverride || defaultReps(payload), followers, opts.log);
      const cpuRow = row(`server CPU per delivered entry, ${sc.label}`, 'µs', 'lower', pick(P, 'cpuPerDelivery'), pick(R, 'cpuPerDelivery'), {
        text: '≤ 0.5',
        test: (x) => x <= 0.5,
      });
      rows.push(
        cpuRow,
        row(`deliveries per second, ${sc.label}`, 'entries/s', 'higher', pick(P, 'deliveriesPerSec'), pick(R, 'deliveriesPerSec')),
        row(`delivery latency p50, ${sc.label}`, 'ms', 'lower', pick(P, 'p50'), pick(R, 'p50')),
        row(`delivery latency p99, ${sc.label}`, 'ms', 'lower', pick(P, 'p99'), pick(R, 'p99')),
      );
      if (cpuRow.ratio > 1) notes.push(`${sc.label}: the project used MORE CPU per delivered entry than the bare relay (ratio ${fmt(cpuRow.ratio)} > 1.0).`);
      notes.push(
        `${sc.label}: frames per follower ${fmt(median(pick(P, 'framesPerFollower')))} (project) vs ${fmt(median(pick(R, 'framesPerFollower')))} (peer); ` +
          `${fmt(median(pick(P, 'writesPerCommit')))} writes per durable commit; ${fmt(median(pick(P, 'pushedShare')) * 100)}% of project frames carried their entries (the rest needed a read); ` +
          `clients used ${fmt(median(pick(P, 'clientCpuPerDelivery')))} vs ${fmt(median(pick(R, 'clientCpuPerDelivery')))} µs of CPU per delivered entry (they share the 2 cores); ` +
          `serving RSS ${fmt(median(pick(P, 'rssMiB')))} vs ${fmt(median(pick(R, 'rssMiB')))} MiB; ` +
          `CPU ratio per repetition ${cpuRow.projectRuns?.map((x, i) => fmt(x / (cpuRow.peerRuns?.[i] ?? Number.NaN))).join(', ')}.`,
      );
    }
    return {
      name: 'fanout',
      title: `Fan-out: 1 leader, ${followers} followers, ${entries} × ${entryBytes} B entries`,
      project: 'datagrove server (tail over WebSocket, SQLite, acked durable writes)',
      peer: 'bare ws relay (parse + send to every other client; no auth, no durability)',
      quick: opts.quick,
      params: { followers, entries, entryBytes, reps, scenarios: all.map((sc) => `${sc.perWrite}x${sc.window}`).join(','), paceWritesPerSec: PACE.perSec },
      rows,
      notes,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of children) await c.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  }
}
