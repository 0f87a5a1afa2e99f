/**
 * Model-based test of the tail API's lease and write rules (fast-check commands), on SQLite
 * and on PostgreSQL. Four sessions of three devices (two of a site admin, a writer, a
 * reader) run random sequences of `lease` (leading or not), `write` (at the length or off
 * by one, with a fresh wid, a wid used before or none), `release`, `read`, reconnects and
 * restarts of the node against one log, one request at a time. A reference model of
 * PROTOCOL.md's rules predicts every reply exactly: roles, epochs, lengths, leaders, peers,
 * `nack`, `dup`, NOT_FOUND, NOT_LEADER, BAD_REQUEST, entries read.
 *
 * After each sequence, each session's frames are checked as a client would take them: a
 * follower's `tail` events continue from its lease reply's `length` with no gap or repeat
 * and carry the committed entries, every session's epochs never go back (each `leader`
 * event above the last), and what a holder last heard (lease reply or event) names the
 * model's leader and epoch. The lease grace is 10 minutes, so it never lapses in a run:
 * a departed leader's device keeps the log until it comes back (reconnect or restart).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Config } from '../../src/server/config.js';
import { createSite, post, signGrant, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { metric } from '../helpers/metrics.js';
import { startOwnNats, natsServerAvailable, type OwnNats } from '../helpers/nats-server.js';
import { startServer } from '../helpers/server.js';
import { IN_CI, PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { clusterKeys, freePort, nodeDataDir } from '../server/child.js';
import { TailClient, type TailReply } from '../helpers/tail-client.js';
import { until, world } from './fixture.js';

const GRACE_MS = 600_000;
/** Sessions: slots 0 and 1 are the site admin's device, 2 a writer's, 3 a reader's. */
const SLOT_DEVICE = [0, 0, 1, 2] as const;
const WRITES = [true, true, false].map((_, d) => d !== 2);
/** Commands per sequence: no device gets near the 64 wids the store must remember. */
const MAX_COMMANDS = 60;
/** DG_MODEL_RUNS (diagnosis): more sequences per store than a test run takes. */
const RUNS = Number(process.env.DG_MODEL_RUNS ?? '') || undefined;

interface Wid {
  device: number;
  wid: string;
  at: number;
  length: number;
}

/** The reference model: PROTOCOL.md's rules for one log. */
interface Model {
  content: string[];
  epoch: number;
  /** The slot whose session leads, or null. */
  leader: number | null;
  /** The device whose grace runs (its leading session ended), or null. */
  grace: number | null;
  /** Which slots hold a handle, and as what. */
  roles: ('leader' | 'follower' | null)[];
  /** Committed writes with a wid, by device. */
  wids: Wid[];
  /** Every wid sent so far, committed or not (for resends). */
  sent: string[];
  /** Per slot: when its handle was taken (a count of handles taken), or -1 without one. */
  born: number[];
  taken: number;
  /** Per device: whether its user holds a grant on the site now (the admin always does). */
  access: boolean[];
  /** A lease with access loaded the log on the tail node since it started. */
  loaded: boolean;
  /**
   * The grace holder's user lost its grant while the log was not loaded: the node remembers
   * it (after a restart too, from auth's list of recent revocations) and asks auth when it
   * loads the log.
   */
  graceCheck: boolean;
}

/** Where the sessions and the HTTP calls go: one monolith, or an auth node and a tail node. */
interface Nodes {
  /** Base URL of the auth API. */
  auth: string;
  /** Base URL of the tail node (its /metrics). */
  tail: string;
  /** The tail node's WebSocket URL. */
  ws: string;
  /** Stops the tail node and starts it again on the same store (and port). */
  restartTail(): Promise<void>;
  /** How long a revocation may take to reach the tail node when no handle shows it (ms). */
  busMs: number;
}

interface Real {
  nodes: Nodes;
  site: string;
  log: string;
  devices: SignedUpDevice[];
  clients: TailClient[];
  /** The handle string of the log from the last lease reply of any slot. */
  handle: string;
  /** Per slot: ids of its current session's lease and release requests. */
  leases: Set<number>[];
  releases: Set<number>[];
  /** Handle addresses (`peer` of signal events) heard so far: whose handle, taken when. */
  addrs: Map<string, { slot: number; born: number }>;
  /** The grant each member device joined (by hash), while it holds one. */
  grants: (string | null)[];
  /** Declares a grant for device `d`'s user (its rights: RIGHTS_OF) and joins it; resolves the hash. */
  grant: (d: number) => Promise<string>;
}

const deviceOf = (slot: number) => SLOT_DEVICE[slot] as number;

function leaderDevice(m: Model): number | null {
  if (m.leader !== null) return deviceOf(m.leader);
  return m.grace;
}

function errorOf(r: TailReply): string | undefined {
  return r.error?.code;
}

function show(r: TailReply): string {
  return JSON.stringify(r);
}

// ---------------------------------------------------------------- the model's steps

/** What a reply must be; throws (an assertion) when it is not. */
type Expect = (reply: TailReply) => void;

function pick(r: TailReply, ...keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (r[k] !== undefined) out[k] = r[k];
  return out;
}

function expectError(code: string, what: string): Expect {
  return (reply) => assert.equal(errorOf(reply), code, `${what}: ${show(reply)}`);
}

