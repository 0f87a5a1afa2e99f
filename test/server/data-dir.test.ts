/**
 * What `serve` checks of a SQLite data directory before it serves, in real child processes:
 * one server per directory (a lock the kernel lets go with the process), key files never
 * made anew over data made under the old ones, and damaged databases named.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, openSync, closeSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { signupDevice } from '../helpers/auth-client.js';
import { tempDir } from '../helpers/server.js';
import { PG_URL, dropPgSchemas, pgSkip } from '../helpers/services.js';
import { freePort, runCli, spawnCli, waitHttp, serveDataDir, stopCleanly } from './child.js';

/** `serve` on `dataDir` that must be refused at start: its exit and output. */
function refusedServe(dataDir: string) {
  return runCli(['serve', '--port', '0', '--host', '127.0.0.1', '--data', dataDir, '--log-level', 'warn']);
}

/** A data directory a server has run on, with a user signed up; the server stopped. */
async function usedDataDir(): Promise<string> {
  const dir = join(tempDir('dg-datadir-'), 'data');
  const { child, url } = await serveDataDir(dir);
  await signupDevice(url);
  await stopCleanly(child);
  return dir;
}

describe('one server per data directory', () => {
  it('refuses a second server on a directory in use, naming the first one; the lock goes with it', async () => {
    const dir = join(tempDir('dg-lock-'), 'data');
    const first = await serveDataDir(dir);
    const second = await refusedServe(dir);
    assert.equal(second.code, 2, second.output);
    assert.match(second.output, new RegExp(`data directory .*data is in use by another datagrove process \\(pid ${first.child.proc.pid}\\)`));
    assert.match(second.output, /datagrove\.lock: stop it first, or give this server a data directory of its own \(--data\)/);
    assert.equal((await fetch(`${first.url}/health`)).status, 200, 'the first server serves on');
    // Writing commands refuse it too; a backup reads beside the server.
    const lift = await runCli(['lift-epochs', '--data', dir]);
    assert.equal(lift.code, 2, lift.output);
    assert.match(lift.output, /is in use by another datagrove process/);
    const backup = await runCli(['backup', '--to', join(dir, '..', 'copy'), '--data', dir]);
    assert.equal(backup.code, 0, backup.output);

    await stopCleanly(first.child);
    const again = await serveDataDir(dir);
    assert.doesNotMatch(again.child.output(), /did not stop cleanly/);
    await stopCleanly(again.child);
  });

  it('a server killed outright leaves no lock behind; the next one says the last did not stop cleanly', async () => {
    const dir = join(tempDir('dg-lock-'), 'data');
    const first = await serveDataDir(dir);
    const pid = first.child.proc.pid;
    assert.deepEqual(await first.child.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
    const next = await serveDataDir(dir);
    assert.match(next.child.output(), new RegExp(`"previousPid":${pid}.*the previous server on this data directory did not stop cleanly`));
    await stopCleanly(next.child);
  });

  it('a server that cannot listen lets its directory go cleanly', async () => {
    const first = await serveDataDir(join(tempDir('dg-lock-'), 'data'));
    const dir = join(tempDir('dg-lock-'), 'data');
    const port = new URL(first.url).port;
    const taken = await runCli(['serve', '--port', port, '--host', '127.0.0.1', '--data', dir, '--log-level', 'warn']);
    assert.equal(taken.code, 1, taken.output);
    assert.match(taken.output, /EADDRINUSE/);
    const next = await serveDataDir(dir);
    assert.doesNotMatch(next.child.output(), /did not stop cleanly/);
    await stopCleanly(next.child);
    await stopCleanly(first.child);
  });
});

describe('key files of a data directory in use', () => {
  it('a directory whose databases hold data is refused when a key file is gone, and none is made', async () => {
    const dir = await usedDataDir();
    rmSync(join(dir, 'hmac-keys.json'));
    rmSync(join(dir, 'attestation-keys.json'));
    const r = await refusedServe(dir);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /hmac-keys\.json and attestation-keys\.json are missing from .*data, a data directory in use/);
    assert.match(r.output, /every access and lease token \(auth\.db holds users\), and every identity attestation/);
    assert.match(r.output, /Restore the key files from the backup of this directory; .*datagrove keys init --data /);
    assert.equal(existsSync(join(dir, 'hmac-keys.json')), false, 'no key was made');

    // Making new keys on purpose is one command away.
    const init = await runCli(['keys', 'init', '--data', dir]);
    assert.equal(init.code, 0, init.output);
    const { child } = await serveDataDir(dir);
    await stopCleanly(child);
  });

  it('a backup taken without its key files is restored with a word about them, and serves once they are copied in', async () => {
    const dir = await usedDataDir();
    const root = tempDir('dg-keyless-');
    const bare = join(root, 'bare');
    const restored = join(root, 'restored');
    assert.equal((await runCli(['backup', '--data', dir, '--to', bare, '--no-keys'])).code, 0);
    const r = await runCli(['restore', '--from', bare, '--data', restored]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /The backup holds no hmac-keys\.json, attestation-keys\.json, vapid-keys\.json: copy them from the data directory it was taken of/);
    const refused = await refusedServe(restored);
    assert.equal(refused.code, 2, refused.output);
    for (const f of ['hmac-keys.json', 'attestation-keys.json', 'vapid-keys.json']) cpSync(join(dir, f), join(restored, f));
    const { child } = await serveDataDir(restored);
    await stopCleanly(child);
  });

  it('the VAPID key is refused while push subscriptions rest on it', async () => {
    const dir = await usedDataDir();
    rmSync(join(dir, 'vapid-keys.json'));
    // Without subscriptions, a new VAPID key costs nothing (a directory run without notify before).
    const fresh = await serveDataDir(dir);
    await stopCleanly(fresh.child);
    assert.ok(existsSync(join(dir, 'vapid-keys.json')));

    const db = new Database(join(dir, 'notify.db'));
    db.prepare('INSERT INTO notify_push (user_id, device, endpoint, p256dh, auth) VALUES (?, ?, ?, ?, ?)').run('u', 'd', 'https://push.example/x', 'k', 'a');
    db.close();
    rmSync(join(dir, 'vapid-keys.json'));
    const r = await refusedServe(dir);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /vapid-keys\.json is missing from .*every push subscription .*\(notify\.db holds push subscriptions\)/);
    assert.equal(existsSync(join(dir, 'vapid-keys.json')), false);
  });

  it('a first start, or one on databases that hold nothing yet, makes the keys', async () => {
    const dir = join(tempDir('dg-keys-'), 'data');
    const first = await serveDataDir(dir);
    await stopCleanly(first.child);
    for (const f of ['hmac-keys.json', 'attestation-keys.json', 'vapid-keys.json']) rmSync(join(dir, f));
    const again = await serveDataDir(dir);
    await stopCleanly(again.child);
    for (const f of ['hmac-keys.json', 'attestation-keys.json', 'vapid-keys.json']) assert.ok(existsSync(join(dir, f)), f);
  });
});

