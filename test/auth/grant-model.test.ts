/**
 * Model-based test of grants (fast-check commands), on SQLite and on PostgreSQL: random
 * sequences of declares (root grants, delegations under a fitting proof or any grant, to a
 * user, a device or an attested email, attenuated or wider than their proof), joins,
 * revocations of grants and devices, and lease checks, against a model of the verification
 * rule of docs/protocol.md (grants): issuer live, not revoked, root only from the owner,
 * proof declared, valid, with `admin`, naming the issuer's user (directly, through a live
 * device, or through an email attested by a live device), attenuation of logs, chains of at
 * most 8. Every answer is predicted: declare 201/403/404, join 200 (with the expanded
 * rights)/403/404, revoke 200/403, and the rights a lease token carries on each log (or 403).
 *
 * Users are made once (the owner and four members, and declarers spreading the per-device
 * grant budget of 120 declares and joins a minute); each sequence has its own site, and each user a second device made for it
 * (through the store, as another sign-in would) that attests the user's email and may be
 * revoked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { openPgAuthStore, type AuthStore } from '../../src/auth/index.js';
import { SqliteAuthStore } from '../../src/auth/sqlite/store.js';
import type { Config } from '../../src/server/config.js';
import { createSite, newDeviceKeys, post, signGrant, signupDevice, type DeviceKeys, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';

const USERS = 5; // user 0 owns the site
const LOGS = ['a', 'b'] as const;
const LOG_SETS: string[][] = [['*'], ['a'], ['b'], ['a', 'b']];
type Right = 'read' | 'write' | 'admin';
const RIGHT_SETS: Right[][] = [['read'], ['write'], ['admin'], ['read', 'write'], ['read', 'admin'], ['admin'], ['read', 'write', 'admin']];
const MAX_CHAIN = 8;
const MAX_COMMANDS = 30;
/** DG_GRANT_MODEL_RUNS (diagnosis): more sequences than a test run takes. */
const RUNS = Number(process.env.DG_GRANT_MODEL_RUNS ?? '') || undefined;

/** A device: `main` (made once, never revoked) or `extra` (made per sequence). */
interface Dev {
  user: number;
  extra: boolean;
}

type Sub = { kind: 'user'; user: number } | { kind: 'device'; dev: Dev } | { kind: 'email'; user: number };

interface Grant {
  hash: string;
  jws: string;
  iss: Dev;
  sub: Sub;
  logs: string[];
  rights: Right[];
  prf: Grant | null;
  /** The server stored it (declare answered 201). */
  stored: boolean;
  revoked: boolean;
}

interface Model {
  grants: Grant[];
  /** Extra devices revoked, by user. */
  revokedExtra: boolean[];
  /** Joined (user, grant) pairs. */
  joined: { user: number; grant: Grant }[];
}

interface Real {
  url: string;
  site: string;
  mains: SignedUpDevice[];
  extras: DeviceKeys[];
  emails: string[];
  /** Bearers that declare (any device may), in turn. */
  declarers: SignedUpDevice[];
  turn: number;
}

// ---------------------------------------------------------------- the rule

const live = (m: Model, d: Dev) => !d.extra || !m.revokedExtra[d.user];

/** Whether `sub` names user `u` in a proof: the user, one of its live devices, or its email attested by a live device. */
function names(m: Model, sub: Sub, u: number): boolean {
  if (sub.kind === 'user') return sub.user === u;
  if (sub.kind === 'device') return sub.dev.user === u && live(m, sub.dev);
  return sub.user === u && !m.revokedExtra[u];
}

function logsCovered(child: string[], parent: string[]): boolean {
  if (parent.includes('*')) return true;
  if (child.includes('*')) return false;
  return child.every((l) => parent.includes(l));
}