/** A `lease` by `slot`: applies it to the model and says what its reply must be. */
function leaseStep(m: Model, ids: string[], slot: number, lead: boolean): Expect {
  const dev = deviceOf(slot);
  if (!m.access[dev]) return (reply) => assert.deepEqual(pick(reply, 'needproof', 'handle', 'error'), { needproof: true }, `lease by slot ${slot} without access: ${show(reply)}`);
  if (!m.loaded) {
    // The node loads the log; a grace whose user lost access while it was away is checked first.
    m.loaded = true;
    if (m.graceCheck && m.grace !== null && !m.access[m.grace]) {
      m.grace = null;
      m.epoch++;
    }
    m.graceCheck = false;
  }
  if (m.roles[slot] === null) m.born[slot] = ++m.taken;
  const wantLead = lead && (WRITES[dev] as boolean);
  if (m.leader === slot) {
    if (!wantLead) {
      m.epoch++;
      m.leader = null;
      m.roles[slot] = 'follower';
    }
  } else if (wantLead && m.leader === null && (m.grace === null || m.grace === dev)) {
    m.epoch++;
    m.leader = slot;
    m.grace = null;
    m.roles[slot] = 'leader';
  } else {
    m.roles[slot] = 'follower';
  }
  const lead0 = leaderDevice(m);
  const peers = [...new Set(m.roles.flatMap((role, s) => (role !== null && s !== slot ? [deviceOf(s)] : [])))];
  const want = {
    role: m.roles[slot],
    epoch: m.epoch,
    length: m.content.length,
    leader: lead0 === null ? null : ids[lead0],
    peers: peers.map((d) => ids[d]).sort(),
    writers: peers.filter((d) => WRITES[d]).map((d) => ids[d]).sort(),
  };
  return (reply) => {
    assert.equal(errorOf(reply), undefined, `lease by slot ${slot}: ${show(reply)}`);
    const got = { role: reply.role, epoch: reply.epoch, length: reply.length, leader: reply.leader, peers: [...(reply.peers as string[])].sort(), writers: [...(reply.writers as string[])].sort() };
    assert.deepEqual(got, want, `lease by slot ${slot} (lead ${lead})`);
  };
}

/** A `write` by `slot` at `at`. */
function writeStep(m: Model, slot: number, at: number, entries: string[], wid: string | undefined): Expect {
  const dev = deviceOf(slot);
  if (wid !== undefined && !m.sent.includes(wid)) m.sent.push(wid);
  const what = `write by slot ${slot} at ${at} (length ${m.content.length}, wid ${wid ?? '-'})`;
  const role = m.roles[slot];
  if (role === null) return expectError('NOT_FOUND', what);
  if (role === 'follower') return expectError('NOT_LEADER', what);
  const prior = wid === undefined ? undefined : m.wids.find((x) => x.device === dev && x.wid === wid);
  if (prior !== undefined) return (reply) => assert.deepEqual(pick(reply, 'at', 'length', 'dup', 'error'), { at: prior.at, length: prior.length, dup: true }, what);
  const length = m.content.length;
  if (at !== length) return (reply) => assert.deepEqual(pick(reply, 'nack', 'length', 'error'), { nack: true, length }, what);
  m.content.push(...entries);
  const end = m.content.length;
  if (wid !== undefined) m.wids.push({ device: dev, wid, at, length: end });
  return (reply) => assert.deepEqual(pick(reply, 'length', 'error', 'nack', 'dup'), { length: end }, what);
}

/** A `release` by `slot`. */
function releaseStep(m: Model, slot: number): Expect {
  const what = `release by slot ${slot}`;
  if (m.roles[slot] === null) return expectError('NOT_FOUND', what);
  if (m.leader === slot) {
    m.epoch++;
    m.leader = null;
  }
  m.roles[slot] = null;
  m.born[slot] = -1;
  return (reply) => assert.equal(errorOf(reply), undefined, `${what}: ${show(reply)}`);
}

/** A `read` by `slot` from `from`. */
function readStep(m: Model, slot: number, from: number): Expect {
  const what = `read by slot ${slot} from ${from}`;
  if (m.roles[slot] === null) return expectError('NOT_FOUND', what);
  if (from > m.content.length) return expectError('BAD_REQUEST', what);
  const want = { from, entries: m.content.slice(from), length: m.content.length };
  return (reply) => assert.deepEqual(pick(reply, 'from', 'entries', 'length', 'error'), want, `${what}: ${show(reply)}`);
}

const idsOf = (r: Real) => r.devices.map((d) => d.device);

/** Sends a request and notes its id where the replay of the session's frames needs it. */
function send(r: Real, slot: number, op: string, args: Record<string, unknown>): Promise<TailReply> {
  const c = r.clients[slot] as TailClient;
  const id = c.freshId();
  if (op === 'lease') r.leases[slot]?.add(id);
  if (op === 'release') r.releases[slot]?.add(id);
  c.send({ ...args, id, op });
  return c.reply(id);
}

function leaseArgs(r: Real, lead: boolean): Record<string, unknown> {
  return { site: r.site, log: r.log, lead };
}

function noteHandle(r: Real, reply: TailReply): void {
  if (typeof reply.handle === 'string') r.handle = reply.handle;
}