const pgSkipped = await pgSkip();

describe('key files of a single process on PostgreSQL', { skip: pgSkipped }, () => {
  it('are refused when missing while the schema holds users, and made while it holds none', async () => {
    const schema = `dg_keys_${process.pid}_${Date.now()}`;
    const dir = join(tempDir('dg-pgkeys-'), 'data');
    const db = ['--db', PG_URL, '--db-schema', schema];
    try {
      const port = await freePort();
      const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', dir, '--log-level', 'warn', ...db]);
      await waitHttp(child, `http://127.0.0.1:${port}/ready`);
      await signupDevice(`http://127.0.0.1:${port}`);
      await stopCleanly(child);
      rmSync(join(dir, 'hmac-keys.json'));
      const r = await runCli(['serve', '--port', '0', '--host', '127.0.0.1', '--data', dir, '--log-level', 'warn', ...db]);
      assert.equal(r.code, 2, r.output);
      assert.match(r.output, new RegExp(`hmac-keys\\.json is missing from .*every access and lease token \\(the database's ${schema}\\.auth_users holds users\\)`));
      assert.equal(existsSync(join(dir, 'hmac-keys.json')), false, 'no key was made');

      // Another schema of the same database, holding nothing yet: the keys are made.
      const other = join(tempDir('dg-pgkeys-'), 'data');
      const port2 = await freePort();
      const fresh = spawnCli(['serve', '--port', String(port2), '--host', '127.0.0.1', '--data', other, '--log-level', 'warn', '--db', PG_URL, '--db-schema', `${schema}_b`]);
      await waitHttp(fresh, `http://127.0.0.1:${port2}/ready`);
      await stopCleanly(fresh);
      assert.ok(existsSync(join(other, 'hmac-keys.json')));
    } finally {
      await dropPgSchemas(schema, `${schema}_b`);
    }
  });
});

describe('damaged databases', () => {
  it('stop the start with the file and its role named', async () => {
    const dir = await usedDataDir();
    const cases: [string, string, (path: string) => void, RegExp][] = [
      ['auth', 'auth.db', (p) => writeFileSync(p, 'not a database '.repeat(400)), /file is not a database \(it is damaged: restore/],
      ['notify', 'notify.db', (p) => writeFileSync(p, 'x'.repeat(8192)), /file is not a database/],
      [
        'tail',
        'tail.db',
        (p) => {
          // Page 1 keeps its header; the schema's b-tree after it is overwritten.
          const fd = openSync(p, 'r+');
          writeSync(fd, Buffer.alloc(3000, 0xa5), 0, 3000, 100);
          closeSync(fd);
        },
        /database disk image is malformed \(it is damaged: restore/,
      ],
    ];
    for (const [role, file, damage, cause] of cases) {
      const copy = join(tempDir('dg-damaged-'), 'data');
      cpSync(dir, copy, { recursive: true });
      for (const suffix of ['-wal', '-shm']) rmSync(join(copy, file + suffix), { force: true });
      damage(join(copy, file));
      const r = await refusedServe(copy);
      assert.equal(r.code, 1, `${file}: ${r.output}`);
      assert.match(r.output, new RegExp(`cannot open the ${role} database ${copy.replaceAll('/', '\\/')}\\/${file.replace('.', '\\.')}: `), r.output);
      assert.match(r.output, cause, r.output);
    }
  });
});