/** The verification rule: why `g` is invalid now, or null when it is valid. */
function invalid(m: Model, g: Grant, depth = 1): string | null {
  if (depth > MAX_CHAIN) return 'chain too long';
  if (!live(m, g.iss)) return 'issuer revoked';
  if (g.revoked) return 'revoked';
  if (g.prf === null) return g.iss.user === 0 ? null : 'root grant from a non-owner';
  const p = g.prf;
  if (!p.stored) return 'proof unknown';
  const why = invalid(m, p, depth + 1);
  if (why !== null) return `proof: ${why}`;
  if (!p.rights.includes('admin')) return 'proof without admin';
  if (!names(m, p.sub, g.iss.user)) return "proof does not name the issuer's user";
  if (!logsCovered(g.logs, p.logs)) return 'logs wider than the proof';
  return null;
}

/** Whether grant `g` covers user `u` joining from its main device. */
function covers(m: Model, g: Grant, u: number): boolean {
  if (g.sub.kind === 'user') return g.sub.user === u;
  if (g.sub.kind === 'device') return g.sub.dev.user === u && !g.sub.dev.extra;
  return g.sub.user === u && !m.revokedExtra[u];
}

/** Rights as the server gives them: `admin` brings `read` and `write`, and `write` brings `read`. */
const expand = (rights: string[]) => [...new Set(rights.flatMap((r) => (r === 'admin' ? ['admin', 'read', 'write'] : r === 'write' ? ['read', 'write'] : [r])))].sort();

/** The rights user `u` has on `log` now. */
function rightsOn(m: Model, u: number, log: string): string[] {
  if (u === 0) return expand(['admin']);
  const all = m.joined.filter((j) => j.user === u && invalid(m, j.grant) === null && covers(m, j.grant, u) && logsCovered([log], j.grant.logs)).flatMap((j) => j.grant.rights);
  return expand(all);
}

function siteAdmin(m: Model, u: number): boolean {
  return LOGS.some((l) => rightsOn(m, u, l).includes('admin'));
}

// ---------------------------------------------------------------- commands

function subject(r: Real, sub: Sub): string {
  if (sub.kind === 'user') return `user:${(r.mains[sub.user] as SignedUpDevice).user}`;
  if (sub.kind === 'email') return `email:${r.emails[sub.user] as string}`;
  return `device:${keysOf(r, sub.dev).device}`;
}

function keysOf(r: Real, d: Dev): DeviceKeys {
  return (d.extra ? r.extras[d.user] : r.mains[d.user]) as DeviceKeys;
}

type SubChoice = { kind: 'user' | 'email'; user: number } | { kind: 'device'; user: number; extra: boolean };
type ProofChoice = { kind: 'none' } | { kind: 'fitting'; pick: number } | { kind: 'any'; pick: number };

/**
 * Who issues a declared grant: `as` given, the owner (a root grant), or a device of a user
 * that a valid admin grant names (`delegate`: that grant is the proof, so chains grow).
 */
type Issuer = { kind: 'as'; dev: Dev } | { kind: 'owner'; extra: boolean } | { kind: 'delegate'; pick: number; extra: boolean };