/** A wid for a write: a fresh one, one sent before (chosen by `pick`), or none. */
function widFor(m: Model, choice: WidChoice): string | undefined {
  if (choice.kind === 'fresh') return `w-${randomBytes(6).toString('hex')}`;
  if (choice.kind === 'resend' && m.sent.length > 0) return m.sent[choice.pick % m.sent.length];
  return undefined;
}

type WidChoice = { kind: 'none' } | { kind: 'fresh' } | { kind: 'resend'; pick: number };

// ---------------------------------------------------------------- commands

class Lease implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly lead: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const reply = await send(r, this.slot, 'lease', leaseArgs(r, this.lead));
    noteHandle(r, reply);
    leaseStep(m, idsOf(r), this.slot, this.lead)(reply);
  }
  toString = () => `lease(${this.slot}, ${this.lead})`;
}

/** The leading slot for -1 (slot 0 when none leads), else the slot itself. */
const resolveSlot = (m: Model, which: number) => (which >= 0 ? which : (m.leader ?? 0));

class Write implements fc.AsyncCommand<Model, Real> {
  constructor(
    /** A slot, or -1: the leading slot when there is one (else slot 0). */
    readonly which: number,
    readonly delta: number,
    readonly entries: string[],
    readonly wid: WidChoice,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const slot = resolveSlot(m, this.which);
    const at = Math.max(0, m.content.length + this.delta);
    const wid = widFor(m, this.wid);
    const reply = await send(r, slot, 'write', { handle: r.handle, at, entries: this.entries, ...(wid === undefined ? {} : { wid }) });
    writeStep(m, slot, at, this.entries, wid)(reply);
  }
  toString = () => `write(${this.which < 0 ? 'leader' : this.which}, ${this.delta}, ${this.entries.length}, ${JSON.stringify(this.wid)})`;
}

class Release implements fc.AsyncCommand<Model, Real> {
  constructor(readonly slot: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const reply = await send(r, this.slot, 'release', { handle: r.handle });
    releaseStep(m, this.slot)(reply);
  }
  toString = () => `release(${this.slot})`;
}

class Read implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly back: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const from = Math.max(0, m.content.length - this.back);
    const reply = await send(r, this.slot, 'read', { handle: r.handle, from });
    readStep(m, this.slot, from)(reply);
  }
  toString = () => `read(${this.slot}, ${this.back})`;
}

type PipeStep = { kind: 'write'; delta: number; entries: string[]; wid: WidChoice } | { kind: 'lease'; lead: boolean } | { kind: 'release' };

/**
 * One session sends several requests without waiting (writes at the lengths it expects,
 * leases, a release last), then takes the replies: each must be what the model says for
 * the requests decided one by one in the order sent. Only for a slot that holds the
 * handle (a write names it), and a wid is never sent twice within one pipeline (a resend
 * racing its first copy's commit is decided by timing).
 */
class Pipeline implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly which: number,
    readonly steps: PipeStep[],
  ) {}
  check = (m: Readonly<Model>) => m.roles[resolveSlot(m as Model, this.which)] !== null;
  async run(m: Model, r: Real): Promise<void> {
    const slot = resolveSlot(m, this.which);
    const handle = r.handle;
    let planned = m.content.length;
    const used = new Set<string>();
    const sent: { step: PipeStep; reply: Promise<TailReply>; at: number; wid: string | undefined }[] = [];
    for (const step of this.steps) {
      if (step.kind === 'write') {
        let wid = widFor(m, step.wid);
        if (wid !== undefined && used.has(wid)) wid = undefined;
        if (wid !== undefined) used.add(wid);
        // A resend of a committed write is answered dup wherever it goes (the node loads the
        // device's wids first if it has not seen them): the client does not count it.
        const committed = m.wids.some((x) => x.device === deviceOf(slot) && x.wid === wid);
        const at = Math.max(0, planned + step.delta);
        if (!committed) planned = at + step.entries.length;
        sent.push({ step, at, wid, reply: send(r, slot, 'write', { handle, at, entries: step.entries, ...(wid === undefined ? {} : { wid }) }) });
      } else if (step.kind === 'lease') {
        sent.push({ step, at: 0, wid: undefined, reply: send(r, slot, 'lease', leaseArgs(r, step.lead)) });
      } else {
        sent.push({ step, at: 0, wid: undefined, reply: send(r, slot, 'release', { handle }) });
      }
    }
    const replies = await Promise.all(sent.map((x) => x.reply));
    sent.forEach((x, i) => {
      const reply = replies[i] as TailReply;
      const s = x.step;
      if (s.kind === 'write') writeStep(m, slot, x.at, s.entries, x.wid)(reply);
      else if (s.kind === 'lease') {
        noteHandle(r, reply);
        leaseStep(m, idsOf(r), slot, s.lead)(reply);
      } else releaseStep(m, slot)(reply);
    });
  }
  toString = () => `pipeline(${this.which < 0 ? 'leader' : this.which}, ${this.steps.map((s) => (s.kind === 'write' ? `write ${s.delta}/${s.entries.length}/${s.wid.kind}` : s.kind === 'lease' ? `lease ${s.lead}` : 'release')).join(', ')})`;
}

