/**
 * A process with every role on NATS, and a NATS client that floods every dg.* subject with
 * messages that are malformed, mistyped, deeply nested or near the size limit (a process of
 * another version, or anyone who can reach NATS). The process stays up and ready, answers
 * requests with errors, logs each kind of refusal a bounded number of times, and answers a
 * flood of valid dg.notify.hello with a bounded number of presence snapshots.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { SUBJECTS, type PresenceMessage } from '../../src/protocol/bus-messages.js';
import { natsServerSkip, startOwnNats } from '../helpers/nats-server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { sleep, spawnRoles } from '../server/child.js';

const skip = natsServerSkip() || (await pgSkip());
const schema = `test_refused_bus_${randomBytes(4).toString('hex')}`;

after(async () => {
  if (!skip) await dropPgSchemas(schema);
});

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

function payloads(maxPayload: number): (string | Uint8Array)[] {
  return [
    '',
    'not json {',
    new Uint8Array([0x22, 0xff, 0x22]),
    'null',
    '7',
    '"x"',
    '[]',
    '{}',
    JSON.stringify({ user: 1, device: [], site: {}, log: null, reason: 5, access: 'x', id: 3, url: 1, node: 1, online: 'a', instance: 5, version: 'x', changes: 'x', full: 1, event: 7 }),
    JSON.stringify({ user: 'u', site: 's', at: 1e308, ttlMs: -1, length: 1e308, ageMs: -1, version: 1e308, node: '', full: 'yes', online: [1], offline: [] }),
    '{"__proto__":{"ok":true,"allowed":true},"user":"a"}',
    `{"user":${nested(200)}}`,
    nested(Math.floor(maxPayload / 2) - 10),
    JSON.stringify({ user: 'u'.repeat(maxPayload - 100) }),
  ];
}

/** The log lines of `output` (JSON, one a line) counted by message. */
function countLines(output: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of output.split('\n')) {
    let msg: string;
    try {
      msg = String((JSON.parse(line) as { msg?: unknown }).msg);
    } catch {
      continue;
    }
    counts.set(msg, (counts.get(msg) ?? 0) + 1);
  }
  return counts;
}

describe('a process flooded with refused bus messages', { skip }, () => {
  it('stays up and ready, answers errors, and logs at a bounded rate', { timeout: 120_000 }, async () => {
    const nats = await startOwnNats();
    let nc: NatsConnection | null = null;
    try {
      const { child, url } = await spawnRoles('auth,tail,notify', nats.url, PG_URL, schema, 'dg-refused-bus-');
      nc = await natsConnect({ servers: nats.url, name: 'flood' });
      const subjects = Object.values(SUBJECTS);
      const all = payloads(nc.info?.max_payload ?? 1_048_576);
      // The messages near the size limit once, the others many times.
      for (let round = 0; round < 20; round++) {
        for (const subject of subjects) for (const p of round === 0 ? all : all.slice(0, -2)) nc.publish(subject, p);
        await nc.flush();
      }
      // Requests are answered with an error, and at once.
      for (const subject of [SUBJECTS.authAccess, SUBJECTS.authJoin, SUBJECTS.notifyUpdate]) {
        for (const p of all) {
          const reply = await nc.request(subject, p, { timeout: 5000 });
          const r: { ok?: unknown; error?: { code?: unknown } } = reply.json();
          assert.equal(r.ok, false, `${subject}: ${String(p).slice(0, 40)}`);
          assert.equal(r.error?.code, 'BAD_REQUEST', `${subject}: ${String(p).slice(0, 40)}`);
        }
      }

      // A flood of valid hellos: each used to be answered with a full snapshot (and up to a
      // hundred more messages), now at most one answer a second goes out.
      const snapshots: PresenceMessage[] = [];
      const sub = nc.subscribe(SUBJECTS.notifyPresence, {
        callback: (_e, m) => {
          const p = m.json<PresenceMessage>();
          if (p.full) snapshots.push(p);
        },
      });
      await nc.flush();
      const t0 = Date.now();
      for (let i = 0; i < 300; i++) nc.publish(SUBJECTS.notifyHello, JSON.stringify({ instance: `flood-${i}` }));
      await nc.flush();
      await sleep(1500);
      sub.unsubscribe();
      const seconds = (Date.now() - t0) / 1000;
      // The periodic snapshot (every 10 s) may fall in the window too.
      assert.ok(snapshots.length >= 1 && snapshots.length <= Math.ceil(seconds) + 2, `${snapshots.length} snapshots in ${seconds} s`);

      assert.equal(child.proc.exitCode, null, child.output());
      assert.equal((await fetch(`${url}/ready`)).status, 200);
      const counts = countLines(child.output());
      for (const [msg, n] of counts) assert.ok(n <= 12, `"${msg}" logged ${n} times`);
    } finally {
      await nc?.close();
      await nats.stop();
    }
  });
});
