/**
 * Access that grows: a member who leased a log read-only and then joins a read+write grant
 * (over HTTP, with `attest`, or on another node) writes from then on. The tail node must not
 * keep answering from the read-only answer it cached: the next lease gives write, the other
 * holders hear `peer` with `write: true`, and `writers` lists the device.
 *
 * Runs against SQLite and, when it is there, PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openPgAuthStore, openSqliteAuthStore, type AuthStore } from '../../src/auth/index.js';
import { SUBJECTS } from '../../src/protocol/bus-messages.js';
import type { Config } from '../../src/server/config.js';
import { declareGrant, post } from '../helpers/auth-client.js';
import { dropPgSchemas, PG_URL, pgSkip } from '../helpers/services.js';
import { entry } from '../helpers/tail-client.js';
import { connect, lease, logName, member, sleep, world, type Lease, type World } from './fixture.js';

const pgSkipReason = await pgSkip();
const schemas: string[] = [];
after(async () => {
  if (schemas.length > 0) await dropPgSchemas(...schemas);
});

interface Backend {
  name: string;
  skip: string | false;
  /** Server options for this backend (a fresh schema for PostgreSQL). */
  config(): Partial<Config>;
  /** A second connection to the server's auth store: writes there publish nothing on the bus. */
  side(w: World, config: Partial<Config>): Promise<AuthStore>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    skip: false,
    config: () => ({}),
    side: async (w) => openSqliteAuthStore(join(w.srv.dataDir, 'auth.db')),
  },
  {
    name: 'PostgreSQL',
    skip: pgSkipReason,
    config: () => {
      const dbSchema = `test_widen_${randomBytes(4).toString('hex')}`;
      schemas.push(dbSchema);
      return { db: PG_URL, dbSchema };
    },
    side: (_w, config) => openPgAuthStore(PG_URL, { schema: config.dbSchema }),
  },
];

/** The peer event a holder of another device gets about `device`. */
const peerJoin = (handle: string, device: string, write: boolean) => ({ ev: 'peer', handle, device, state: 'join', write });

