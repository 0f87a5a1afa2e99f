/**
 * Clients of one device sharing a storage (tabs, processes) that refresh at the same
 * moment, against the real server: the storage's lock lets one refresh reach the server,
 * the others take the token it rotated, and none is signed out for reusing it. Also a
 * refresh another client started and never finished is retried with its guid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AuthClient, DatagroveClient, DgError, MemoryKeyStorage, type FetchLike, type KeyStorage } from '../../src/client/index.js';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { tempDir } from '../helpers/server.js';
import { server, waitFor } from './harness.js';

const REFRESH_DELAY_MS = 200;

/** A fetch that counts /refresh requests and holds each a while, so concurrent ones overlap. */
function slowRefresh(): { fetch: FetchLike; calls: () => number } {
  let calls = 0;
  const f: FetchLike = async (input, init) => {
    if (input.endsWith('/refresh')) {
      calls++;
      await new Promise((r) => setTimeout(r, REFRESH_DELAY_MS));
    }
    return (await fetch(input, init)) as unknown as Awaited<ReturnType<FetchLike>>;
  };
  return { fetch: f, calls: () => calls };
}

async function refreshTogether(storages: [KeyStorage, KeyStorage]): Promise<void> {
  const srv = await server();
  const slow = slowRefresh();
  const errors: DgError[] = [];
  const a = await DatagroveClient.create({ url: srv.url, storage: storages[0], fetch: slow.fetch, onAuthError: (e) => errors.push(e) });
  await a.signup('first');
  const b = await DatagroveClient.create({ url: srv.url, storage: storages[1], fetch: slow.fetch, onAuthError: (e) => errors.push(e) });
  assert.ok(b.signedIn);
  for (let round = 0; round < 3; round++) {
    const before = slow.calls();
    const [ta, tb] = await Promise.all([a.session.refresh(), b.session.refresh()]);
    assert.equal(slow.calls() - before, 1, 'one refresh reached the server');
    assert.equal(tb, ta, 'the other client took the token it got');
    assert.equal((await a.me()).device, a.device);
    assert.equal((await b.me()).device, a.device);
  }
  assert.deepEqual(errors, [], 'no refresh token was reused');
  assert.ok(a.signedIn && b.signedIn);
}

test('two clients on one MemoryKeyStorage refreshing at the same moment: one refresh, both stay signed in', async () => {
  const storage = new MemoryKeyStorage();
  await refreshTogether([storage, storage]);
});

test('two FileKeyStorage instances on one file refreshing at the same moment: one refresh, both stay signed in', async () => {
  const path = join(tempDir(), 'keys.json');
  await refreshTogether([new FileKeyStorage(path), new FileKeyStorage(path)]);
});

test('two processes on one key file refreshing at the same moment: one refresh, both stay signed in', async () => {
  const srv = await server();
  const keyFile = join(tempDir(), 'keys.json');
  const slow = slowRefresh();
  const errors: DgError[] = [];
  const a = await DatagroveClient.create({ url: srv.url, storage: new FileKeyStorage(keyFile), fetch: slow.fetch, onAuthError: (e) => errors.push(e) });
  await a.signup('parent');
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'refresh-child.ts'), srv.url, keyFile], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  try {
    await waitFor('the child restored the session', () => lines.includes('READY'), 30_000);
    child.stdin.write('GO\n');
    const mine = await a.session.refresh();
    await waitFor('the child refreshed', () => lines.length === 2, 30_000);
    const theirs = JSON.parse(lines[1]!) as { calls: number; token?: string; signedIn: boolean; device?: string; error?: string; errors: string[] };
    assert.equal(theirs.error, undefined);
    assert.deepEqual(theirs.errors, []);
    assert.ok(theirs.signedIn);
    assert.equal(theirs.device, a.device, 'the child token works');
    assert.equal(theirs.token, mine, 'one process took the token the other got');
    assert.equal(slow.calls() + theirs.calls, 1, 'one refresh reached the server');
    assert.equal((await a.me()).device, a.device);
    assert.deepEqual(errors, []);
    assert.ok(a.signedIn);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a refresh another client sent and never saw answered (it died) is retried with its guid, not taken for reuse', async () => {
  const srv = await server();
  const storage = new MemoryKeyStorage();
  const name = `datagrove.session:${srv.url}/auth/v1`;
  const errors: DgError[] = [];
  const a = await DatagroveClient.create({ url: srv.url, storage, onAuthError: (e) => errors.push(e) });
  await a.signup('survivor');
  // Another client of the device stores its guid, the server rotates the token, and the
  // client dies before it stores the answer.
  const stored = (await storage.load(name)) as { refresh: string; pendingGuid: string | null };
  await storage.save(name, { ...stored, pendingGuid: 'guid-of-a-client-that-died' });
  const lost = await new AuthClient({ url: srv.url }).refresh(stored.refresh, 'guid-of-a-client-that-died');
  const token = await a.session.refresh();
  assert.equal(token, lost.access, 'the answer the dead client never stored');
  assert.equal((await a.me()).device, a.device);
  assert.deepEqual(errors, []);
  const after = (await storage.load(name)) as { refresh: string; pendingGuid: string | null };
  assert.deepEqual([after.refresh, after.pendingGuid], [lost.refresh, null], 'that answer is stored');
});
