/**
 * The browser bundle in a real Chromium: IndexedDB key storage, sign-up, a log led by the
 * browser, and a Node SDK client (werift) following it and appending through WebRTC or
 * the relay. Skipped outside CI when Chromium is absent.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_LAUNCH, chromiumSkip } from '../helpers/services.js';
import { tempDir, type TestServer } from '../helpers/server.js';
import { newDeviceKeys, oidcStart } from '../helpers/auth-client.js';
import { enc, makeClient, record, server, waitFor } from './harness.js';

const PAGE = '<!doctype html><meta charset="utf-8"><title>datagrove sdk</title>';

/** The SDK bundle served from a fresh origin, a server that allows it, and a Chromium. */
async function setup(t: TestContext, opts: { devIdp?: boolean } = {}): Promise<{ origin: string; srv: TestServer; browser: Browser; bundle: string }> {
  const out = join(tempDir(), 'bundle.js');
  await build({ entryPoints: ['src/client/index.ts'], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', outfile: out, logLevel: 'silent' });
  const bundle = readFileSync(out, 'utf8');
  const web = createServer((req, res) => {
    if (req.url === '/sdk.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  t.after(() => web.close());
  const srv = await server({ origins: [origin], ...opts });
  const browser = await chromium.launch(CHROMIUM_LAUNCH);
  t.after(() => browser.close());
  return { origin, srv, browser, bundle };
}

/** Runs plain JavaScript (a string) in the page, so nothing of this file's compilation leaks in. */
function runner(page: Page): <T>(body: string, args?: unknown[]) => Promise<T> {
  return <T>(body: string, args: unknown[] = []) => page.evaluate(`(async (...args) => { ${body} })(...${JSON.stringify(args)})`) as Promise<T>;
}

test('the browser bundle signs up, leads a log, and a Node follower appends to it', async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  const { origin, srv, browser, bundle } = await setup(t);
  assert.ok(!/\bfrom\s*["']node:/.test(bundle), 'no Node built-ins in the bundle');
  const page = await browser.newPage();
  await page.goto(origin);

  const run = runner(page);
  const first = await run<{ user: string; site: string; role: string; idx: number[]; device: string; native: boolean; webCryptoSigns: number; sameSignature: boolean }>(
    `const [url, wsUrl] = args;
     // Counts the signatures made through WebCrypto's Ed25519.
     let webCryptoSigns = 0;
     const subtleSign = crypto.subtle.sign.bind(crypto.subtle);
     crypto.subtle.sign = (alg, ...rest) => {
       if ((alg.name ?? alg) === 'Ed25519') webCryptoSigns++;
       return subtleSign(alg, ...rest);
     };
     const native = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign']).then(() => true, () => false);
     const sdk = await import('/sdk.js');
     const client = await sdk.DatagroveClient.create({ url, storage: new sdk.IndexedDbKeyStorage('dg-test'), shardUrl: () => wsUrl });
     const { user } = await client.signup('browser');
     const { site } = await client.createSite('b');
     const log = client.openLog(site, 'chat', { channelTimeoutMs: 5000 });
     const seen = [];
     const signed = [];
     log.subscribe((es) => es.forEach((e) => {
       seen.push(new TextDecoder().decode(e.payload));
       signed.push(e.signed);
     }));
     await log.opened;
     const idx = await log.append([new TextEncoder().encode('from the browser')]);
     const entrySigns = webCryptoSigns;
     const m = new TextEncoder().encode('the same bytes either way');
     const sameSignature = (await client.keys.signAsync(m)).join() === client.keys.sign(m).join();
     window.dg = { client, log, seen, signed, sdk };
     return { user, site, role: log.role, idx, device: client.device, native, webCryptoSigns: entrySigns, sameSignature };`,
    [srv.url, srv.wsUrl],
  );
  assert.equal(first.role, 'leader');
  assert.deepEqual(first.idx, [0]);
  // The entry was signed through WebCrypto where Chromium has Ed25519, else by noble: the same bytes.
  assert.ok(first.sameSignature, 'WebCrypto and noble sign alike');
  if (first.native) assert.equal(first.webCryptoSigns, 1, 'the entry was signed through WebCrypto');
  t.diagnostic(`Ed25519 in Chromium's WebCrypto: ${first.native}`);

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
  // Each side verified the other's entry signature (the browser through its WebCrypto or noble).
  assert.deepEqual(await run<boolean[]>('return window.dg.signed;'), [true, true]);
  assert.deepEqual(rec.seen.map((e) => e.signed), [true, true]);
  t.diagnostic(`follower path between Node and Chromium: ${nl.leaderPath}`);
  await node.client.close();
});

test('two tabs of one origin refreshing at the same moment take turns through a Web Lock: one refresh, both stay signed in', async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  const { origin, srv, browser } = await setup(t);
  const context = await browser.newContext();
  const tabs = [await context.newPage(), await context.newPage()];
  for (const tab of tabs) await tab.goto(origin);
  const [first, second] = tabs.map(runner) as [ReturnType<typeof runner>, ReturnType<typeof runner>];
  // Each tab's /refresh requests are held 200 ms, so two refreshes started together overlap.
  const open = `const [url, dbName, useLocks] = args;
     const sdk = await import('/sdk.js');
     const tab = { calls: 0, errors: [] };
     const fetchFn = async (input, init) => {
       if (input.endsWith('/refresh')) { tab.calls++; await new Promise((r) => setTimeout(r, 200)); }
       return fetch(input, init);
     };
     const storage = useLocks ? new sdk.IndexedDbKeyStorage(dbName) : new sdk.IndexedDbKeyStorage(dbName, indexedDB, null);
     const open = () => sdk.DatagroveClient.create({ url, storage, fetch: fetchFn, onAuthError: (e) => tab.errors.push(e.code) });
     tab.client = await open();
     if (!tab.client.signedIn) await tab.client.signup('tab');
     tab.other = await open();
     window.tab = tab;
     return { locks: typeof navigator.locks?.request, signedIn: tab.client.signedIn && tab.other.signedIn };`;
  assert.deepEqual(await first(open, [srv.url, 'dg-refresh', true]), { locks: 'function', signedIn: true });
  assert.deepEqual(await second(open, [srv.url, 'dg-refresh', true]), { locks: 'function', signedIn: true }, 'the second tab restored the session');
  type Report = { calls: number; errors: string[]; signedIn: boolean; device: string; token: string };
  const refresh = `const token = await window.tab.client.session.refresh();
     const { device } = await window.tab.client.me();
     return { calls: window.tab.calls, errors: window.tab.errors, signedIn: window.tab.client.signedIn, device, token };`;
  for (let round = 0; round < 3; round++) {
    const [a, b] = await Promise.all([first<Report>(refresh), second<Report>(refresh)]);
    assert.deepEqual([a.errors, b.errors, a.signedIn, b.signedIn], [[], [], true, true], 'neither tab was signed out');
    assert.equal(a.device, b.device, 'both tokens work');
    assert.equal(a.token, b.token, 'one tab took the token the other got');
    assert.equal(a.calls + b.calls, round + 1, 'one refresh reached the server');
  }

  // Without Web Locks (a storage given none) the clients of one page still take turns; tabs would not.
  assert.deepEqual(await first(open, [srv.url, 'dg-no-locks', false]), { locks: 'function', signedIn: true });
  const inPage = await first<{ calls: number; errors: string[]; same: boolean }>(
    `const tab = window.tab;
     const before = tab.calls;
     const [x, y] = await Promise.all([tab.client.session.refresh(), tab.other.session.refresh()]);
     return { calls: tab.calls - before, errors: tab.errors, same: x === y };`,
  );
  assert.deepEqual(inPage, { calls: 1, errors: [], same: true });
  await context.close();
});

test('three tabs of one origin (one device) share a log: one leads, the others append through it', async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  const { origin, srv, browser } = await setup(t);
  const context = await browser.newContext();
  const tabs = [await context.newPage(), await context.newPage(), await context.newPage()];
  for (const tab of tabs) await tab.goto(origin);
  const runs = tabs.map(runner);
  const open = `const [url, wsUrl, site] = args;
     const sdk = await import('/sdk.js');
     const client = await sdk.DatagroveClient.create({ url, storage: new sdk.IndexedDbKeyStorage('dg-tabs'), shardUrl: () => wsUrl });
     if (!client.signedIn) await client.signup('tabs');
     const s = site ?? (await client.createSite('shared')).site;
     const log = client.openLog(s, 'notes', { channelTimeoutMs: 5000 });
     const seen = [];
     log.subscribe((es) => es.forEach((e) => seen.push(e.index + ':' + new TextDecoder().decode(e.payload))));
     await log.opened;
     window.dg = { client, log, seen };
     return { site: s, role: log.role, device: client.device };`;
  const first = await runs[0]!<{ site: string; role: string; device: string }>(open, [srv.url, srv.wsUrl, null]);
  const others = [];
  for (const run of runs.slice(1)) others.push(await run<{ site: string; role: string; device: string }>(open, [srv.url, srv.wsUrl, first.site]));
  assert.deepEqual([first.role, ...others.map((o) => o.role)], ['leader', 'follower', 'follower']);
  assert.ok(others.every((o) => o.device === first.device), 'the tabs share one device');

  const append = `const [tab] = args;
     const out = [];
     await Promise.all(Array.from({ length: 5 }, async (_, i) => {
       const [index] = await window.dg.log.append([new TextEncoder().encode('t' + tab + '-' + i)]);
       out.push(index);
     }));
     return out;`;
  const indexes = await Promise.all(runs.map((run, k) => run<number[]>(append, [k])));
  assert.deepEqual(indexes.flat().sort((a, b) => a - b), Array.from({ length: 15 }, (_, i) => i), 'every append has its own index');
  for (const tab of tabs) await tab.waitForFunction('window.dg.seen.length === 15');
  const seen = await Promise.all(runs.map((run) => run<string[]>('return window.dg.seen;')));
  assert.deepEqual(seen[1], seen[0]);
  assert.deepEqual(seen[2], seen[0]);
  assert.equal(new Set(seen[0]!.map((s) => s.split(':')[1])).size, 15, 'no entry twice');
  await context.close();
});

test('the sign-in form of the dev identity provider, in Chromium, ends at the app that asked for the redirect', async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  const { origin, srv, browser } = await setup(t, { devIdp: true });
  const started = await oidcStart(srv.url, newDeviceKeys(), { redirect: `${origin}/signed-in` });
  assert.equal(started.status, 200, JSON.stringify(started.body));
  const page = await browser.newPage();
  const blocked: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/.test(m.text())) blocked.push(m.text());
  });
  await page.goto(started.body.url);
  await page.fill('input[name="email"]', 'csp@example.test');
  await Promise.all([page.waitForURL((u) => u.href.startsWith(`${origin}/signed-in`), { timeout: 20_000 }), page.click('button[type="submit"], input[type="submit"]')]);
  const back = new URL(page.url());
  assert.equal(back.searchParams.get('dg_state'), started.body.state);
  assert.match(back.searchParams.get('dg_code') ?? '', /\S/);
  assert.deepEqual(blocked, []);
});

test('a page whose origin the server does not allow is told so, not only that the server is unreachable', async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  const { origin, browser } = await setup(t);
  const closed = await server();
  const page = await browser.newPage();
  await page.goto(origin);
  const got = await runner(page)<{ code: string; message: string }>(
    `const [url] = args;
     const sdk = await import('/sdk.js');
     const client = await sdk.DatagroveClient.create({ url, storage: new sdk.MemoryKeyStorage() });
     try {
       await client.signup('nowhere');
       return { code: 'none', message: 'signed up' };
     } catch (e) {
       return { code: e.code, message: e.message };
     }`,
    [closed.url],
  );
  assert.equal(got.code, 'UNAVAILABLE');
  assert.match(got.message, /origin is not among the server's allowed origins \(DATAGROVE_ORIGINS\)/);
});
