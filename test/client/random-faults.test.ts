/**
 * Random faults under the client SDK (fast-check): three writers on three devices append to
 * one log, without waiting, while their sockets are cut or stalled (frames from the server
 * held, then delivered in a burst), logs are closed and opened again, and the server
 * restarts on the same port and data; access tokens live 3 s, so reconnects need refreshed
 * ones. Followers' appends reach the leader through the server's relay, or (second test)
 * over WebRTC data channels (werift). Each sequence starts on a new log.
 *
 * What must hold after every sequence, once every append has settled (none may hang):
 * every acknowledged payload is in the log exactly once, at the index its append gave; no
 * payload is there twice (an append that failed may or may not be there, never twice);
 * each `Log`'s own appends are in the log in the order it made them; and every subscriber,
 * closed ones included, saw the log from index 0 in order with no gap (the live ones all of
 * it).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Log, LogEntry } from '../../src/client/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { enc, filterMessages, makeClient, sharedSite, stall, waitFor, type Stallable, type TestClient } from './harness.js';

const WRITERS = 3;
const GRACE_MS = 300;
/** Access tokens live 3 s: reconnects after faults need refreshed ones. */
const ACCESS_TTL_SEC = 3;
/** How long every append of a sequence may take to settle after its last fault. */
const SETTLE_MS = 60_000;
/** DG_FAULTS_RUNS (diagnosis): more sequences than a test run takes. */
const RUNS = Number(process.env.DG_FAULTS_RUNS ?? '') || undefined;

type Fault =
  | { kind: 'append'; writer: number; count: number }
  | { kind: 'cut'; writer: number }
  | { kind: 'stall'; writer: number; ms: number }
  | { kind: 'reopen'; writer: number }
  | { kind: 'restart' }
  | { kind: 'pause'; ms: number };

/** One `Log` instance: what its subscriber saw and what it appended, in call order. */
interface Opened {
  log: Log;
  seen: LogEntry[];
  appended: string[];
  closed: boolean;
}

interface World {
  srv: TestServer;
  port: number;
  dataDir: string;
  site: string;
  writers: TestClient[];
  links: Stallable[];
  /** A client of its own device that reads the log at the end (a client has one Log per log). */
  reader: TestClient;
}

const text = (e: LogEntry) => new TextDecoder().decode(e.payload);

function open(c: TestClient, site: string, name: string): Opened {
  const log = c.client.openLog(site, name);
  const o: Opened = { log, seen: [], appended: [], closed: false };
  log.subscribe((entries) => o.seen.push(...entries));
  // A log that fails for good is checked like a closed one (its appends have settled).
  log.opened.catch(() => undefined);
  return o;
}

const fault: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('append' as const), writer: fc.integer({ min: 0, max: WRITERS - 1 }), count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), writer: fc.integer({ min: 0, max: WRITERS - 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('stall' as const), writer: fc.integer({ min: 0, max: WRITERS - 1 }), ms: fc.integer({ min: 50, max: 1500 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const), writer: fc.integer({ min: 0, max: WRITERS - 1 }) }) },
  { weight: 1, arbitrary: fc.constant<Fault>({ kind: 'restart' }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('pause' as const), ms: fc.integer({ min: 0, max: 400 }) }) },
);

