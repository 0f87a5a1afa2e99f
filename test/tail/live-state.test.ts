import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metric } from '../helpers/metrics.js';
import { entry, type TailClient } from '../helpers/tail-client.js';
import { connect, joined, lease, logName, until, world, type World } from './fixture.js';

const GRACE = 300;
const LOGS = 12;

/** What the node holds in memory for tail sessions, from /metrics. */
async function held(w: World): Promise<{ sessions: number; leaders: number; followers: number; logs: number }> {
  return {
    sessions: await metric(w.url, 'datagrove_tail_sessions'),
    leaders: await metric(w.url, 'datagrove_tail_leases', 'role="leader"'),
    followers: await metric(w.url, 'datagrove_tail_leases', 'role="follower"'),
    logs: await metric(w.url, 'datagrove_tail_live_logs'),
  };
}

describe('tail: state let go once its sessions are gone', async () => {
  const w: World = await world({ leaseGraceMs: GRACE });

  it('drops every log, lease and session after use, leadership graces included', async () => {
    const a = await joined(w, ['read', 'write']);
    const b = await joined(w, ['read']);
    const clients: TailClient[] = [];
    const opened = async (dev: Parameters<typeof connect>[1]) => {
      const c = await connect(w, dev);
      clients.push(c);
      return c;
    };
    const owner = await opened(w.owner);
    const ca = await opened(a);
    const cb = await opened(b);
    for (let i = 0; i < LOGS; i++) {
      const log = logName('live');
      const l = await lease(owner, w.site, log);
      assert.equal(l.role, 'leader');
      const la = await lease(ca, w.site, log);
      const lb = await lease(cb, w.site, log);
      for (let k = 0; k < 3; k++) {
        assert.equal((await owner.call('write', { handle: l.handle, at: k, entries: [entry(`e${k}`)], wid: `${log}.${k}` })).length, k + 1);
      }
      await ca.call('signal', { handle: la.handle, to: 'leader', kind: 'data', data: { i } });
      assert.equal((await cb.call<{ entries: string[] }>('read', { handle: lb.handle, from: 0 })).entries.length, 3);
      // Half the logs are released by their leader before the sessions end (no grace).
      if (i % 2 === 0) await owner.call('release', { handle: l.handle });
    }
    const during = await held(w);
    assert.equal(during.sessions, 3);
    assert.equal(during.leaders, LOGS / 2);
    assert.equal(during.followers, 2 * LOGS);
    assert.equal(during.logs, LOGS);

    // The leader's session ends first: its logs stay (followers, then the grace) ...
    owner.close();
    await until(async () => (await held(w)).sessions === 2, 10_000, 'the leader session to close');
    assert.equal((await held(w)).logs, LOGS);
    // ... and once every session is gone and the graces ran out, nothing is left.
    for (const c of clients) c.close();
    await until(async () => {
      const h = await held(w);
      return h.sessions === 0 && h.leaders === 0 && h.followers === 0 && h.logs === 0;
    }, 10_000, 'sessions, leases and live logs back to zero');
  });
});