class Declare implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly issuer: Issuer,
    readonly sub: SubChoice,
    readonly logs: number,
    readonly rights: number,
    readonly proof: ProofChoice,
    /** Take logs within the proof's (a fitting delegation), when there is one. */
    readonly attenuate: boolean,
  ) {}
  check = () => true;
  iss: Dev = { user: 0, extra: false };
  async run(m: Model, r: Real): Promise<void> {
    let prf: Grant | null = null;
    const issuer = this.issuer;
    if (issuer.kind === 'as') this.iss = issuer.dev;
    else if (issuer.kind === 'owner') this.iss = { user: 0, extra: issuer.extra };
    else {
      // A valid admin grant, and a device of the user it names: a fitting delegation.
      const admins = m.grants.filter((g) => g.stored && invalid(m, g) === null && g.rights.includes('admin'));
      const p = admins[issuer.pick % Math.max(1, admins.length)];
      if (p === undefined) this.iss = { user: 0, extra: issuer.extra };
      else {
        prf = p;
        this.iss = p.sub.kind === 'device' ? p.sub.dev : { user: p.sub.user, extra: issuer.extra };
      }
    }
    if (prf === null && this.proof.kind === 'fitting') {
      // A valid, stored grant giving admin that names the issuer's user.
      const fitting = m.grants.filter((g) => g.stored && invalid(m, g) === null && g.rights.includes('admin') && names(m, g.sub, this.iss.user));
      prf = fitting.length === 0 ? null : (fitting[this.proof.pick % fitting.length] as Grant);
    } else if (prf === null && this.proof.kind === 'any' && m.grants.length > 0) {
      prf = m.grants[this.proof.pick % m.grants.length] as Grant;
    }
    let logs = LOG_SETS[this.logs % LOG_SETS.length] as string[];
    if (this.attenuate && prf !== null && !logsCovered(logs, prf.logs)) logs = prf.logs.includes('*') ? logs : [prf.logs[this.logs % prf.logs.length] as string];
    const sub: Sub = this.sub.kind === 'device' ? { kind: 'device', dev: { user: this.sub.user, extra: this.sub.extra } } : { kind: this.sub.kind, user: this.sub.user };
    const rights = RIGHT_SETS[this.rights % RIGHT_SETS.length] as Right[];
    const claims = { iss: keysOf(r, this.iss).device, sub: subject(r, sub), site: r.site, logs, rights, ...(prf === null ? {} : { prf: prf.hash }), iat: Math.floor(Date.now() / 1000) };
    const signed = signGrant(keysOf(r, this.iss).privateKey, claims);
    // The same claims in the same second sign to the same grant (Ed25519 is deterministic):
    // it is that grant again, revoked if it was.
    const same = m.grants.find((x) => x.hash === signed.hash);
    const g: Grant = same ?? { hash: signed.hash, jws: signed.jws, iss: this.iss, sub, logs, rights, prf, stored: false, revoked: false };
    const bearer = r.declarers[r.turn++ % r.declarers.length] as SignedUpDevice;
    const res = await post<{ hash?: string; error?: { code: string; message: string } }>(r.url, '/declare', { grant: signed.jws }, bearer.access);
    const why = invalid(m, g);
    const what = `declare ${this.toString()} (model: ${why ?? 'valid'}): ${res.status} ${res.text}`;
    if (why === null) {
      assert.equal(res.status, 201, what);
      assert.equal(res.body.hash, g.hash, what);
      g.stored = true;
    } else if (why === 'proof unknown') {
      assert.equal(res.status, 404, what);
    } else if (prf !== null && !prf.stored) {
      // Refused for its issuer; its unknown proof may be found first.
      assert.ok(res.status === 403 || res.status === 404, what);
    } else {
      assert.equal(res.status, 403, what);
    }
    if (same === undefined) m.grants.push(g);
  }
  toString = () => `declare(${JSON.stringify(this.issuer)}, sub ${JSON.stringify(this.sub)}, logs ${this.logs}, rights ${this.rights}, ${JSON.stringify(this.proof)}, ${this.attenuate})`;
}

class Join implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly user: number,
    readonly pick: number,
    /** Pick among the grants naming the user (in any state), not among all. */
    readonly naming: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.grants.length > 0;
  async run(m: Model, r: Real): Promise<void> {
    const mine = m.grants.filter((g) => (g.sub.kind === 'device' ? g.sub.dev.user : g.sub.user) === this.user);
    const from = this.naming && mine.length > 0 ? mine : m.grants;
    const g = from[this.pick % from.length] as Grant;
    const res = await post<{ rights?: string[]; logs?: string[] }>(r.url, '/join', { site: r.site, grant: g.hash }, (r.mains[this.user] as SignedUpDevice).access);
    const why = !g.stored ? 'unknown' : (invalid(m, g) ?? (covers(m, g, this.user) ? null : 'does not cover the caller'));
    const what = `join by ${this.user} of grant ${m.grants.indexOf(g)} (model: ${why ?? 'ok'}): ${res.status} ${res.text}`;
    if (why === null) {
      assert.equal(res.status, 200, what);
      assert.deepEqual({ logs: res.body.logs, rights: [...(res.body.rights ?? [])].sort() }, { logs: g.logs, rights: expand(g.rights) }, what);
      if (!m.joined.some((j) => j.user === this.user && j.grant === g)) m.joined.push({ user: this.user, grant: g });
    } else {
      assert.equal(res.status, why === 'unknown' ? 404 : 403, what);
    }
  }
  toString = () => `join(${this.user}, ${this.pick}, ${this.naming})`;
}