for (const backend of backends) {
  describe(`tail: access that grows (${backend.name})`, { skip: backend.skip }, async () => {
    const config = backend.config();
    const w = await world(config);

    /**
     * The owner leads a fresh log; a member who joined a read grant over HTTP follows it, and
     * the leader has heard that the member may not write.
     */
    async function readOnlyFollower() {
      const log = logName();
      const m = await member(w, ['read']);
      assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
      const leader = await connect(w, w.owner);
      const ll = await lease(leader, w.site, log);
      assert.equal(ll.role, 'leader');
      const c = await connect(w, m.dev);
      const l = await lease(c, w.site, log, { lead: false });
      assert.equal(l.role, 'follower');
      assert.deepEqual(l.writers, [w.owner.device]);
      assert.deepEqual(await leader.nextEvent('peer', ll.handle), peerJoin(ll.handle, m.dev.device, false));
      // A read+write grant for the same user, not joined yet.
      const wider = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: ['*'], rights: ['read', 'write'] });
      return { log, m, leader, ll, c, l, wider };
    }

    /** Runs `fn` while the bus loses every dg.tail.access message (as a NATS outage would). */
    async function withoutAccessNotices(fn: () => Promise<void>): Promise<void> {
      const bus = w.srv.server.bus;
      const publish = bus.publish;
      bus.publish = (subject, message) => {
        if (subject !== SUBJECTS.tailAccess) publish.call(bus, subject, message);
      };
      try {
        await fn();
      } finally {
        bus.publish = publish;
      }
    }

    /**
     * After the member's access grew: the leader heard it, a new session of the member's
     * device is told that its other session writes, and once the owner lets go the member leads
     * and its write lands.
     */
    async function assertWrites(s: Awaited<ReturnType<typeof readOnlyFollower>>): Promise<void> {
      assert.deepEqual(await s.leader.nextEvent('peer', s.ll.handle, 5000), peerJoin(s.ll.handle, s.m.dev.device, true));
      const again = await lease(s.leader, w.site, s.log);
      assert.deepEqual(again.writers, [s.m.dev.device]);
      const c2 = await connect(w, s.m.dev);
      const l2 = await lease(c2, w.site, s.log, { lead: false });
      assert.deepEqual([...l2.writers].sort(), [s.m.dev.device, w.owner.device].sort(), 'the device\'s other session writes');
      assert.equal((await s.leader.request('release', { handle: s.ll.handle })).error, undefined);
      const mine = await lease(s.c, w.site, s.log);
      assert.equal(mine.role, 'leader');
      assert.equal((await s.c.call<{ length: number }>('write', { handle: mine.handle, at: mine.length, entries: [entry('mine')] })).length, mine.length + 1);
      for (const x of [s.leader, s.c, c2]) x.close();
    }

    it('takes a read+write grant joined over HTTP at the next lease: peer write:true, writers list the device', async () => {
      const s = await readOnlyFollower();
      assert.equal((await post(w.url, '/join', { site: w.site, grant: s.wider.hash }, s.m.dev.access)).status, 200);
      const again = await lease(s.c, w.site, s.log, { lead: false });
      assert.equal(again.handle, s.l.handle);
      await assertWrites(s);
    });

    it('takes a read+write grant joined with attest at the next lease: peer write:true, writers list the device', async () => {
      const s = await readOnlyFollower();
      // The node's own attest is enough: auth's notice on the bus is lost here.
      await withoutAccessNotices(async () => {
        const [att, again] = await Promise.all([s.c.request('attest', { grant: s.wider.jws }), s.c.request('lease', { site: w.site, log: s.log, lead: false })]);
        assert.deepEqual(att, { re: 3, site: w.site, logs: ['*'], rights: ['read', 'write'] });
        assert.equal(again.handle, s.l.handle);
        await assertWrites(s);
      });
    });

    it('updates a live handle when its access grows, without a new lease', async () => {
      const s = await readOnlyFollower();
      const own = await connect(w, s.m.dev);
      const lo = await lease(own, w.site, s.log, { lead: false });
      assert.deepEqual(await s.c.nextEvent('peer', s.l.handle), { ev: 'peer', handle: s.l.handle, device: s.m.dev.device, state: 'join', write: false });
      assert.equal((await post(w.url, '/join', { site: w.site, grant: s.wider.hash }, s.m.dev.access)).status, 200);
      // Both handles of the device now write: its other session hears it of this one too.
      assert.deepEqual(await own.nextEvent('peer', lo.handle, 5000), { ev: 'peer', handle: lo.handle, device: s.m.dev.device, state: 'join', write: true });
      own.close();
      await assertWrites(s);
    });

    it('drops its cached answer when another node says the access grew (dg.tail.access), and not before', async () => {
      const s = await readOnlyFollower();
      // The access row is written by another connection to the store (as a join on another
      // auth node would): nothing reaches this node's bus yet.
      const side = await backend.side(w, config);
      try {
        const ok = await side.putAccess(
          { user: s.m.dev.user, site: w.site, grant: s.wider.hash, logs: ['*'], rights: ['read', 'write'], expiresAt: null, createdAt: Date.now() },
          { grants: [s.wider.hash], devices: [w.owner.device], anyOf: [] },
        );
        assert.equal(ok, true);
      } finally {
        await side.close();
      }
      // The cached answer still serves the lease (no question to auth on the hot path).
      await lease(s.c, w.site, s.log, { lead: false });
      await s.leader.call('ping');
      assert.equal(s.leader.events.filter((e) => e.ev === 'peer').length, 0, 'still read-only here');
      w.srv.server.bus.publish(SUBJECTS.tailAccess, { user: s.m.dev.user, site: w.site, at: Date.now() });
      await assertWrites(s);
    });

    it('asks auth again about a cached answer once it is older than accessCacheTtlMs, though no notice came', async () => {
      const vConfig = backend.config();
      const v = await world({ ...vConfig, tailLimits: { accessCacheTtlMs: 1500 } });
      const log = logName();
      const m = await member(v, ['read']);
      assert.equal((await post(v.url, '/join', { site: v.site, grant: m.grant.hash }, m.dev.access)).status, 200);
      const leader = await connect(v, v.owner);
      const ll = await lease(leader, v.site, log);
      const c = await connect(v, m.dev);
      await lease(c, v.site, log, { lead: false });
      assert.deepEqual(await leader.nextEvent('peer', ll.handle), peerJoin(ll.handle, m.dev.device, false));
      const wider = await declareGrant(v.url, v.owner, { sub: `user:${m.dev.user}`, site: v.site, logs: ['*'], rights: ['read', 'write'] });
      const side = await backend.side(v, vConfig);
      try {
        await side.putAccess(
          { user: m.dev.user, site: v.site, grant: wider.hash, logs: ['*'], rights: ['read', 'write'], expiresAt: null, createdAt: Date.now() },
          { grants: [wider.hash], devices: [v.owner.device], anyOf: [] },
        );
      } finally {
        await side.close();
      }
      await sleep(1600);
      await lease(c, v.site, log, { lead: false });
      assert.deepEqual(await leader.nextEvent('peer', ll.handle, 3000), peerJoin(ll.handle, m.dev.device, true));
      leader.close();
      c.close();
      await v.srv.stop();
    });

    it('asks auth instead of trusting a lease token minted before the access grew', async () => {
      const log = logName();
      const m = await member(w, ['read']);
      assert.equal((await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access)).status, 200);
      const t = await post<{ token: string }>(w.url, '/lease', { site: w.site, log }, m.dev.access);
      assert.equal(t.status, 200, t.text);
      const wider = await declareGrant(w.url, w.owner, { sub: `user:${m.dev.user}`, site: w.site, logs: ['*'], rights: ['read', 'write'] });
      assert.equal((await post(w.url, '/join', { site: w.site, grant: wider.hash }, m.dev.access)).status, 200);
      const c = await connect(w, m.dev);
      // The token says read only; the member may write now, and the log has no leader.
      const l: Lease = await lease(c, w.site, log, { token: t.body.token });
      assert.equal(l.role, 'leader');
      c.close();
    });
  });
}
