/**
 * The `datagrove` command as an operator runs it, in real child processes: --help, bad
 * flags, `serve` (health, data dir and secrets, SIGTERM), `keys rotate` across a restart,
 * and `npm start` itself (the built dist/).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { OPTIONS } from '../../src/server/config.js';
import { get, loginDevice, signupDevice } from '../helpers/auth-client.js';
import { tempDir } from '../helpers/server.js';
import { cleanEnv, freePort, ROOT, runCli, sleep, spawnChild, spawnCli, waitHttp, type Child } from './child.js';

interface ServerKeys {
  keys: { kid: string; publicKey: string; status: string }[];
}

interface HmacFile {
  active: string;
  keys: { kid: string }[];
}

async function serve(dataDir: string): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--log-level', 'warn']);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(child, `${url}/ready`);
  return { child, url };
}

/** Stops with SIGTERM and returns how long the exit took; fails unless it is a clean exit 0. */
async function terminate(child: Child): Promise<number> {
  const t0 = Date.now();
  const exit = await child.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, child.output());
  return Date.now() - t0;
}

function kidOf(jwt: string): string {
  const header = JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: string };
  return header.kid ?? '';
}

describe('datagrove CLI', () => {
  it('--help lists every option with its flag and environment variable', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.output);
    for (const cmd of ['serve', 'backup', 'restore', 'lift-epochs', 'keys init', 'keys rotate', 'keys revoke-attestation']) assert.ok(r.output.includes(cmd), `help lacks '${cmd}'`);
    for (const o of OPTIONS) {
      const line = r.output.split('\n').find((l) => l.trimStart().startsWith(`${o.flag} `) || l.trim() === o.flag);
      assert.ok(line !== undefined, `help lacks ${o.flag}`);
      assert.ok(line.includes(o.env), `help line of ${o.flag} lacks ${o.env}`);
      assert.ok(line.includes(o.help), `help line of ${o.flag} lacks its text`);
    }
  });

  it('refuses an unknown flag, a bad value and an unknown command with a clear message', async () => {
    const unknown = await runCli(['serve', '--no-such-flag']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.output, /unknown option '--no-such-flag' \(see datagrove --help\)/);
    const bad = await runCli(['serve', '--port', 'eighty']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.output, /--port \(DATAGROVE_PORT\) must be a non-negative integer, got 'eighty'/);
    const badTtl = await runCli(['serve', '--node-ttl-ms', '5']);
    assert.notEqual(badTtl.code, 0);
    assert.match(badTtl.output, /--node-ttl-ms must be between/);
    const cmd = await runCli(['frobnicate']);
    assert.notEqual(cmd.code, 0);
    assert.match(cmd.output, /unknown command 'frobnicate'/);
  });

  it('a PostgreSQL database that cannot be reached at start is named by its address, never its password', async () => {
    const closed = await freePort();
    const cases: [string, RegExp][] = [
      [`postgres://dg:s3cret@127.0.0.1:${closed}/dg_nowhere?sslmode=disable`, new RegExp(`cannot connect to the database at postgres://127\\.0\\.0\\.1:${closed}/dg_nowhere: connect ECONNREFUSED`)],
      ['postgres://dg:s3cret@nosuch.invalid/dg_nowhere', /cannot connect to the database at postgres:\/\/nosuch\.invalid\/dg_nowhere: getaddrinfo ENOTFOUND/],
    ];
    for (const [db, message] of cases) {
      for (const roles of ['auth', 'tail', 'notify']) {
        const r = await runCli(['serve', '--roles', roles, '--db', db, '--data', tempDir(), '--port', '0']);
        assert.equal(r.code, 1, r.output);
        assert.match(r.output, message, `${roles}: ${r.output}`);
        assert.doesNotMatch(r.output, /s3cret|dg:/, 'no credentials in the message');
      }
    }
  });

  it('serve answers /health, makes the data dir and its secrets private, and exits 0 on SIGTERM', async () => {
    const dataDir = join(tempDir(), 'data');
    assert.equal(existsSync(dataDir), false);
    const { child, url } = await serve(dataDir);
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { ok: true });
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    for (const f of ['hmac-keys.json', 'attestation-keys.json']) {
      assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, `${f} mode`);
    }
    const files = readdirSync(dataDir);
    for (const f of ['auth.db', 'tail.db', 'notify.db']) {
      assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
      // SQLite gives its -wal and -shm files the database file's mode.
      for (const g of [f, `${f}-wal`]) if (files.includes(g)) assert.equal(statSync(join(dataDir, g)).mode & 0o777, 0o600, `${g} mode`);
    }
    const ms = await terminate(child);
    assert.ok(ms < 10_000, `took ${ms} ms to exit`);
    await assert.rejects(fetch(`${url}/health`), 'the port is closed after exit');
  });

  it('keys rotate adds an active HMAC key and retires the old attestation key; both verify after a restart', async () => {
    const dataDir = tempDir();
    const first = await serve(dataDir);
    const dev = await signupDevice(first.url);
    const before = (await get<ServerKeys>(first.url, '/server-keys')).body.keys;
    assert.deepEqual(before.map((k) => k.status), ['active']);
    const oldHmac = JSON.parse(readFileSync(join(dataDir, 'hmac-keys.json'), 'utf8')) as HmacFile;
    assert.equal(kidOf(dev.access), oldHmac.active);
    await terminate(first.child);

    const r = await runCli(['keys', 'rotate', '--data', dataDir]);
    assert.equal(r.code, 0, r.output);
    const hmac = JSON.parse(readFileSync(join(dataDir, 'hmac-keys.json'), 'utf8')) as HmacFile;
    assert.notEqual(hmac.active, oldHmac.active);
    assert.deepEqual(hmac.keys.map((k) => k.kid), [hmac.active, oldHmac.active]);
    assert.ok(r.output.includes(hmac.active), r.output);
    assert.equal(statSync(join(dataDir, 'hmac-keys.json')).mode & 0o777, 0o600);

    const second = await serve(dataDir);
    const after = (await get<ServerKeys>(second.url, '/server-keys')).body.keys;
    assert.equal(after.length, 2);
    const old = after.find((k) => k.kid === before[0]?.kid);
    assert.deepEqual(old, { ...before[0], status: 'retired' });
    const fresh = after.find((k) => k.kid !== before[0]?.kid);
    assert.equal(fresh?.status, 'active');
    assert.ok(r.output.includes(fresh.kid), r.output);
    // A token signed with the old HMAC key still verifies; new tokens use the new key.
    assert.equal((await get(second.url, '/me', dev.access)).status, 200);
    const again = await loginDevice(second.url, dev);
    assert.equal(again.status, 200);
    assert.equal(kidOf(again.body.access), hmac.active);
    await terminate(second.child);
  });
});

