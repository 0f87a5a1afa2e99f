/**
 * Auth benchmark: the credential work of the auth service through its real HTTP API (the
 * monolith as a child process), each paired with a peer measured in the same run:
 * - logins (challenge + Ed25519 signature + POST /login, from many devices and loopback
 *   addresses, as many clients would) against a bare fastify route pair doing one
 *   node:crypto Ed25519 verify with an in-memory nonce (bench/peers/fastify-auth.ts);
 * - lease tokens (POST /auth/v1/lease) against a bare fastify route that verifies an HS256
 *   bearer and signs an HS256 lease with jose;
 * - grant-chain verification by depth: the project's grant-chain module called directly
 *   (one signature check of the leaf, then the chain read from the auth store) against the
 *   stateless way (every link's EdDSA signature verified with jose), depths 1..8; and
 *   POST /auth/v1/join end to end against the peer's /chain route, depths 1, 4 and 8.
 * Server CPU per operation is the child's own process.cpuUsage over the measured window.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { openSqliteAuthStore } from '../src/auth/index.js';
import { linkOfParsed, verifyChain } from '../src/auth/grant-chain.js';
import { parseGrant } from '../src/auth/grant.js';
import { newDevice } from './lib/auth-client.js';
import { buildChain, proveAndEnter, type Signed } from './lib/auth-load.js';
import { cpuBetween, scriptPath, startChild, type Child } from './lib/child.js';
import { closedLoop, inParallel, type LoopResult } from './lib/closed-loop.js';
import { JsonHttp } from './lib/http-json.js';
import { loopbackAddresses } from './lib/loopback.js';
import { row, type BenchOptions, type BenchResult, type Row } from './lib/result.js';
import { fmt } from './lib/stats.js';
import { verifyStatelessChain } from './peers/stateless-chain.js';

const PREFIX = '/auth/v1';
/** The server allows 10 logins per device per minute: stay under it. */
const LOGINS_PER_DEVICE = 9;
/** ... and 200 logins per client address per minute. */
const LOGINS_PER_ADDRESS = 180;
const HTTP_DEPTHS = [1, 4, 8];
const DEPTHS = [1, 2, 3, 4, 5, 6, 7, 8];

interface Side {
  name: 'project' | 'peer';
  child: Child;
  http: JsonHttp;
}

