/**
 * `datagrove backup`, `restore` and `lift-epochs` as an operator runs them, in real child
 * processes: a backup taken while a leader keeps writing, refused misuse, and a restored
 * directory that serves every entry acknowledged before the backup, the old tokens, and
 * epochs above any the lost history handed out.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { openPgLogStore } from '../../src/tail/pg-log-store.js';
import { EPOCH_LIFT, epochTimeFloor } from '../../src/tail/log-store.js';
import { createSite, signupDevice } from '../helpers/auth-client.js';
import { tempDir } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { decodeEntry, entry, TailClient } from '../helpers/tail-client.js';
import { freePort, runCli, serveDataDir, stopCleanly } from './child.js';

interface Lease {
  handle: string;
  epoch: number;
  length: number;
  role: string;
}

const pgSkipped = await pgSkip();

describe('datagrove backup and restore', () => {
  it('backs up a serving monolith mid-write and restores every entry acked before it, the keys, and higher epochs', { timeout: 180_000 }, async () => {
    const root = tempDir('dg-backup-');
    const data = join(root, 'data');
    const copy = join(root, 'copy');
    const restored = join(root, 'restored');
    const first = await serveDataDir(data);
    const owner = await signupDevice(first.url);
    const site = await createSite(first.url, owner.access);
    const c = await TailClient.connect(first.wsUrl, owner.access);
    const l = await c.call<Lease>('lease', { site, log: 'main' });
    assert.equal(l.role, 'leader');
    let acked = 0;
    const writeNext = async () => {
      const r = await c.call<{ length: number }>('write', { handle: l.handle, at: acked, entries: [entry(`e${acked}`)], wid: `w${acked}` });
      assert.equal(r.length, acked + 1);
      acked++;
    };
    for (let i = 0; i < 50; i++) await writeNext();

    // The leader keeps writing while the backup runs.
    let writing = true;
    const writer = (async () => {
      while (writing) await writeNext();
    })();
    const ackedBefore = acked;
    const b = await runCli(['backup', '--data', data, '--to', copy]);
    const ackedAfter = acked;
    writing = false;
    await writer;
    assert.equal(b.code, 0, b.output);
    assert.match(b.output, /tail\.db\t\d+ bytes\tsha256 [0-9a-f]{64}/);
    await stopCleanly(first.child);
    assert.ok(ackedAfter > ackedBefore, 'writes went on during the backup');

    // The copy: private, complete, described by its manifest.
    assert.equal(statSync(copy).mode & 0o777, 0o700);
    const names = readdirSync(copy).sort();
    assert.deepEqual(names, ['attestation-keys.json', 'auth.db', 'datagrove-backup.json', 'hmac-keys.json', 'notify.db', 'tail.db', 'vapid-keys.json']);
    for (const n of names) assert.equal(statSync(join(copy, n)).mode & 0o777, 0o600, `${n} mode`);
    const manifest = JSON.parse(readFileSync(join(copy, 'datagrove-backup.json'), 'utf8')) as { files: { name: string }[] };
    assert.deepEqual(manifest.files.map((f) => f.name).sort(), names.filter((n) => n !== 'datagrove-backup.json'));

    // A backup is not served as it is.
    const port = await freePort();
    const refused = await runCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', copy]);
    assert.equal(refused.code, 2, refused.output);
    assert.match(refused.output, /is a backup .*datagrove restore --from/);

    const r = await runCli(['restore', '--from', copy, '--data', restored]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /the epochs of 1 logs were lifted/);
    assert.equal(existsSync(join(restored, 'datagrove-backup.json')), false);

    const second = await serveDataDir(restored);
    // The HMAC keys came along: a token of the old server still connects.
    const c2 = await TailClient.connect(second.wsUrl, owner.access);
    const l2 = await c2.call<Lease>('lease', { site, log: 'main' });
    assert.equal(l2.role, 'leader');
    assert.ok(l2.epoch > EPOCH_LIFT, `epoch ${l2.epoch} is above the lift`);
    // Every entry acked before the backup began is there, in order; nothing after its snapshot.
    // (At most one write was in flight when the backup ended: it may be in the copy unacked.)
    assert.ok(l2.length >= ackedBefore && l2.length <= ackedAfter + 1, `length ${l2.length} within [${ackedBefore}, ${ackedAfter + 1}]`);
    const got: string[] = [];
    while (got.length < l2.length) {
      const read = await c2.call<{ entries: string[] }>('read', { handle: l2.handle, from: got.length });
      got.push(...read.entries.map(decodeEntry));
    }
    assert.deepEqual(got, Array.from({ length: l2.length }, (_, i) => `e${i}`));
    assert.equal((await c2.call<{ length: number }>('write', { handle: l2.handle, at: l2.length, entries: [entry('after')] })).length, l2.length + 1);
    c2.close();
    await stopCleanly(second.child);

    // The same backup restored again, later: the epochs the first restore handed out are
    // lost history too, and are passed as well.
    const restoredAgain = join(root, 'restored-again');
    const r2 = await runCli(['restore', '--from', copy, '--data', restoredAgain]);
    assert.equal(r2.code, 0, r2.output);
    const fourth = await serveDataDir(restoredAgain);
    const c4 = await TailClient.connect(fourth.wsUrl, owner.access);
    const l4 = await c4.call<Lease>('lease', { site, log: 'main' });
    assert.ok(l4.epoch > l2.epoch, `epoch ${l4.epoch} of the second restore is above ${l2.epoch} of the first`);
    assert.ok(Number.isSafeInteger(l4.epoch));
    c4.close();
    await stopCleanly(fourth.child);

    // Restoring over data is refused; lift-epochs (for other restores) lifts once more.
    const again = await runCli(['restore', '--from', copy, '--data', restored]);
    assert.equal(again.code, 2, again.output);
    assert.match(again.output, /is not empty/);
    const lift = await runCli(['lift-epochs', '--data', restored]);
    assert.equal(lift.code, 0, lift.output);
    assert.match(lift.output, /the epochs of 1 logs were lifted/);
    const third = await serveDataDir(restored);
    const c3 = await TailClient.connect(third.wsUrl, owner.access);
    assert.ok((await c3.call<Lease>('lease', { site, log: 'main' })).epoch > 2 * EPOCH_LIFT);
    c3.close();
    await stopCleanly(third.child);
  });

  it('refuses what would mix or lose data, with a clear message', { timeout: 120_000 }, async () => {
    const root = tempDir('dg-backup-bad-');
    const data = join(root, 'data');
    const first = await serveDataDir(data);
    await signupDevice(first.url);
    await stopCleanly(first.child);

    const missing = await runCli(['backup', '--data', join(root, 'nope'), '--to', join(root, 'x')]);
    assert.equal(missing.code, 2, missing.output);
    assert.match(missing.output, /no data directory at/);
    const noTo = await runCli(['backup', '--data', data]);
    assert.equal(noTo.code, 2, noTo.output);
    assert.match(noTo.output, /--to DIR is required/);
    const busy = join(root, 'busy');
    assert.equal((await runCli(['backup', '--data', data, '--to', busy])).code, 0);
    const full = await runCli(['backup', '--data', data, '--to', busy]);
    assert.equal(full.code, 2, full.output);
    assert.match(full.output, /is not empty/);
    const pg = await runCli(['backup', '--data', data, '--to', join(root, 'y'), '--db', 'postgres://localhost/x']);
    assert.equal(pg.code, 2, pg.output);
    assert.match(pg.output, /PostgreSQL's own tools/);

    // --no-keys leaves the key files out (a copy that must not be able to mint tokens).
    const bare = join(root, 'bare');
    const noKeys = await runCli(['backup', '--data', data, '--to', bare, '--no-keys']);
    assert.equal(noKeys.code, 0, noKeys.output);
    assert.deepEqual(readdirSync(bare).sort(), ['auth.db', 'datagrove-backup.json', 'notify.db', 'tail.db']);

    // A backup that fails half-way (here: a database file that is not one) leaves nothing.
    const broken = join(root, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'auth.db'), readFileSync(join(data, 'auth.db')));
    writeFileSync(join(broken, 'tail.db'), 'not a database at all, but long enough to look like a file'.repeat(100));
    const out = join(root, 'out');
    const failed = await runCli(['backup', '--data', broken, '--to', out]);
    assert.equal(failed.code, 1, failed.output);
    assert.match(failed.output, /not a database/);
    assert.deepEqual(readdirSync(out), []);

    const notBackup = await runCli(['restore', '--from', data, '--data', join(root, 'r1')]);
    assert.equal(notBackup.code, 2, notBackup.output);
    assert.match(notBackup.output, /not a complete backup/);
    // A backup damaged after it was taken is refused, and nothing is restored.
    const tail = join(busy, 'tail.db');
    const bytes = readFileSync(tail);
    bytes.writeUInt8((bytes.at(-1) ?? 0) ^ 0xff, bytes.length - 1);
    writeFileSync(tail, bytes);
    const target = join(root, 'r2');
    const damaged = await runCli(['restore', '--from', busy, '--data', target]);
    assert.equal(damaged.code, 2, damaged.output);
    assert.match(damaged.output, /tail\.db does not match the backup's manifest/);
    assert.equal(existsSync(target), false);
  });

  it('lifts the epochs of a PostgreSQL tail store restored by other means', { skip: pgSkipped }, async () => {
    const schema = `test_lift_${randomBytes(5).toString('hex')}`;
    after(() => dropPgSchemas(schema));
    const store = await openPgLogStore(PG_URL, { schema });
    const site = `s${randomBytes(6).toString('hex')}`;
    assert.equal(await store.bumpEpoch(site, 'main'), 1);
    await store.close();
    const before = Date.now();
    const r = await runCli(['lift-epochs', '--db', PG_URL, '--db-schema', schema]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /the epochs of 1 logs were lifted/);
    const again = await openPgLogStore(PG_URL, { schema });
    const { epoch } = await again.state(site, 'main');
    // Up to the time floor of the lift, which is far above 1 + EPOCH_LIFT.
    assert.ok(epoch >= epochTimeFloor(before) && epoch <= epochTimeFloor(Date.now()), `epoch ${epoch}`);
    await again.close();
    const none = await runCli(['lift-epochs', '--data', tempDir('dg-lift-none-')]);
    assert.equal(none.code, 2, none.output);
    assert.match(none.output, /no tail store at/);
  });
});