/** True when dist/server/cli.js is missing or older than some file under src/. */
function distIsStale(): boolean {
  const cli = join(ROOT, 'dist/server/cli.js');
  if (!existsSync(cli)) return true;
  const built = statSync(cli).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) => {
      const p = join(dir, e.name);
      return e.isDirectory() ? newer(p) : e.name.endsWith('.ts') && statSync(p).mtimeMs > built;
    });
  return newer(join(ROOT, 'src'));
}

describe('datagrove keys', () => {
  it('keys init makes the key files a cluster copies, and keeps existing ones', async () => {
    const dataDir = join(tempDir(), 'keys');
    const r = await runCli(['keys', 'init', `--data=${dataDir}`]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /made hmac-keys\.json, attestation-keys\.json, vapid-keys\.json in /);
    for (const f of ['hmac-keys.json', 'attestation-keys.json', 'vapid-keys.json']) assert.equal(statSync(join(dataDir, f)).mode & 0o777, 0o600, f);
    const ring = readFileSync(join(dataDir, 'hmac-keys.json'), 'utf8');
    const again = await runCli(['keys', 'init', '--data', dataDir]);
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, /made nothing; kept /);
    assert.equal(readFileSync(join(dataDir, 'hmac-keys.json'), 'utf8'), ring);
  });

  it('keys commands take --data DIR or --data=DIR, and refuse a missing directory or a stray argument', async () => {
    const dataDir = tempDir();
    assert.equal((await runCli(['keys', 'init', '--data', dataDir])).code, 0);
    const before = readFileSync(join(dataDir, 'hmac-keys.json'), 'utf8');
    const eq = await runCli(['keys', 'rotate', `--data=${dataDir}`]);
    assert.equal(eq.code, 0, eq.output);
    assert.notEqual(readFileSync(join(dataDir, 'hmac-keys.json'), 'utf8'), before, 'the --data= form rotated that directory');
    const typo = join(dataDir, 'typo');
    const missing = await runCli(['keys', 'rotate', '--data', typo]);
    assert.equal(missing.code, 2, missing.output);
    assert.match(missing.output, /no data directory/);
    assert.equal(existsSync(typo), false);
    const stray = await runCli(['keys', 'rotate', '--data', dataDir, '--port', 'abc']);
    assert.equal(stray.code, 2, stray.output);
    assert.match(stray.output, /unknown option '--port'/);
    const extra = await runCli(['keys', 'rotate', 'now', '--data', dataDir]);
    assert.equal(extra.code, 2, extra.output);
    const revoke = await runCli(['keys', 'revoke-attestation', 'no-such-kid', '--data', dataDir]);
    assert.equal(revoke.code, 1, revoke.output);
    assert.match(revoke.output, /no attestation key no-such-kid/);
  });

  it('a cluster process without the shared key files refuses to start and makes none', async () => {
    const dataDir = tempDir();
    // The key files are checked before the bus or the database is reached.
    const r = await runCli(['serve', '--roles', 'tail', '--bus', 'nats://127.0.0.1:1', '--db', 'postgres://127.0.0.1:1/x', '--data', dataDir, '--port', '0']);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /no hmac-keys\.json or attestation-keys\.json in .*datagrove keys init --data DIR/);
    assert.equal(existsSync(join(dataDir, 'hmac-keys.json')), false);
    const notify = await runCli(['serve', '--roles', 'notify', '--bus', 'nats://127.0.0.1:1', '--db', 'postgres://127.0.0.1:1/x', '--data', dataDir, '--port', '0']);
    assert.match(notify.output, /vapid-keys\.json/);
  });
});