class RevokeGrant implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly user: number,
    readonly pick: number,
  ) {}
  check = (m: Readonly<Model>) => m.grants.some((g) => g.stored && !g.revoked);
  async run(m: Model, r: Real): Promise<void> {
    const open = m.grants.filter((g) => g.stored && !g.revoked);
    const g = open[this.pick % open.length] as Grant;
    const allowed = g.iss.user === this.user || siteAdmin(m, this.user);
    const res = await post(r.url, '/revoke', { grant: g.hash }, (r.mains[this.user] as SignedUpDevice).access);
    const what = `revoke by ${this.user} of grant ${m.grants.indexOf(g)} issued by ${g.iss.user} (model: ${allowed ? 'allowed' : 'refused'}): ${res.status} ${res.text}`;
    assert.equal(res.status, allowed ? 200 : 403, what);
    if (allowed) g.revoked = true;
  }
  toString = () => `revokeGrant(${this.user}, ${this.pick})`;
}

/** A user revokes its extra device from its main one. */
class RevokeDevice implements fc.AsyncCommand<Model, Real> {
  constructor(readonly user: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const res = await post(r.url, '/revoke', { device: (r.extras[this.user] as DeviceKeys).device }, (r.mains[this.user] as SignedUpDevice).access);
    assert.equal(res.status, 200, `revoke device of ${this.user}: ${res.status} ${res.text}`);
    m.revokedExtra[this.user] = true;
  }
  toString = () => `revokeDevice(${this.user})`;
}

/** A user asks for a lease token on each log: its rights, or 403 without any. */
class Check implements fc.AsyncCommand<Model, Real> {
  constructor(readonly user: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    for (const log of LOGS) {
      const res = await post<{ token?: string }>(r.url, '/lease', { site: r.site, log }, (r.mains[this.user] as SignedUpDevice).access);
      const want = rightsOn(m, this.user, log);
      const got = res.status === 200 ? expand((JSON.parse(Buffer.from((res.body.token ?? '').split('.')[1] ?? '', 'base64url').toString('utf8')) as { rights: string[] }).rights) : res.status === 403 ? [] : [`status ${res.status}`];
      assert.deepEqual(got, want, `rights of user ${this.user} on ${log}: ${res.status} ${res.text}`);
    }
  }
  toString = () => `check(${this.user})`;
}

function commands(): fc.Arbitrary<Iterable<fc.AsyncCommand<Model, Real>>> {
  const user = fc.integer({ min: 0, max: USERS - 1 });
  const member = fc.integer({ min: 1, max: USERS - 1 });
  const dev: fc.Arbitrary<Dev> = fc.record({ user, extra: fc.boolean() });
  const sub: fc.Arbitrary<SubChoice> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('user' as const), user }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('email' as const), user }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('device' as const), user, extra: fc.boolean() }) },
  );
  const proof: fc.Arbitrary<ProofChoice> = fc.oneof(
    { weight: 2, arbitrary: fc.constant<ProofChoice>({ kind: 'none' }) },
    { weight: 4, arbitrary: fc.nat().map((pick): ProofChoice => ({ kind: 'fitting', pick })) },
    { weight: 1, arbitrary: fc.nat().map((pick): ProofChoice => ({ kind: 'any', pick })) },
  );
  return fc.commands(
    [
      fc.oneof(
        { weight: 1, arbitrary: fc.tuple(dev, sub, fc.nat(), fc.nat(), proof, fc.boolean()).map(([d, s, l, rr, p, a]) => new Declare({ kind: 'as', dev: d }, s, l, rr, p, a)) },
        { weight: 2, arbitrary: fc.tuple(fc.boolean(), sub, fc.nat(), fc.nat(), fc.boolean()).map(([x, s, l, rr, a]) => new Declare({ kind: 'owner', extra: x }, s, l, rr, { kind: 'none' }, a)) },
        {
          weight: 5,
          arbitrary: fc.tuple(fc.nat(), fc.boolean(), sub, fc.nat(), fc.nat(), fc.boolean()).map(([pk, x, s, l, rr, a]) => new Declare({ kind: 'delegate', pick: pk, extra: x }, s, l, rr, { kind: 'none' }, a)),
        },
        { weight: 6, arbitrary: fc.tuple(member, fc.nat(), fc.nat(9)).map(([u, p, n]) => new Join(u, p, n > 0)) },
        { weight: 2, arbitrary: fc.tuple(user, fc.nat()).map(([u, p]) => new RevokeGrant(u, p)) },
        { weight: 1, arbitrary: user.map((u) => new RevokeDevice(u)) },
        { weight: 2, arbitrary: member.map((u) => new Check(u)) },
      ),
    ],
    { maxCommands: MAX_COMMANDS, size: 'max' },
  );
}