/** Runs a closed loop and the server CPU it cost, in µs per operation. */
async function measured(side: Side, loop: () => Promise<LoopResult>): Promise<{ r: LoopResult; cpuPerOp: number }> {
  const u0 = await side.child.usage();
  const r = await loop();
  const u1 = await side.child.usage();
  return { r, cpuPerOp: cpuBetween(u0, u1) / Math.max(1, r.ops) };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const quick = opts.quick;
  const reps = quick ? 2 : 5;
  const loginCap = quick ? 150 : 1000;
  const leaseMs = quick ? 500 : 2000;
  const joinOps = quick ? 30 : 150;
  const chainMs = quick ? 150 : 500;
  const concurrency = 16;
  // Budget of single-use login slots: every device and address stays within the server's limits.
  const totalLogins = (reps + 1) * loginCap;
  const deviceCount = Math.ceil(totalLogins / LOGINS_PER_DEVICE);
  const addrs = loopbackAddresses(Math.min(250, Math.max(8, Math.ceil(totalLogins / LOGINS_PER_ADDRESS))));

  const dataDir = mkdtempSync(join(tmpdir(), 'dg-bench-auth-'));
  const secret = randomBytes(32);
  const children: Child[] = [];
  const https: JsonHttp[] = [];
  try {
    const server = await startChild(scriptPath('lib/server-child.ts'), [dataDir]);
    children.push(server);
    const peer = await startChild(scriptPath('peers/fastify-auth.ts'), [secret.toString('base64url')]);
    children.push(peer);
    const P: Side = { name: 'project', child: server, http: new JsonHttp(server.port) };
    const R: Side = { name: 'peer', child: peer, http: new JsonHttp(peer.port) };
    https.push(P.http, R.http);

    // Set-up: devices for logins, an owner with a site, and 8 users for a chain of 8 grants.
    opts.log(`auth: server pid ${server.pid}, peer pid ${peer.pid}; signing up ${deviceCount + 9} devices from ${addrs.length} loopback addresses`);
    const devices = Array.from({ length: deviceCount }, () => newDevice());
    await inParallel(deviceCount, 8, (i) => proveAndEnter(P.http, PREFIX, 'signup', devices[i] ?? newDevice(), addrs[i % addrs.length]));
    const people: Signed[] = await inParallel(9, 4, (i) => proveAndEnter(P.http, PREFIX, 'signup', newDevice(), addrs[i % addrs.length]));
    const owner = people[0] as Signed;
    const users = people.slice(1);
    const { site } = await P.http.ok<{ site: string }>(`${PREFIX}/sites`, {}, { bearer: owner.access });
    const chain8 = await buildChain(owner, users, site, 8);
    // Declare root first: each grant's proof must already be declared.
    for (let k = 8; k >= 1; k--) {
      const issuer = k === 8 ? owner : (users[7 - k] as Signed);
      await P.http.ok(`${PREFIX}/declare`, { grant: chain8[k - 1] }, { bearer: issuer.access });
    }
    const chainOf = (d: number) => chain8.slice(8 - d);
    const peerAccess = await new SignJWT({ typ: 'access', dev: owner.device.id, fam: 'f_peer' })
      .setProtectedHeader({ alg: 'HS256', kid: 'peer' })
      .setSubject(owner.user)
      .setIssuedAt()
      .setExpirationTime('15m')
      .sign(secret);
    const store = openSqliteAuthStore(join(dataDir, 'auth.db'));

    let nextLogin = 0;
    // A fixed number of logins per repetition on both sides (the time bound only stops a stall).
    const login = (side: Side, cap: number) =>
      measured(side, () =>
        closedLoop({
          concurrency,
          durationMs: 120_000,
          maxOps: cap,
          op: async () => {
            const g = side.name === 'project' ? nextLogin++ : Math.floor(Math.random() * deviceCount);
            if (g >= deviceCount * LOGINS_PER_DEVICE) throw new Error('auth: login budget exhausted');
            const device = devices[g % deviceCount] ?? newDevice();
            await proveAndEnter(side.http, side.name === 'project' ? PREFIX : '', 'login', device, addrs[g % addrs.length]);
          },
        }),
      );
    const lease = (side: Side, ms: number) =>
      measured(side, () =>
        closedLoop({
          concurrency,
          durationMs: ms,
          op: async (i) => {
            const path = side.name === 'project' ? `${PREFIX}/lease` : '/lease';
            const bearer = side.name === 'project' ? owner.access : peerAccess;
            await side.http.ok(path, { site, log: `log-${i % 64}` }, { bearer, from: addrs[i % addrs.length] });
          },
        }),
      );
    const joinHttp = (side: Side, depth: number, ops: number) =>
      closedLoop({
        concurrency: 1,
        durationMs: 60_000,
        maxOps: ops,
        op: async () => {
          if (side.name === 'project') await side.http.ok(`${PREFIX}/join`, { site, grant: chainOf(depth)[0] }, { bearer: (users[depth - 1] as Signed).access });
          else await side.http.ok('/chain', { chain: chainOf(depth) });
        },
      });
    const chainProject = async (depth: number) => {
      const g = parseGrant(chainOf(depth)[0] ?? '');
      if (!g.ok) throw new Error(g.message);
      const v = await verifyChain(store, linkOfParsed(g.grant), Math.floor(Date.now() / 1000));
      if (!v.ok || v.chain.grants.length !== depth) throw new Error(`chain of ${depth}: ${v.ok ? v.chain.grants.length : v.message}`);
    };
    const chainInProcess = (side: Side, depth: number, ms: number) =>
      closedLoop({ concurrency: 1, durationMs: ms, op: () => (side.name === 'project' ? chainProject(depth) : verifyStatelessChain(chainOf(depth))) });

    // Warm-up of every path on both sides, not measured.
    for (const s of [P, R]) {
      await login(s, 30);
      await lease(s, 300);
      for (const d of HTTP_DEPTHS) await joinHttp(s, d, 10);
      for (const d of DEPTHS) await chainInProcess(s, d, 50);
    }

    const runs = {
      loginRate: [[], []] as number[][],
      loginCpu: [[], []] as number[][],
      leaseRate: [[], []] as number[][],
      leaseCpu: [[], []] as number[][],
      join: new Map<number, number[][]>(HTTP_DEPTHS.map((d) => [d, [[], []]])),
      chain: new Map<number, number[][]>(DEPTHS.map((d) => [d, [[], []]])),
    };
    for (let r = 0; r < reps; r++) {
      const order: [Side, number][] = r % 2 === 0 ? [[P, 0], [R, 1]] : [[R, 1], [P, 0]];
      for (const [s, k] of order) {
        const l = await login(s, loginCap);
        runs.loginRate[k]?.push(l.r.rate);
        runs.loginCpu[k]?.push(l.cpuPerOp);
      }
      for (const [s, k] of order) {
        const l = await lease(s, leaseMs);
        runs.leaseRate[k]?.push(l.r.rate);
        runs.leaseCpu[k]?.push(l.cpuPerOp);
      }
      for (const d of HTTP_DEPTHS) for (const [s, k] of order) runs.join.get(d)?.[k]?.push((await joinHttp(s, d, joinOps)).latency.q(0.5));
      for (const d of DEPTHS) for (const [s, k] of order) runs.chain.get(d)?.[k]?.push(1e6 / (await chainInProcess(s, d, chainMs)).rate);
      const c = (x: number[][] | undefined) => `${fmt(x?.[0]?.at(-1) ?? NaN)} vs ${fmt(x?.[1]?.at(-1) ?? NaN)}`;
      opts.log(`auth rep ${r + 1}/${reps}: logins/s ${c(runs.loginRate)}, CPU/login ${c(runs.loginCpu)} µs; leases/s ${c(runs.leaseRate)}; ` +
        `join depth 8 ${c(runs.join.get(8))} ms; chain depth 8 ${c(runs.chain.get(8))} µs`);
    }
    await store.close();

    const rows: Row[] = [
      row('logins per second (challenge + signature + login)', 'logins/s', 'higher', runs.loginRate[0] ?? [], runs.loginRate[1] ?? []),
      row('server CPU per login', 'µs', 'lower', runs.loginCpu[0] ?? [], runs.loginCpu[1] ?? []),
      row('lease tokens per second', 'tokens/s', 'higher', runs.leaseRate[0] ?? [], runs.leaseRate[1] ?? []),
      row('server CPU per lease token', 'µs', 'lower', runs.leaseCpu[0] ?? [], runs.leaseCpu[1] ?? []),
      ...DEPTHS.map((d) => row(`grant-chain verification, depth ${d}`, 'µs', 'lower', runs.chain.get(d)?.[0] ?? [], runs.chain.get(d)?.[1] ?? [])),
      ...HTTP_DEPTHS.map((d) => row(`POST /join latency p50, chain depth ${d}`, 'ms', 'lower', runs.join.get(d)?.[0] ?? [], runs.join.get(d)?.[1] ?? [])),
    ];
    return {
      name: 'auth',
      title: 'Auth: logins, lease tokens, grant chains',
      project: 'datagrove auth (fastify, SQLite, rate limits, durable nonces and sessions)',
      peer: 'bare fastify routes: node:crypto Ed25519 login, jose HS256 lease, jose chain check',
      quick,
      params: { reps, loginsPerRep: loginCap, leaseMs, joinOps, chainMs, concurrency, devices: deviceCount, addresses: addrs.length },
      rows,
      notes: [
        `${concurrency} concurrent clients for logins and leases (closed loop; a login is two requests: challenge and login), ${reps} interleaved repetitions of ${loginCap} logins and of ${leaseMs} ms of leases; ` +
          `logins come from ${deviceCount} devices and ${addrs.length} loopback addresses so that no device or address reaches the server's per-minute limits (10 logins per device, 200 per address).`,
        'A project login writes a nonce (challenge) and then takes it and writes a refresh family and token (login), each a SQLite transaction with synchronous=FULL; it answers with HMAC access and refresh tokens. The peer keeps nonces in a Map and answers {ok:true} after one Ed25519 verify.',
        'Grant-chain verification in process: the project parses the leaf (one Ed25519 verify) and walks its proofs in the auth store (verifyChain); the peer verifies every link\'s EdDSA signature with jose and checks each proof hash. Single thread, one verification at a time.',
        `POST /join: one client, one request at a time, ${joinOps} per depth per repetition; the project also records the access (a SQLite write); the peer is handed the whole chain.`,
      ],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const h of https) h.close();
    for (const c of children) await c.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  }
}