type RaceOp = { kind: 'lease'; lead: boolean } | { kind: 'release' } | { kind: 'write'; entries: string[] };

/**
 * Two sessions send a request each at the same time: the two replies must be those of the
 * model taking the two in one order or the other (the node decides them one at a time),
 * and the model goes on from that order.
 */
class Race implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly a: number,
    readonly b: number,
    readonly opA: RaceOp,
    readonly opB: RaceOp,
  ) {}
  check = () => this.a !== this.b;
  async run(m: Model, r: Real): Promise<void> {
    const handle = r.handle;
    const at = m.content.length;
    const go = (slot: number, op: RaceOp) =>
      op.kind === 'lease'
        ? send(r, slot, 'lease', leaseArgs(r, op.lead))
        : op.kind === 'release'
          ? send(r, slot, 'release', { handle })
          : send(r, slot, 'write', { handle, at, entries: op.entries });
    const [ra, rb] = await Promise.all([go(this.a, this.opA), go(this.b, this.opB)]);
    noteHandle(r, ra);
    noteHandle(r, rb);
    const step = (mm: Model, slot: number, op: RaceOp): Expect =>
      op.kind === 'lease' ? leaseStep(mm, idsOf(r), slot, op.lead) : op.kind === 'release' ? releaseStep(mm, slot) : writeStep(mm, slot, at, op.entries, undefined);
    const failures: string[] = [];
    for (const order of [
      [0, 1],
      [1, 0],
    ] as const) {
      const mm = structuredClone(m);
      const ops = [
        { slot: this.a, op: this.opA, reply: ra },
        { slot: this.b, op: this.opB, reply: rb },
      ];
      try {
        const expects = order.map((i) => ({ expect: step(mm, (ops[i] as (typeof ops)[0]).slot, (ops[i] as (typeof ops)[0]).op), reply: (ops[i] as (typeof ops)[0]).reply }));
        for (const e of expects) e.expect(e.reply);
      } catch (err) {
        failures.push((err as Error).message);
        continue;
      }
      Object.assign(m, mm);
      return;
    }
    assert.fail(`${this.toString()}: the replies fit neither order:\n${failures.join('\n')}`);
  }
  toString = () => `race(${this.a} ${JSON.stringify(this.opA)}, ${this.b} ${JSON.stringify(this.opB)})`;
}

type SignalTo = { kind: 'leader' } | { kind: 'device'; device: number } | { kind: 'peer'; pick: number };

/**
 * A `signal` from `slot`: to the leader, to another device (its leader handle if it leads,
 * else its newest), or to a handle address heard in an earlier signal event (that very
 * handle, while it lives). The model names the session that must get the `signal` event,
 * or says NOT_FOUND.
 */
class Signal implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly to: SignalTo,
  ) {}
  check = () => this.to.kind !== 'device' || this.to.device !== deviceOf(this.slot);
  async run(m: Model, r: Real): Promise<void> {
    let to: string;
    let target: number | null;
    const live = (s: number) => m.roles[s] !== null;
    const addrs = [...r.addrs.entries()].filter(([, a]) => a.slot !== this.slot || a.born !== m.born[this.slot]);
    if (this.to.kind === 'peer' && addrs.length > 0) {
      const [addr, a] = addrs[this.to.pick % addrs.length] as [string, { slot: number; born: number }];
      to = addr;
      target = live(a.slot) && m.born[a.slot] === a.born ? a.slot : null;
    } else if (this.to.kind === 'device') {
      const d = this.to.device;
      to = (r.devices[d] as SignedUpDevice).device;
      const holders = SLOT_DEVICE.flatMap((dev, s) => (dev === d && live(s) ? [s] : []));
      const leading = holders.find((s) => m.leader === s);
      target = leading ?? holders.sort((x, y) => (m.born[y] as number) - (m.born[x] as number))[0] ?? null;
    } else {
      to = 'leader';
      target = m.leader !== null && m.leader !== this.slot ? m.leader : null;
    }
    if (!live(this.slot)) target = null;
    const n = randomBytes(6).toString('hex');
    const reply = await send(r, this.slot, 'signal', { handle: r.handle, to, kind: 'data', data: { n } });
    const what = `signal from slot ${this.slot} to ${this.to.kind === 'peer' ? 'a handle address' : to}`;
    if (target === null) return assert.equal(errorOf(reply), 'NOT_FOUND', `${what}: ${show(reply)}`);
    assert.equal(errorOf(reply), undefined, `${what}: ${show(reply)}`);
    const mine = (e: { ev: string; data?: unknown }) => e.ev === 'signal' && (e.data as { n?: unknown } | undefined)?.n === n;
    const ev = await (r.clients[target] as TailClient).event(mine, 5000);
    const ids = idsOf(r);
    assert.deepEqual({ handle: ev.handle, from: ev.from, kind: ev.kind }, { handle: r.handle, from: ids[deviceOf(this.slot)], kind: 'data' }, `${what}: the event at slot ${target}`);
    assert.equal(typeof ev.peer, 'string', `${what}: the event carries the sender's handle address`);
    r.addrs.set(ev.peer as string, { slot: this.slot, born: m.born[this.slot] as number });
    r.clients.forEach((c, s) => {
      if (s !== target) assert.ok(!c.received.some((f) => f.ev === 'signal' && (f.data as { n?: unknown } | undefined)?.n === n), `${what}: slot ${s} got it too`);
    });
  }
  toString = () => `signal(${this.slot}, ${JSON.stringify(this.to)})`;
}

