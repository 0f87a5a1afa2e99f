/**
 * A join racing the revocation of a device its chain rests on, against a PostgreSQL-backed
 * server: whichever way they interleave, no access is left behind the revocation. The
 * devices that matter here are the ones through which an email is attested: a proof naming
 * `email:erin@…` holds only while a live device of the issuer's user logged in as erin, and
 * a grant to `email:fred@…` covers its joiner only while one of its user's live devices did.
 *
 * The first tests pause the join deterministically: the test holds a row lock on the joined
 * grant, which the join's guarded insert must share-lock, runs the whole revocation while the
 * join waits, then lets it go. The last one races the two requests freely, many times.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { openPgAuthStore, type AuthStore } from '../../src/auth/index.js';
import { createSite, declareGrant, get, newDeviceKeys, post, signGrant, signupDevice, type DeviceKeys, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';

const skip = await pgSkip();
const schema = `test_joinrace_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (skip) return;
  await dropPgSchemas(schema);
});

type ErrorBody = { error: { code: string; message: string } };
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a join racing a device revocation (PostgreSQL)', { skip }, async () => {
  const { url } = await startServer({ db: PG_URL, dbSchema: schema });
  // A second node on the same database, through which the test adds devices and attested
  // emails as OIDC logins would (over HTTP, the race loop would run into their per-address
  // rate limits).
  const side: AuthStore = await openPgAuthStore(PG_URL, { schema });
  after(() => side.close());

  /** A new device of `user`, attested for `email` (as an OIDC login of it would leave it). */
  async function attestedDevice(user: string, email: string): Promise<DeviceKeys> {
    const keys = newDeviceKeys();
    const now = Date.now();
    assert.equal(await side.addDevice(user, { id: keys.device, boxKey: keys.boxKey, name: 'attested', createdAt: now }), true);
    await side.addIdentity({ email, provider: 'dev', device: keys.device, user, attestedAt: now });
    return keys;
  }

  const email = (name: string) => `${name}-${randomBytes(6).toString('hex')}@example.com`;
  const join = (d: SignedUpDevice, site: string, grant: string) => post<ErrorBody>(url, '/join', { site, grant }, d.access);
  const revoke = (by: SignedUpDevice, device: string) => post<ErrorBody>(url, '/revoke', { device }, by.access);
  const rightsOn = async (d: SignedUpDevice, site: string) => {
    const r = await get<{ rights: string[] } & ErrorBody>(url, `/sites/${site}`, d.access);
    return r.status === 200 ? r.body.rights : r.body.error.code;
  };

  /**
   * Runs `during` while a join of `grant` (a declared hash) by `joiner` waits, inside its
   * guarded insert, for a row lock the test holds on the grant; then lets the join finish.
   */
  async function withJoinPaused(joiner: SignedUpDevice, site: string, grant: string, during: () => Promise<void>) {
    const lock = new pg.Client({ connectionString: PG_URL });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query(`SELECT 1 FROM "${schema}".auth_grants WHERE hash = $1 FOR UPDATE`, [grant]);
      const pid = (await lock.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const joining = join(joiner, site, grant);
      for (let waited = 0; ; waited += 10) {
        const { rows } = await lock.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [pid]);
        if ((rows[0]?.n ?? 0) > 0) break;
        assert.ok(waited < 10_000, 'the join never reached its guarded insert');
        await wait(10);
      }
      await during();
      await lock.query('ROLLBACK');
      return await joining;
    } finally {
      await lock.end();
    }
  }

  it('refuses a join through an email proof whose only attesting device was revoked while it was being checked', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const issuer = await signupDevice(url);
    const erin = email('erin');
    const attesting = await attestedDevice(issuer.user, erin);
    const proof = await declareGrant(url, owner, { sub: `email:${erin}`, site, logs: ['*'], rights: ['admin'] });
    const member = await signupDevice(url);
    // Valid only while `attesting` is live: the issuer's user holds erin@ through it alone.
    const g = await declareGrant(url, issuer, { sub: `user:${member.user}`, site, logs: ['*'], rights: ['read'], prf: proof.hash });

    const joined = await withJoinPaused(member, site, g.hash, async () => {
      const r = await revoke(issuer, attesting.device);
      assert.equal(r.status, 200, r.text);
    });
    assert.equal(joined.status, 403, joined.text);
    assert.equal(await rightsOn(member, site), 'FORBIDDEN', 'no access outlives the revocation');
    assert.equal((await post(url, '/lease', { site, log: 'chat' }, member.access)).status, 403);
  });

  it('refuses a join of a grant to an email whose only attesting device of the joiner was revoked meanwhile', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const fred = email('fred');
    const g = await declareGrant(url, owner, { sub: `email:${fred}`, site, logs: ['*'], rights: ['read'] });
    const joiner = await signupDevice(url);
    const attesting = await attestedDevice(joiner.user, fred);

    const joined = await withJoinPaused(joiner, site, g.hash, async () => {
      const r = await revoke(joiner, attesting.device);
      assert.equal(r.status, 200, r.text);
    });
    assert.equal(joined.status, 403, joined.text);
    assert.equal(await rightsOn(joiner, site), 'FORBIDDEN');
  });

  it('keeps a join whose email proof is still attested through another live device', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    const issuer = await signupDevice(url);
    const erin = email('erin');
    const first = await attestedDevice(issuer.user, erin);
    await attestedDevice(issuer.user, erin);
    const proof = await declareGrant(url, owner, { sub: `email:${erin}`, site, logs: ['*'], rights: ['admin'] });
    const member = await signupDevice(url);
    const g = await declareGrant(url, issuer, { sub: `user:${member.user}`, site, logs: ['*'], rights: ['read'], prf: proof.hash });

    const joined = await withJoinPaused(member, site, g.hash, async () => {
      assert.equal((await revoke(issuer, first.device)).status, 200);
    });
    assert.equal(joined.status, 200, joined.text);
    assert.deepEqual(await rightsOn(member, site), ['read']);
  });

  it('leaves no access behind when the two race freely', async () => {
    const owner = await signupDevice(url);
    const site = await createSite(url, owner.access);
    // A chain of admins above the email proof: the longer the join's check after it has read
    // the attestation, the wider the window the old guard left open.
    let top = owner;
    let prf: string | undefined;
    for (let k = 0; k < 5; k++) {
      const admin = await signupDevice(url);
      prf = (await declareGrant(url, top, { sub: `user:${admin.user}`, site, logs: ['*'], rights: ['admin'], ...(prf === undefined ? {} : { prf }) })).hash;
      top = admin;
    }
    const issuer = await signupDevice(url);
    /** A proof to a new email attested for the issuer's user through one new device, and grants under it to `to`. */
    const round = async (to: SignedUpDevice[]) => {
      const erin = email('erin');
      const attesting = await attestedDevice(issuer.user, erin);
      const proof = await declareGrant(url, top, { sub: `email:${erin}`, site, logs: ['*'], rights: ['admin'], ...(prf === undefined ? {} : { prf }) });
      const grants = to.map((m) => signGrant(issuer.privateKey, { iss: issuer.device, sub: `user:${m.user}`, site, logs: ['*'], rights: ['read'], prf: proof.hash }).jws);
      return { attesting, grants };
    };
    // How long a join takes here and now (the median of three), to spread the moments by.
    const probe = await signupDevice(url);
    const took: number[] = [];
    for (let k = 0; k < 3; k++) {
      const { attesting, grants } = await round([probe]);
      const t0 = performance.now();
      assert.equal((await join(probe, site, grants[0] as string)).status, 200);
      took.push(performance.now() - t0);
      assert.equal((await revoke(issuer, attesting.device)).status, 200);
    }
    assert.equal(await rightsOn(probe, site), 'FORBIDDEN', 'the revocation removes access joined before it');
    const joinMs = took.sort((a, b) => a - b)[1] as number;

    // Several members join at staggered moments around each revocation.
    const members = await Promise.all(Array.from({ length: 6 }, () => signupDevice(url)));
    const rounds = 40;
    let joins = 0;
    // Rounds go on (at most as many again, with the revocation up to four times later) while
    // no join has won yet: a loaded machine can slow the joins past the measured time.
    for (let i = 0; i < rounds || (joins === 0 && i < 2 * rounds); i++) {
      const { attesting, grants } = await round(members);
      // The joins start within half a join's time, the revocation up to 1.75 joins' time after the first.
      const later = i < rounds ? 1 : 4;
      const results = await Promise.all([
        wait((((i % 8) * joinMs) / 4) * later).then(() => revoke(issuer, attesting.device)),
        ...members.map((m, j) => wait((j * joinMs) / 10).then(() => join(m, site, grants[j] as string))),
      ]);
      assert.equal(results[0]?.status, 200, results[0]?.text);
      joins += results.slice(1).filter((r) => r.status === 200).length;
      for (const [j, m] of members.entries()) {
        assert.equal(await rightsOn(m, site), 'FORBIDDEN', `round ${i}, member ${j}: access outlived the revocation of the only device attesting the proof's email`);
      }
    }
    // Some joins won the race (and were swept), so the interleavings were really explored.
    assert.ok(joins > 0, 'no join ever came before the revocation');
  });
});
