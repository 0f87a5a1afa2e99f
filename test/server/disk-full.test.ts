/**
 * A full disk under a running monolith, for real: the data directory is on a small tmpfs
 * that the test fills. Auth's requests that must write are answered 503 UNAVAILABLE (a
 * dependency is down: retry with backoff), never 500 INTERNAL; the cause is logged once per
 * 10 s, not per request; nothing is half-written; and all works again once there is room.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { challenge, newDeviceKeys, post, signBoxKey, signChallenge, signupDevice, type DeviceKeys } from '../helpers/auth-client.js';
import { smallFs, smallFsSkip } from '../helpers/small-fs.js';
import { freePort, spawnCli, waitHttp } from './child.js';

const skip = smallFsSkip();

function signup(url: string, keys: DeviceKeys, nonce: string) {
  return post<{ error?: { code: string } }>(url, '/signup', {
    device: keys.device,
    boxKey: keys.boxKey,
    boxSig: signBoxKey(keys),
    nonce,
    sig: signChallenge(keys.privateKey, nonce),
    name: 'test device',
  });
}

describe('a full disk under auth', { skip }, () => {
  it('answers 503 UNAVAILABLE, logs it once per 10 s, writes nothing half, and recovers', { timeout: 120_000 }, async () => {
    const fs = smallFs(8 * 1024);
    const port = await freePort();
    const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', join(fs.dir, 'data'), '--log-level', 'warn']);
    const url = `http://127.0.0.1:${port}`;
    await waitHttp(child, `${url}/ready`);
    await signupDevice(url);
    const late = newDeviceKeys();
    const lateNonce = await challenge(url, late.device);

    fs.fill();
    const t0 = Date.now();
    const statuses: number[] = [];
    for (let i = 0; i < 40 && !statuses.includes(503); i++) {
      const r = await post<{ error?: { code: string } }>(url, '/challenge', { device: newDeviceKeys().device });
      statuses.push(r.status);
      if (r.status === 503) assert.equal(r.body.error?.code, 'UNAVAILABLE');
    }
    assert.ok(statuses.includes(503), `no 503 while the disk is full: ${statuses.join(' ')}`);
    for (let i = 0; i < 5; i++) {
      const r = await post<{ error?: { code: string } }>(url, '/challenge', { device: newDeviceKeys().device });
      statuses.push(r.status);
    }
    const refused = await signup(url, late, lateNonce);
    statuses.push(refused.status);
    assert.equal(refused.body.error?.code, 'UNAVAILABLE', JSON.stringify(refused.body));
    assert.deepEqual(statuses.filter((s) => s !== 200 && s !== 503), [], `only 200 or 503: ${statuses.join(' ')}`);

    const log = child.output();
    assert.doesNotMatch(log, /unhandled error|"INTERNAL"/, log);
    const lines = log.split('\n').filter((l) => l.includes('auth store is unavailable'));
    // One line per 10 s of refusals (these took well under that).
    const most = 1 + Math.floor((Date.now() - t0) / 10_000);
    assert.ok(lines.length >= 1 && lines.length <= most, `${lines.length} lines (at most ${most}) for ${statuses.filter((s) => s === 503).length} refusals:\n${log}`);
    assert.match(lines[0] ?? '', /"level":50.*"code":"SQLITE_FULL"/);

    fs.free();
    // The refused signup left no device behind: the same device signs up now.
    const nonce = await challenge(url, late.device);
    const r = await signup(url, late, nonce);
    assert.equal(r.status, 201, `${JSON.stringify(r.body)}\n${child.output()}`);
    assert.deepEqual(await child.stop('SIGTERM'), { code: 0, signal: null }, child.output());
  });
});