/** Rights of the grants the members get: the writer writes, the reader reads. */
const RIGHTS_OF: Record<number, ('read' | 'write')[]> = { 1: ['read', 'write'], 2: ['read'] };

/**
 * The site's owner revokes the grant a member device's user joined: its handles die at once
 * (a `revoke` event each; a leadership ends, and so does its device's grace), and its next
 * lease is answered `needproof`.
 */
class Revoke implements fc.AsyncCommand<Model, Real> {
  constructor(readonly device: number) {}
  check = (m: Readonly<Model>) => m.access[this.device] === true;
  async run(m: Model, r: Real): Promise<void> {
    const hash = r.grants[this.device] as string;
    const held = SLOT_DEVICE.flatMap((d, s) => (d === this.device && m.roles[s] !== null ? [s] : []));
    const before = held.map((s) => (r.clients[s] as TailClient).received.filter((f) => f.ev === 'revoke').length);
    const res = await post(r.nodes.auth, '/revoke', { grant: hash }, (r.devices[0] as SignedUpDevice).access);
    assert.equal(res.status, 200, `revoke: ${res.status} ${res.text}`);
    r.grants[this.device] = null;
    // Each live handle of the device hears it.
    await until(() => held.every((s, i) => (r.clients[s] as TailClient).received.filter((f) => f.ev === 'revoke').length > (before[i] as number)), 5000, 'the revoke events');
    if (held.length === 0 && r.nodes.busMs > 0) await new Promise((res) => setTimeout(res, r.nodes.busMs));
    for (const s of held) {
      if (m.leader === s) {
        m.epoch++;
        m.leader = null;
      }
      m.roles[s] = null;
      m.born[s] = -1;
    }
    if (m.grace === this.device && !m.loaded) {
      // Nothing to end on the node yet: it remembers, and asks auth when the log loads.
      m.graceCheck = true;
    } else if (m.grace === this.device) {
      // The node asks auth whether the user still may write, then ends the grace: the
      // holders hear `leader: null` (with none to hear it, the answer gets a second).
      const holders = m.roles.flatMap((role, s) => (role !== null ? [s] : []));
      const ended = (s: number) => (r.clients[s] as TailClient).received.some((f) => f.ev === 'leader' && f.leader === null && f.epoch === m.epoch + 1);
      if (holders.length > 0) await until(() => holders.every(ended), 5000, 'the grace to end');
      else await new Promise((res) => setTimeout(res, 1000 + r.nodes.busMs));
      m.grace = null;
      m.epoch++;
    }
    m.access[this.device] = false;
  }
  toString = () => `revoke(${this.device})`;
}

/** The member's user gets a new grant and joins it: its next lease succeeds again. */
class Regrant implements fc.AsyncCommand<Model, Real> {
  constructor(readonly device: number) {}
  check = (m: Readonly<Model>) => m.access[this.device] === false;
  async run(m: Model, r: Real): Promise<void> {
    r.grants[this.device] = await r.grant(this.device);
    m.access[this.device] = true;
  }
  toString = () => `regrant(${this.device})`;
}

/** The slot's session ends (a close or a cut connection); a new one takes its place. */
class Reconnect implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly slot: number,
    readonly cut: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const old = r.clients[this.slot] as TailClient;
    if (this.cut) old.terminate();
    else old.close();
    await old.closed;
    // The node must have seen the end of the session before the model moves on.
    await until(async () => (await metric(r.nodes.tail, 'datagrove_tail_sessions')) === r.clients.length - 1, 10_000, 'the node to see the session end');
    r.clients[this.slot] = await TailClient.connect(r.nodes.ws, (r.devices[deviceOf(this.slot)] as SignedUpDevice).access);
    r.leases[this.slot] = new Set();
    r.releases[this.slot] = new Set();
    if (m.leader === this.slot) {
      m.leader = null;
      m.grace = deviceOf(this.slot);
    }
    m.roles[this.slot] = null;
    m.born[this.slot] = -1;
  }
  toString = () => `reconnect(${this.slot}, ${this.cut ? 'cut' : 'close'})`;
}

/** The node stops and starts again on the same store; every session reconnects. */
class Restart implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const closed = r.clients.map((c) => c.closedWith());
    await r.nodes.restartTail();
    for (const c of await Promise.all(closed)) assert.equal(c.code, 1001);
    for (let s = 0; s < r.clients.length; s++) {
      r.clients[s] = await TailClient.connect(r.nodes.ws, (r.devices[deviceOf(s)] as SignedUpDevice).access);
      r.leases[s] = new Set();
      r.releases[s] = new Set();
    }
    if (m.leader !== null) m.grace = deviceOf(m.leader);
    m.leader = null;
    // The new node loads the log afresh. It learns recent revocations from auth (or asks auth
    // while it has not had auth's list), so a grace whose user lost access is still checked.
    m.loaded = false;
    m.roles = m.roles.map(() => null);
    m.born = m.born.map(() => -1);
  }
  toString = () => 'restart()';
}

