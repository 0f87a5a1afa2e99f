/**
 * `log.state` is `recovering` while the Log waits. An append found in the log by the
 * catch-up after a reconnect resolves once the Log has recovered: by then `log.state` is
 * `ready` (and the `state` event said so), not still `recovering`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LogState } from '../../src/client/index.js';
import { enc, filterMessages, makeClient, record, server, sharedSite, waitFor, type SocketClass } from './harness.js';

/** A socket class that, once armed, cuts the connection instead of delivering the next write reply. */
function replyCutter(): { arm: () => void; cuts: () => number; socket: (Tracked: SocketClass) => SocketClass } {
  let armed = false;
  let cuts = 0;
  const socket = (Tracked: SocketClass): SocketClass =>
    class extends Tracked {
      private readonly writes = new Set<number>();
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        filterMessages(this, (ev, deliver) => {
          const msg = JSON.parse(String(ev.data)) as { re?: number };
          if (armed && msg.re !== undefined && this.writes.has(msg.re)) {
            // Committed on the server, but the writer never hears so.
            armed = false;
            cuts++;
            this.terminate();
            return;
          }
          deliver(ev);
        });
      }
      override send(data: unknown, ...rest: unknown[]): void {
        const msg = JSON.parse(String(data)) as { op: string; id: number };
        if (msg.op === 'write') this.writes.add(msg.id);
        (super.send as (...a: unknown[]) => void)(data, ...rest);
      }
    };
  return { arm: () => (armed = true), cuts: () => cuts, socket };
}

test('an append found in the log after a reconnect resolves with the log ready, not recovering', async () => {
  const srv = await server();
  const cutter = replyCutter();
  const a = await makeClient(srv, { socket: cutter.socket });
  after(() => a.client.close());
  const site = await sharedSite(a, []);
  const log = a.client.openLog(site, 'chat');
  const seen = record(log);
  await log.opened;
  await log.append([enc('before')]);
  const states: LogState[] = [];
  log.on('state', (s) => states.push(s));

  cutter.arm();
  const [index, stateThen, statesThen] = await log.append([enc('across')]).then(([i]) => [i, log.state, [...states]] as const);
  assert.equal(cutter.cuts(), 1, 'the write reply was cut');
  assert.equal(index, 1);
  assert.equal(stateThen, 'ready', 'the log had recovered when the append resolved');
  assert.deepEqual(statesThen, ['recovering', 'ready'], 'the state event said so first');
  await waitFor('delivered', () => seen.seen.length === 2);
  assert.deepEqual(seen.text(), ['0:before', '1:across']);
});
