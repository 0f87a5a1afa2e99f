/**
 * How many sessions a node holds: over `maxSessions`, or with `maxPendingSessions` not yet
 * connected, an upgrade is refused with HTTP 503 and `retry-after` before any WebSocket
 * exists; the sessions already there are untouched, and room comes back as they connect
 * or close.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { loadConfig } from '../../src/server/config.js';
import { signupDevice } from '../helpers/auth-client.js';
import { TailClient } from '../helpers/tail-client.js';
import { until, world } from './fixture.js';

interface Refusal {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** Tries an upgrade: the open socket, or the HTTP answer that refused it. */
function tryOpen(url: string, headers: Record<string, string> = {}): Promise<WebSocket | Refusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'datagrove.v1', { perMessageDeflate: false, headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body });
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

function opened(r: WebSocket | Refusal): WebSocket {
  assert.ok(r instanceof WebSocket, `the upgrade was refused (${(r as Refusal).status})`);
  return r;
}

/** Sends `connect` on a raw socket and waits for its reply. */
function connectRaw(ws: WebSocket, token: string): Promise<unknown> {
  return new Promise((resolve) => {
    ws.once('message', (data: Buffer) => resolve(JSON.parse(data.toString('utf8'))));
    ws.send(JSON.stringify({ id: 1, op: 'connect', token }));
  });
}

function refused(r: WebSocket | Refusal): Refusal {
  assert.ok(!(r instanceof WebSocket), 'the upgrade was accepted');
  return r;
}

async function refusedCount(url: string, reason: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^datagrove_tail_refused_upgrades_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return Number(m?.[1] ?? 0);
}

describe('tail: sessions per node', async () => {
  const w = await world({ tailLimits: { maxSessions: 3, maxPendingSessions: 2 } });
  const open: { close(): void }[] = [];
  after(() => {
    for (const s of open) s.close();
  });

  it('refuses upgrades with 503 while too many sessions wait to connect, and again once one connects', async () => {
    const a = await TailClient.open(w.wsUrl);
    const b = await TailClient.open(w.wsUrl);
    open.push(a, b);
    const r = refused(await tryOpen(w.wsUrl));
    assert.equal(r.status, 503);
    assert.equal(r.retryAfter, '5');
    assert.deepEqual(JSON.parse(r.body), { error: { code: 'UNAVAILABLE', message: 'too many sessions' } });
    assert.equal(await refusedCount(w.url, 'pending'), 1);
    // The waiting sessions are untouched: one connects, which makes room for another.
    await a.call('connect', { token: w.owner.access });
    const c = await TailClient.open(w.wsUrl);
    open.push(c);
    await c.call('connect', { token: w.owner.access });
    assert.deepEqual(await a.call('ping'), { re: 2 });
  });

  it('refuses upgrades with 503 while the node holds maxSessions, and takes one again when a session closes', async () => {
    // a, b and c from the test before: three sessions, the most this node holds.
    assert.equal(refused(await tryOpen(w.wsUrl)).status, 503);
    assert.equal(await refusedCount(w.url, 'sessions'), 1);
    const last = open.pop();
    last?.close();
    let next: WebSocket | Refusal | null = null;
    await until(async () => {
      next = await tryOpen(w.wsUrl);
      return next instanceof WebSocket;
    }, 5000, 'room for a session after one closed');
    const ws = next as unknown as WebSocket;
    open.push({ close: () => ws.close() });
  });

  it('takes the limit from --max-sessions / DATAGROVE_MAX_SESSIONS, at least 1', () => {
    assert.equal(loadConfig([], {}).maxSessions, 100_000);
    assert.equal(loadConfig(['--max-sessions', '250'], {}).maxSessions, 250);
    assert.equal(loadConfig([], { DATAGROVE_MAX_SESSIONS: '7' }).maxSessions, 7);
    assert.throws(() => loadConfig(['--max-sessions', '0'], {}), /--max-sessions must be at least 1/);
  });
});

describe('tail: sessions of one user on a node', async () => {
  const w = await world({ tailLimits: { maxSessionsPerUser: 2 } });

  it('refuses a connect beyond the limit with RATE_LIMITED and 4429, and takes one again when a session closes', async () => {
    const a = await TailClient.connect(w.wsUrl, w.owner.access);
    const b = await TailClient.connect(w.wsUrl, w.owner.access);
    const c = await TailClient.open(w.wsUrl);
    const err = await c.failure('connect', { token: w.owner.access });
    assert.equal(err.code, 'RATE_LIMITED');
    assert.match(err.message, /at most 2 sessions of one user/);
    assert.equal((await c.closedWith(5000)).code, 4429);
    // Another user is not affected; a re-connect of a connected session is not a new one.
    const other = await signupDevice(w.url);
    const o = await TailClient.connect(w.wsUrl, other.access);
    assert.equal((await a.call<{ device: string }>('connect', { token: w.owner.access })).device, w.owner.device);
    a.close();
    await until(async () => {
      const d = await TailClient.open(w.wsUrl);
      const r = await d.request('connect', { token: w.owner.access });
      d.close();
      return r.error === undefined;
    }, 5000, 'room for the user after a session closed');
    b.close();
    o.close();
  });
});