function commands(restarts: boolean): fc.Arbitrary<Iterable<fc.AsyncCommand<Model, Real>>> {
  const slot = fc.integer({ min: 0, max: SLOT_DEVICE.length - 1 });
  const entry = fc.uint8Array({ minLength: 1, maxLength: 12 }).map((u) => Buffer.from(u).toString('base64url'));
  const wid: fc.Arbitrary<WidChoice> = fc.oneof(
    { weight: 2, arbitrary: fc.constant<WidChoice>({ kind: 'fresh' }) },
    { weight: 1, arbitrary: fc.constant<WidChoice>({ kind: 'none' }) },
    { weight: 2, arbitrary: fc.nat().map((n): WidChoice => ({ kind: 'resend', pick: n })) },
  );
  const writerSlot = fc.integer({ min: 0, max: 2 });
  const freshOrOld: fc.Arbitrary<WidChoice> = fc.oneof(fc.constant<WidChoice>({ kind: 'fresh' }), fc.constant<WidChoice>({ kind: 'none' }), fc.nat().map((n): WidChoice => ({ kind: 'resend', pick: n })));
  const pipeStep: fc.Arbitrary<PipeStep> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), delta: fc.constantFrom(0, 0, 0, 0, -1, 1), entries: fc.array(entry, { minLength: 1, maxLength: 3 }), wid: freshOrOld }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('lease' as const), lead: fc.boolean() }) },
  );
  const pipeline = fc
    .tuple(fc.array(pipeStep, { minLength: 2, maxLength: 6 }), fc.boolean())
    .map(([steps, release]): PipeStep[] => (release ? [...steps, { kind: 'release' }] : steps));
  const raceOp: fc.Arbitrary<RaceOp> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('lease' as const), lead: fc.boolean() }) },
    { weight: 1, arbitrary: fc.constant<RaceOp>({ kind: 'release' }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('write' as const), entries: fc.array(entry, { minLength: 1, maxLength: 2 }) }) },
  );
  const signalTo: fc.Arbitrary<SignalTo> = fc.oneof(
    fc.constant<SignalTo>({ kind: 'leader' }),
    fc.integer({ min: 0, max: 2 }).map((device): SignalTo => ({ kind: 'device', device })),
    fc.nat().map((pick): SignalTo => ({ kind: 'peer', pick })),
  );
  const write = (who: fc.Arbitrary<number>) =>
    fc.tuple(who, fc.constantFrom(0, 0, 0, 0, -1, 1), fc.array(entry, { minLength: 1, maxLength: 3 }), wid).map(([s, d, e, w]) => new Write(s, d, e, w));
  const all: fc.WeightedArbitrary<fc.AsyncCommand<Model, Real>>[] = [
    { weight: 5, arbitrary: fc.tuple(slot, fc.boolean(), fc.boolean()).map(([s, a, b]) => new Lease(s, a || b)) },
    { weight: 8, arbitrary: write(fc.constant(-1)) },
    { weight: 2, arbitrary: write(slot) },
    { weight: 2, arbitrary: slot.map((s) => new Release(s)) },
    { weight: 2, arbitrary: fc.tuple(slot, fc.integer({ min: -1, max: 4 })).map(([s, b]) => new Read(s, b)) },
    { weight: 2, arbitrary: fc.tuple(slot, fc.boolean()).map(([s, cut]) => new Reconnect(s, cut)) },
    { weight: 3, arbitrary: fc.tuple(fc.oneof(fc.constant(-1), slot), pipeline).map(([s, steps]) => new Pipeline(s, steps)) },
    { weight: 3, arbitrary: fc.tuple(writerSlot, writerSlot, raceOp, raceOp).map(([a, b, x, y]) => new Race(a, b, x, y)) },
    { weight: 3, arbitrary: fc.tuple(slot, signalTo).map(([s, to]) => new Signal(s, to)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map((d) => new Revoke(d)) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 2 }).map((d) => new Regrant(d)) },
  ];
  if (restarts) all.push({ weight: 1, arbitrary: fc.constant(new Restart()) });
  // fc.commands takes its commands without weights: a weighted choice of one is one command.
  return fc.commands([fc.oneof(...all)], { maxCommands: MAX_COMMANDS, size: 'max' });
}

// ---------------------------------------------------------------- what the sessions heard

interface Heard {
  /** The follower's next expected `tail` position, or null when it does not follow. */
  pos: number | null;
  epoch: number;
  leader: string | null;
  problems: string[];
}

