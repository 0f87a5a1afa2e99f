/**
 * Sessions benchmark: what an idle connected client costs the server, and how fast the server
 * admits clients. The project side is the real monolith (child process): each session is a
 * WebSocket that sends `connect` (access token checked: HMAC, expiry, revocation) and
 * `lease`s one log of its user's site as follower. The peer is Socket.IO (child process,
 * bench/peers/socketio-server.ts): each socket connects over WebSocket and `join`s one room,
 * acknowledged. Tokens: a few devices sign up, and each opens many sessions with its access
 * token (a device may hold many sessions). Each side gets a fresh server process per
 * repetition; memory is read after a full GC before and after the sessions are open and
 * idle, and the delta divided by the sessions. Connections come from several loopback
 * addresses, so ephemeral ports never run short.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSite, signup, type Session } from './lib/auth-client.js';
import { scriptPath, startChild, type Child } from './lib/child.js';
import { inParallel } from './lib/closed-loop.js';
import { openSocketIo, openTailSession, type Idle } from './lib/idle-sessions.js';
import { loopbackAddresses, requireOpenFiles } from './lib/loopback.js';
import { row, type BenchOptions, type BenchResult } from './lib/result.js';
import { fmt } from './lib/stats.js';

interface Measured {
  rssKiB: number;
  heapKiB: number;
  setupPerSec: number;
  /** Server RSS with all sessions open, MiB. */
  rssMiB: number;
}

interface Side {
  name: 'project' | 'peer';
  /** Starts a fresh server and returns how to open session i on it. */
  start(): Promise<{ child: Child; open: (i: number, from: string) => Promise<Idle>; cleanup: () => void }>;
}

const DEVICES = 10;
const CONCURRENCY = 64;
const WARM = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const projectSide: Side = {
  name: 'project',
  async start() {
    const dataDir = mkdtempSync(join(tmpdir(), 'dg-bench-sessions-'));
    const child = await startChild(scriptPath('lib/server-child.ts'), [dataDir]);
    const http = `http://127.0.0.1:${child.port}`;
    const url = `ws://127.0.0.1:${child.port}/tail`;
    const owners: { s: Session; site: string }[] = [];
    for (let d = 0; d < DEVICES; d++) {
      const s = await signup(http);
      owners.push({ s, site: await createSite(http, s) });
    }
    return {
      child,
      open: (i, from) => {
        const o = owners[i % DEVICES] as { s: Session; site: string };
        return openTailSession(url, o.s.access, o.site, `idle-${i}`, from);
      },
      cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
    };
  },
};

const peerSide: Side = {
  name: 'peer',
  async start() {
    const child = await startChild(scriptPath('peers/socketio-server.ts'));
    const url = `http://127.0.0.1:${child.port}`;
    return { child, open: (i, from) => openSocketIo(url, `room-${i}`, from), cleanup: () => {} };
  },
};

async function measure(side: Side, n: number, addrs: string[], log: (l: string) => void): Promise<Measured> {
  const { child, open, cleanup } = await side.start();
  const sessions: Idle[] = [];
  try {
    // Warm-up: the same work on a few sessions, closed again, so code is loaded and optimized.
    const warm = await inParallel(WARM, CONCURRENCY, (i) => open(n + i, addrs[i % addrs.length] ?? '127.0.0.1'));
    for (const w of warm) w.close();
    await sleep(500);
    await child.gc();
    const before = await child.usage();
    const t0 = performance.now();
    const opened = await inParallel(n, CONCURRENCY, (i) => open(i, addrs[i % addrs.length] ?? '127.0.0.1'));
    const seconds = (performance.now() - t0) / 1000;
    sessions.push(...opened);
    await sleep(1000);
    await child.gc();
    const after = await child.usage();
    const m: Measured = {
      rssKiB: (after.rss - before.rss) / 1024 / n,
      heapKiB: (after.heapUsed - before.heapUsed) / 1024 / n,
      setupPerSec: n / seconds,
      rssMiB: after.rss / 2 ** 20,
    };
    log(`sessions ${side.name}: ${n} sessions in ${fmt(seconds)} s (${fmt(m.setupPerSec)}/s); +${fmt(m.rssKiB)} KiB RSS, +${fmt(m.heapKiB)} KiB heap per session`);
    return m;
  } finally {
    for (const s of sessions) s.close();
    await sleep(200);
    await child.stop().catch(() => {});
    cleanup();
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const n = opts.quick ? 1000 : 10_000;
  const reps = opts.quick ? 1 : 3;
  requireOpenFiles(n + WARM, 'sessions');
  const addrs = loopbackAddresses(8);
  const P: Measured[] = [];
  const R: Measured[] = [];
  for (let r = 0; r < reps; r++) {
    const order: [Side, Measured[]][] = r % 2 === 0 ? [[projectSide, P], [peerSide, R]] : [[peerSide, R], [projectSide, P]];
    for (const [s, out] of order) out.push(await measure(s, n, addrs, opts.log));
  }
  const pick = (xs: Measured[], k: keyof Measured) => xs.map((m) => m[k]);
  return {
    name: 'sessions',
    title: `Sessions: ${n.toLocaleString('en-US')} idle authenticated clients`,
    project: 'datagrove tail session: connect (token check) + one follower lease',
    peer: 'Socket.IO 4 socket (WebSocket transport) joined to one room',
    quick: opts.quick,
    params: { sessions: n, reps, devices: DEVICES, concurrency: CONCURRENCY, addresses: addrs.length },
    rows: [
      row('server memory per idle session (RSS)', 'KiB', 'lower', pick(P, 'rssKiB'), pick(R, 'rssKiB')),
      row('server memory per idle session (V8 heap)', 'KiB', 'lower', pick(P, 'heapKiB'), pick(R, 'heapKiB')),
      row('session set-up rate', 'sessions/s', 'higher', pick(P, 'setupPerSec'), pick(R, 'setupPerSec')),
    ],
    notes: [
      `${n.toLocaleString('en-US')} sessions per side and repetition, opened ${CONCURRENCY} at a time from ${addrs.length} loopback addresses; a fresh server process per side and repetition; ${reps} repetitions, alternating which side goes first.`,
      `Memory: the server's RSS and V8 heap after a full GC, with the sessions open and idle for 1 s, minus the same after a warm-up of ${WARM} sessions opened and closed; divided by the sessions.`,
      `Project sessions: ${DEVICES} devices (each its own user and site), each opening ${n / DEVICES} sessions with its access token; each session leases its own log. Socket.IO sockets each join their own room.`,
      `Set-up rate: from the first connection to the last acknowledged lease or join, including the WebSocket handshake; server RSS with all sessions open: ${fmt(Math.max(...pick(P, 'rssMiB')))} MiB (project) and ${fmt(Math.max(...pick(R, 'rssMiB')))} MiB (Socket.IO) at most.`,
    ],
    seconds: (performance.now() - t0) / 1000,
  };
}
