/**
 * The browser bundle in a real Chromium: IndexedDB key storage, sign-up, a log led by the
 * browser, and a Node SDK client (werift) following it and appending through WebRTC or
 * the relay. Skipped outside CI when Chromium is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { CHROMIUM_LAUNCH, chromiumSkip } from '../helpers/services.js';
import { tempDir } from '../helpers/server.js';
import { enc, makeClient, record, server, waitFor } from './harness.js';

const PAGE = '<!doctype html><meta charset="utf-8"><title>datagrove sdk</title>';

test('the browser bundle signs up, leads a log, and a Node follower appends to it', async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  const out = join(tempDir(), 'bundle.js');
  await build({ entryPoints: ['src/client/index.ts'], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', outfile: out, logLevel: 'silent' });
  const bundle = readFileSync(out, 'utf8');
  assert.ok(!/\bfrom\s*["']node:/.test(bundle), 'no Node built-ins in the bundle');

  const web = createServer((req, res) => {
    if (req.url === '/sdk.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  t.after(() => web.close());
  const srv = await server({ origins: [origin] });
  const browser = await chromium.launch(CHROMIUM_LAUNCH);
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(origin);

  // Page code is plain JavaScript (strings), so nothing of this file's compilation leaks in.
  const run = <T>(body: string, args: unknown[] = []): Promise<T> => page.evaluate(`(async (...args) => { ${body} })(...${JSON.stringify(args)})`) as Promise<T>;
  const first = await run<{ user: string; site: string; role: string; idx: number[]; device: string }>(
    `const [url, wsUrl] = args;
     const sdk = await import('/sdk.js');
     const client = await sdk.DatagroveClient.create({ url, storage: new sdk.IndexedDbKeyStorage('dg-test'), shardUrl: () => wsUrl });
     const { user } = await client.signup('browser');
     const { site } = await client.createSite('b');
     const log = client.openLog(site, 'chat', { channelTimeoutMs: 5000 });
     const seen = [];
     log.subscribe((es) => es.forEach((e) => seen.push(new TextDecoder().decode(e.payload))));
     await log.opened;
     const idx = await log.append([new TextEncoder().encode('from the browser')]);
     window.dg = { client, log, seen, sdk };
     return { user, site, role: log.role, idx, device: client.device };`,
    [srv.url, srv.wsUrl],
  );
  assert.equal(first.role, 'leader');
  assert.deepEqual(first.idx, [0]);

  // The keys and session are in IndexedDB: a second client in the page restores them.
  const restored = await run<{ signedIn: boolean; device: string }>(
    `const again = await window.dg.sdk.DatagroveClient.create({ url: args[0], storage: new window.dg.sdk.IndexedDbKeyStorage('dg-test') });
     return { signedIn: again.signedIn, device: again.device };`,
    [srv.url],
  );
  assert.deepEqual(restored, { signedIn: true, device: first.device });

  // A Node follower, granted by the browser's device.
  const node = await makeClient(srv, { rtc: true });
  const { user: nodeUser } = await node.client.signup('node');
  const grant = await run<string>(
    `const [site, user] = args;
     const grant = window.dg.client.signGrant({ sub: 'user:' + user, site, logs: ['*'], rights: ['read', 'write'] });
     await window.dg.client.declare(grant);
     return grant;`,
    [first.site, nodeUser],
  );
  await node.client.join(first.site, grant);
  const nl = node.client.openLog(first.site, 'chat', { channelTimeoutMs: 5000 });
  const rec = record(nl);
  await nl.opened;
  assert.equal(nl.role, 'follower');
  const [i1] = await nl.append([enc('from node')]);
  assert.equal(i1, 1);
  assert.ok(nl.leaderPath === 'channel' || nl.leaderPath === 'relay');
  await waitFor('node sees both', () => rec.seen.length === 2);
  await page.waitForFunction('window.dg.seen.length === 2');
  const browserSeen = await run<string[]>('return window.dg.seen;');
  assert.deepEqual(browserSeen, ['from the browser', 'from node']);
  t.diagnostic(`follower path between Node and Chromium: ${nl.leaderPath}`);
  await node.client.close();
});