/** Replays a session's frames in arrival order as a client would take them. */
function heard(c: TailClient, leases: Set<number>, releases: Set<number>, content: string[]): Heard {
  const h: Heard = { pos: null, epoch: -1, leader: null, problems: [] };
  let handle: string | null = null;
  let lastLeaderEvent = -1;
  for (const f of c.received) {
    const re = f.re;
    if (typeof re === 'number' && leases.has(re) && f.error === undefined && typeof f.handle === 'string') {
      handle = f.handle;
      h.pos = f.role === 'follower' ? (f.length as number) : null;
      if ((f.epoch as number) < h.epoch) h.problems.push(`lease reply epoch ${String(f.epoch)} below ${h.epoch} heard before`);
      h.epoch = f.epoch as number;
      h.leader = f.leader as string | null;
    } else if ((typeof re === 'number' && releases.has(re) && f.error === undefined) || (f.ev === 'revoke' && f.handle === handle && handle !== null)) {
      handle = null;
      h.pos = null;
    } else if (f.ev === 'tail' && f.handle === handle && h.pos !== null) {
      const at = f.at as number;
      const length = f.length as number;
      if (at !== h.pos) h.problems.push(`tail event at ${at}, expected ${h.pos}`);
      if (!(length > at)) h.problems.push(`tail event [${at}, ${length}) is empty`);
      const entries = f.entries as string[] | undefined;
      if (entries !== undefined && JSON.stringify(entries) !== JSON.stringify(content.slice(at, length))) h.problems.push(`tail event [${at}, ${length}) carries other entries than committed`);
      h.pos = length;
    } else if (f.ev === 'leader' && f.handle === handle && handle !== null) {
      const epoch = f.epoch as number;
      if (epoch <= lastLeaderEvent) h.problems.push(`leader event epoch ${epoch} not above the previous one, ${lastLeaderEvent}`);
      if (epoch < h.epoch) h.problems.push(`leader event epoch ${epoch} below ${h.epoch} heard before`);
      lastLeaderEvent = epoch;
      h.epoch = epoch;
      h.leader = f.leader as string | null;
    }
  }
  return h;
}

/** Waits until every holder heard the model's state, and fails on anything wrong in what they heard. */
async function checkHeard(m: Model, r: Real): Promise<void> {
  const lead = leaderDevice(m);
  const want = { epoch: m.epoch, leader: lead === null ? null : (r.devices[lead] as SignedUpDevice).device };
  const state = () =>
    m.roles.map((role, s) => {
      if (role === null) return null;
      const h = heard(r.clients[s] as TailClient, r.leases[s] as Set<number>, r.releases[s] as Set<number>, m.content);
      return { slot: s, problems: h.problems, epoch: h.epoch, leader: h.leader, pos: role === 'follower' ? h.pos : m.content.length };
    });
  const settled = () => state().every((x) => x === null || (x.problems.length > 0) || (x.epoch === want.epoch && x.leader === want.leader && x.pos === m.content.length));
  await until(settled, 5000, 'every holder to hear the log state').catch(() => {});
  for (const x of state()) {
    if (x === null) continue;
    assert.deepEqual(x.problems, [], `slot ${x.slot}: ${x.problems.join('; ')}`);
    assert.deepEqual({ epoch: x.epoch, leader: x.leader, pos: x.pos }, { ...want, pos: m.content.length }, `what slot ${x.slot} heard`);
  }
}

// ---------------------------------------------------------------- the runs

/** The owner, its site and the nodes a model run talks to. */
interface Setup {
  nodes: Nodes;
  owner: SignedUpDevice;
  site: string;
}

/** One monolith (the default: every service in the process, the in-process bus). */
async function monolith(overrides: Partial<Config>): Promise<Setup> {
  const w = await world({ leaseGraceMs: GRACE_MS, ...overrides });
  let srv = w.srv;
  const nodes: Nodes = {
    auth: srv.url,
    tail: srv.url,
    ws: srv.wsUrl,
    busMs: 0,
    restartTail: async () => {
      await srv.stop();
      srv = await startServer({ leaseGraceMs: GRACE_MS, ...overrides, dataDir: w.srv.dataDir });
      nodes.auth = nodes.tail = srv.url;
      nodes.ws = srv.wsUrl;
    },
  };
  return { nodes, owner: w.owner, site: w.site };
}

/**
 * An auth node (auth and notify) and a tail node, separate servers on their own NATS server
 * and one PostgreSQL schema, as `--roles` runs them; the tail node restarts alone.
 */
async function cluster(nats: string, dbSchema: string): Promise<Setup> {
  const common: Partial<Config> = { bus: nats, db: PG_URL, dbSchema, leaseGraceMs: GRACE_MS };
  // Every process of a cluster holds the same key files (made once, copied by the operator).
  const keys = clusterKeys('dg-model-');
  const withKeys = () => nodeDataDir(keys, 'dg-model-node-');
  const authPort = await freePort();
  const authNode = await startServer({ ...common, roles: ['auth', 'notify'], port: authPort, publicUrl: `http://127.0.0.1:${authPort}`, dataDir: withKeys() });
  const tailDir = withKeys();
  const tailPort = await freePort();
  const startTail = async () => {
    const srv = await startServer({ ...common, roles: ['tail'], port: tailPort, publicUrl: `http://127.0.0.1:${tailPort}`, nodeId: 'model-tail', dataDir: tailDir });
    // Serving once it hears itself on the bus and the auth node lists it.
    await until(async () => (await fetch(`${srv.url}/ready`)).status === 200, 20_000, 'the tail node to be ready');
    await until(async () => ((await (await fetch(`${authNode.url}/auth/v1/shards`)).json()) as { shards: { id: string }[] }).shards.some((x) => x.id === 'model-tail'), 20_000, 'the auth node to list the tail node');
    return srv;
  };
  let tail = await startTail();
  const owner = await signupDevice(authNode.url, { name: 'owner' });
  const site = await createSite(authNode.url, owner.access);
  const nodes: Nodes = {
    auth: authNode.url,
    tail: tail.url,
    ws: tail.wsUrl,
    busMs: 300,
    restartTail: async () => {
      await tail.stop();
      tail = await startTail();
    },
  };
  return { nodes, owner, site };
}