describe('npm start', () => {
  before(() => {
    // `npm install` builds dist/ (the prepare script); a working tree may hold an older one.
    if (!distIsStale()) return;
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe', timeout: 240_000 });
    } catch (err) {
      // tsc emits even when it reports type errors; only a missing entry point is fatal.
      if (!existsSync(join(ROOT, 'dist/server/cli.js'))) throw err;
    }
  });

  it('runs the monolith from dist/ on DATAGROVE_PORT with DATAGROVE_DATA', { timeout: 300_000 }, async () => {
    const port = await freePort();
    const dataDir = join(tempDir(), 'data');
    const env = cleanEnv({ DATAGROVE_PORT: String(port), DATAGROVE_DATA: dataDir, DATAGROVE_HOST: '127.0.0.1', DATAGROVE_LOG_LEVEL: 'warn' });
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const child = spawnChild(npm, ['start'], env, true);
    const url = `http://127.0.0.1:${port}`;
    await waitHttp(child, `${url}/health`);
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { ok: true });
    assert.ok(existsSync(join(dataDir, 'hmac-keys.json')));
    // What a process manager does: SIGTERM to npm alone, not to its process group. npm
    // passes it on only to its direct child, so the script must exec the server.
    try {
      child.proc.kill('SIGTERM');
      await child.exited;
      let stopped = false;
      for (let i = 0; i < 50 && !stopped; i++) {
        stopped = await fetch(`${url}/health`).then(() => false, () => true);
        if (!stopped) await sleep(100);
      }
      assert.ok(stopped, 'the server still answers after npm got SIGTERM');
    } finally {
      // A server left behind by npm is still in npm's process group.
      try {
        if (child.proc.pid !== undefined) process.kill(-child.proc.pid, 'SIGKILL');
      } catch {
        // Nothing is left.
      }
    }
  });
});