describe('tail: sessions that never connect', async () => {
  const w = await world({ tailLimits: { maxSessions: 100, maxPendingSessions: 2, connectTimeoutMs: 300 } });

  it('give their place back when they close or time out, however often', async () => {
    for (let round = 0; round < 5; round++) {
      const a = await TailClient.open(w.wsUrl);
      const b = await TailClient.open(w.wsUrl);
      assert.equal(refused(await tryOpen(w.wsUrl)).status, 503, `round ${round}: full`);
      // One closes on its own; the node closes the other (4401) when its time is up.
      a.close();
      await b.closed;
      const c = await tryOpen(w.wsUrl);
      assert.ok(c instanceof WebSocket, `round ${round}: room again`);
      c.terminate();
      await until(async () => {
        const text = await (await fetch(`${w.url}/metrics`)).text();
        return /^datagrove_tail_sessions 0$/m.test(text);
      }, 5000, 'no sessions left');
    }
  });
});

describe('tail: sessions not yet connected, per client address', async () => {
  const behind = await world({ trustProxy: ['loopback'], tailLimits: { maxPendingPerAddress: 2 } });
  // This one takes the limit from the server options (--max-pending-per-address).
  const direct = await world({ maxPendingPerAddress: 2 });
  const sockets: WebSocket[] = [];
  after(() => {
    for (const ws of sockets) ws.terminate();
  });
  const from = (ip: string) => ({ 'x-forwarded-for': ip });

  it('counts each client behind a trusted proxy apart (X-Forwarded-For)', async () => {
    const a1 = opened(await tryOpen(behind.wsUrl, from('198.51.100.1')));
    const a2 = opened(await tryOpen(behind.wsUrl, from('198.51.100.1')));
    sockets.push(a1, a2);
    const r = refused(await tryOpen(behind.wsUrl, from('198.51.100.1')));
    assert.equal(r.status, 503);
    assert.equal(await refusedCount(behind.url, 'address'), 1);
    sockets.push(opened(await tryOpen(behind.wsUrl, from('198.51.100.2'))));
    // A connected session no longer counts: the address has room again.
    assert.equal(((await connectRaw(a1, behind.owner.access)) as { re?: number }).re, 1);
    sockets.push(opened(await tryOpen(behind.wsUrl, from('198.51.100.1'))));
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    sockets.push(opened(await tryOpen(direct.wsUrl, from('198.51.100.1'))));
    sockets.push(opened(await tryOpen(direct.wsUrl, from('198.51.100.2'))));
    assert.equal(refused(await tryOpen(direct.wsUrl, from('198.51.100.3'))).status, 503, 'all three come from 127.0.0.1');
    assert.equal(await refusedCount(direct.url, 'address'), 1);
  });

  it('takes the limit from --max-pending-per-address / DATAGROVE_MAX_PENDING_PER_ADDRESS, at least 1', () => {
    assert.equal(loadConfig([], {}).maxPendingPerAddress, 100);
    assert.equal(loadConfig(['--max-pending-per-address', '5000'], {}).maxPendingPerAddress, 5000);
    assert.equal(loadConfig([], { DATAGROVE_MAX_PENDING_PER_ADDRESS: '3' }).maxPendingPerAddress, 3);
    assert.throws(() => loadConfig(['--max-pending-per-address', '0'], {}), /--max-pending-per-address must be at least 1/);
    assert.throws(() => loadConfig([], { DATAGROVE_MAX_PENDING_PER_ADDRESS: 'many' }), /must be a non-negative integer/);
  });
});

describe('tail: sessions per node from the server options', async () => {
  const w = await world({ maxSessions: 20 });

  it('lets a tenth of --max-sessions wait to connect', async () => {
    const waiting = [await TailClient.open(w.wsUrl), await TailClient.open(w.wsUrl)];
    try {
      assert.equal(refused(await tryOpen(w.wsUrl)).status, 503);
    } finally {
      for (const c of waiting) c.close();
    }
  });
});