async function runModel(setup: Setup, restarts: boolean, numRuns: number): Promise<void> {
  const w = { url: setup.nodes.auth, owner: setup.owner, site: setup.site };
  const writer = await signupDevice(w.url, { name: 'writer' });
  const reader = await signupDevice(w.url, { name: 'reader' });
  const devices = [w.owner, writer, reader];
  let declares = 0;
  const firstIat = Math.floor(Date.now() / 1000);
  const grant = async (d: number): Promise<string> => {
    const dev = devices[d] as SignedUpDevice;
    // Each grant its own (`iat` a second earlier than the last one's): a revoked one is not declared again.
    const iat = firstIat - ++declares;
    const g = signGrant(w.owner.privateKey, { iss: w.owner.device, sub: `user:${dev.user}`, site: w.site, logs: ['*'], rights: RIGHTS_OF[d] as ('read' | 'write')[], iat });
    // Declared by turns from the three devices: each has a budget of grant requests a minute.
    const by = devices[declares % devices.length] as SignedUpDevice;
    const declared = await post(real.nodes.auth, '/declare', { grant: g.jws }, by.access);
    assert.equal(declared.status, 201, `declare: ${declared.text}`);
    const joined = await post(real.nodes.auth, '/join', { site: w.site, grant: g.hash }, dev.access);
    assert.equal(joined.status, 200, `join: ${joined.text}`);
    return g.hash;
  };
  const real: Real = {
    nodes: setup.nodes,
    site: w.site,
    log: '',
    devices,
    clients: [],
    handle: 'h-none',
    leases: [],
    releases: [],
    addrs: new Map(),
    grants: [null, null, null],
    grant,
  };
  real.grants = [null, await grant(1), await grant(2)];
  after(() => {
    for (const c of real.clients) c.terminate();
  });
  await fc.assert(
    fc.asyncProperty(commands(restarts), async (cmds) => {
      for (const c of real.clients) c.terminate();
      real.log = `model-${randomBytes(4).toString('hex')}`;
      real.handle = 'h-none';
      real.addrs.clear();
      real.clients = [];
      for (let s = 0; s < SLOT_DEVICE.length; s++) {
        real.clients.push(await TailClient.connect(real.nodes.ws, (devices[deviceOf(s)] as SignedUpDevice).access));
        real.leases[s] = new Set();
        real.releases[s] = new Set();
      }
      await until(async () => (await metric(real.nodes.tail, 'datagrove_tail_sessions')) === SLOT_DEVICE.length, 10_000, 'only this run\'s sessions');
      const model: Model = { content: [], epoch: 0, leader: null, grace: null, roles: SLOT_DEVICE.map(() => null), wids: [], sent: [], born: SLOT_DEVICE.map(() => -1), taken: 0, access: [true, true, true], loaded: false, graceCheck: false };
      // Members whose grant the last sequence revoked get one again.
      for (const d of [1, 2]) if (real.grants[d] === null) real.grants[d] = await grant(d);
      await fc.asyncModelRun(() => ({ model, real }), cmds);
      await checkHeard(model, real);
    }),
    { numRuns, endOnFailure: true, includeErrorInReport: true, ...(process.env.DG_MODEL_SEED ? { seed: Number(process.env.DG_MODEL_SEED) } : {}) },
  );
  for (const c of real.clients) c.close();
}

describe('tail: random lease and write sequences against a model of the protocol (SQLite)', () => {
  it('answers every request as the model predicts, and followers hear every commit once', { timeout: 300_000 }, async () => {
    await runModel(await monolith({}), true, RUNS ?? 40);
  });
});

const pgSkipped = await pgSkip();
const schema = `test_tailmodel_${randomBytes(4).toString('hex')}`;
after(async () => {
  if (!pgSkipped) await dropPgSchemas(schema);
});

describe('tail: random lease and write sequences against a model of the protocol (PostgreSQL)', { skip: pgSkipped }, () => {
  it('answers every request as the model predicts, and followers hear every commit once', { timeout: 300_000 }, async () => {
    await runModel(await monolith({ db: PG_URL, dbSchema: schema }), true, RUNS ?? 25);
  });
});

const clusterSkipped = (natsServerAvailable() || IN_CI ? false : 'nats-server is not installed here; skipped (CI runs it)') || pgSkipped;
const clusterSchema = `test_tailmodelc_${randomBytes(4).toString('hex')}`;
let ownNats: OwnNats | null = null;
after(async () => {
  await ownNats?.stop();
  if (!pgSkipped) await dropPgSchemas(clusterSchema);
});

describe('tail: random lease and write sequences against a model of the protocol (auth and tail nodes over NATS)', { skip: clusterSkipped }, () => {
  it('answers every request as the model predicts, and followers hear every commit once', { timeout: 300_000 }, async () => {
    ownNats = await startOwnNats();
    await runModel(await cluster(ownNats.url, clusterSchema), true, RUNS ?? 15);
  });
});