// ---------------------------------------------------------------- the runs

async function runModel(overrides: Partial<Config>, side: (srv: TestServer) => Promise<AuthStore>, numRuns: number): Promise<void> {
  const srv = await startServer(overrides);
  const store = await side(srv);
  after(() => store.close());
  const mains: SignedUpDevice[] = [];
  for (let u = 0; u < USERS; u++) mains.push(await signupDevice(srv.url, { name: `user ${u}` }));
  const declarers = [...mains];
  for (let i = 0; i < 6; i++) declarers.push(await signupDevice(srv.url, { name: `declarer ${i}` }));
  const real: Real = { url: srv.url, site: '', mains, extras: [], emails: [], declarers, turn: 0 };
  await fc.assert(
    fc.asyncProperty(commands(), async (cmds) => {
      real.site = await createSite(srv.url, (mains[0] as SignedUpDevice).access);
      real.extras = [];
      real.emails = [];
      const tag = randomBytes(4).toString('hex');
      for (let u = 0; u < USERS; u++) {
        const keys = newDeviceKeys();
        const owner = mains[u] as SignedUpDevice;
        const now = Date.now();
        assert.equal(await store.addDevice(owner.user, { id: keys.device, boxKey: keys.boxKey, name: 'second', createdAt: now }), true);
        const email = `user${u}-${tag}@example.com`;
        await store.addIdentity({ email, provider: 'dev', device: keys.device, user: owner.user, attestedAt: now });
        real.extras.push(keys);
        real.emails.push(email);
      }
      const model: Model = { grants: [], revokedExtra: Array.from({ length: USERS }, () => false), joined: [] };
      await fc.asyncModelRun(() => ({ model, real }), cmds);
      // What every member holds at the end.
      for (let u = 1; u < USERS; u++) await new Check(u).run(model, real);
    }),
    { numRuns, endOnFailure: true, includeErrorInReport: true, ...(process.env.DG_GRANT_MODEL_SEED ? { seed: Number(process.env.DG_GRANT_MODEL_SEED) } : {}) },
  );
}

describe('grants: random declares, joins and revocations against a model of the verification rule (SQLite)', () => {
  it('answers as the model says and leases carry the rights it computes', { timeout: 600_000 }, async () => {
    await runModel({}, async (srv) => new SqliteAuthStore(join(srv.dataDir, 'auth.db')), RUNS ?? 12);
  });
});

const pgSkipped = await pgSkip();
const schema = `test_grantmodel_${randomBytes(4).toString('hex')}`;
after(async () => {
  if (!pgSkipped) await dropPgSchemas(schema);
});

describe('grants: random declares, joins and revocations against a model of the verification rule (PostgreSQL)', { skip: pgSkipped }, () => {
  it('answers as the model says and leases carry the rights it computes', { timeout: 600_000 }, async () => {
    await runModel({ db: PG_URL, dbSchema: schema }, async () => openPgAuthStore(PG_URL, { schema }), RUNS ?? 8);
  });
});