async function runSequence(w: World, faults: Fault[]): Promise<void> {
  const name = `faults-${Math.random().toString(36).slice(2, 10)}`;
  const opened: Opened[] = [];
  const current: Opened[] = [];
  for (let i = 0; i < WRITERS; i++) {
    const o = open(w.writers[i] as TestClient, w.site, name);
    opened.push(o);
    current.push(o);
  }
  const acked = new Map<string, number>();
  const settling: Promise<unknown>[] = [];
  let n = 0;
  for (const f of faults) {
    switch (f.kind) {
      case 'append': {
        const o = current[f.writer] as Opened;
        const payloads = Array.from({ length: f.count }, () => `${name}/${f.writer}/${n++}`);
        o.appended.push(...payloads);
        settling.push(
          o.log.append(payloads.map(enc)).then(
            (indexes) => payloads.forEach((p, i) => acked.set(p, indexes[i] as number)),
            () => undefined,
          ),
        );
        break;
      }
      case 'cut':
        (w.writers[f.writer] as TestClient).cut();
        break;
      case 'stall':
        stall(w.links[f.writer] as Stallable, f.ms);
        break;
      case 'reopen': {
        const old = current[f.writer] as Opened;
        old.closed = true;
        await old.log.close();
        const o = open(w.writers[f.writer] as TestClient, w.site, name);
        opened.push(o);
        current[f.writer] = o;
        break;
      }
      case 'restart':
        await w.srv.stop();
        w.srv = await startServer({ port: w.port, dataDir: w.dataDir, leaseGraceMs: GRACE_MS, accessTtlSec: ACCESS_TTL_SEC });
        break;
      case 'pause':
        await new Promise((r) => setTimeout(r, f.ms));
        break;
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`appends did not settle within ${SETTLE_MS} ms`)), SETTLE_MS);
  });
  try {
    await Promise.race([Promise.all(settling), hung]);
  } finally {
    clearTimeout(timer);
  }

  // The log as a new reader finds it.
  const reader = open(w.reader, w.site, name);
  try {
    await reader.log.opened;
    const all = reader.seen.map(text);
    reader.seen.forEach((e, i) => assert.equal(e.index, i, 'the reader saw the log in order'));
    const counts = new Map<string, number>();
    for (const t of all) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [t, c] of counts) assert.equal(c, 1, `${t} is in the log ${c} times`);
    for (const [p, i] of acked) assert.equal(all[i], p, `acknowledged ${p} is at index ${i}`);
    for (const o of opened) {
      const at = o.appended.map((p) => all.indexOf(p)).filter((i) => i >= 0);
      assert.deepEqual(at, [...at].sort((a, b) => a - b), "a Log's appends are in the log in the order it made them");
      if (!o.closed && o.log.state !== 'closed') {
        await waitFor(`a live subscriber to see all ${all.length} entries`, () => o.seen.length >= all.length);
      }
      assert.deepEqual(
        o.seen.map((e) => `${e.index}:${text(e)}`),
        all.slice(0, o.seen.length).map((t, i) => `${i}:${t}`),
        'every subscriber saw the log from 0 in order with no gap',
      );
    }
  } finally {
    await reader.log.close();
    for (const o of current) await o.log.close();
  }
}

async function faults(rtc: boolean, runs: number): Promise<void> {
  const first = await startServer({ leaseGraceMs: GRACE_MS, accessTtlSec: ACCESS_TTL_SEC });
  const port = Number(new URL(first.url).port);
  const links: Stallable[] = [];
  const writers: TestClient[] = [];
  for (let i = 0; i < WRITERS; i++) {
    const link: Stallable = { held: null };
    links.push(link);
    writers.push(
      await makeClient(first, {
        rtc,
        socket: (Tracked) =>
          class StallableSocket extends Tracked {
            constructor(url: string, protocols?: string | string[]) {
              super(url, protocols);
              filterMessages(this, (ev, deliver) => (link.held === null ? deliver(ev) : link.held.push(() => deliver(ev))));
            }
          },
      }),
    );
  }
  const reader = await makeClient(first);
  const site = await sharedSite(writers[0] as TestClient, [...writers.slice(1), reader]);
  const w: World = { srv: first, port, dataDir: first.dataDir, site, writers, links, reader };
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(fault, { minLength: 4, maxLength: 24 }), (faults) => runSequence(w, faults)),
      { numRuns: RUNS ?? runs, endOnFailure: true, includeErrorInReport: true, ...(process.env.DG_FAULTS_SEED ? { seed: Number(process.env.DG_FAULTS_SEED) } : {}) },
    );
  } finally {
    for (const c of [...writers, reader]) await c.client.close();
  }
}

test('random faults under the SDK, appends relayed: every acknowledged append once, in order, with no gap for any subscriber', { timeout: 900_000 }, () => faults(false, 12));

test('random faults under the SDK, appends over WebRTC data channels: the same', { timeout: 900_000 }, () => faults(true, 6));
