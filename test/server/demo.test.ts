/**
 * The demo web app at `/`: its headers, the switch that turns it off, and the app itself in
 * a real Chromium: one browser creates a room and invites a second (another device, another
 * user) by link; each sees the other's messages live, and the first still sees them after a
 * reload. The Chromium part is skipped outside CI when Chromium is absent.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { loadConfig } from '../../src/server/config.js';
import { SDK_BUNDLE } from '../../src/server/demo/routes.js';
import { CHROMIUM_LAUNCH, chromiumSkip } from '../helpers/services.js';
import { startServer } from '../helpers/server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** True when the SDK bundle is missing or older than a source file it is built from. */
function bundleIsStale(): boolean {
  if (!existsSync(SDK_BUNDLE)) return true;
  const built = statSync(SDK_BUNDLE).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) => {
      const p = join(dir, e.name);
      return e.isDirectory() ? newer(p) : e.name.endsWith('.ts') && statSync(p).mtimeMs > built;
    });
  return newer(join(ROOT, 'src/client')) || newer(join(ROOT, 'src/protocol'));
}

before(() => {
  // `npm install` builds the bundle (the prepare script); a working tree may hold an older one.
  if (bundleIsStale()) execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', 'build:client'], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
});

test('serves the page, its script and the SDK bundle with a strict policy', async () => {
  const { url } = await startServer();
  const port = new URL(url).port;
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  const csp = page.headers.get('content-security-policy') ?? '';
  assert.match(csp, /(^|; )default-src 'none'(;|$)/);
  assert.match(csp, /(^|; )script-src 'self'(;|$)/);
  // The page's WebSockets go to the shard map's tail URL, allowed by its exact origin.
  assert.match(csp, new RegExp(`(^|; )connect-src 'self' ws://127\\.0\\.0\\.1:${port}(;|$)`));
  assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  const html = await page.text();
  assert.match(html, /<script type="module" src="demo\/app\.js"><\/script>/);
  assert.ok(!/<script>|<style>|\son[a-z]+=/i.test(html), 'no inline script, style or handler: the policy allows none');

  const script = await fetch(`${url}/demo/app.js`);
  assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.match(await script.text(), /import\('\.\/datagrove-client\.js'\)/);
  const css = await fetch(`${url}/demo/app.css`);
  assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');

  const sdk = await fetch(`${url}/demo/datagrove-client.js`);
  assert.equal(sdk.status, 200);
  assert.equal(sdk.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(sdk.headers.get('x-content-type-options'), 'nosniff');
  const body = await sdk.text();
  assert.equal(body, readFileSync(SDK_BUNDLE, 'utf8'), 'the bundle npm run build:client writes');
  assert.match(body, /\bDatagroveClient\b/);
});

test('is on by default, off with --demo=false or without the tail role, and refuses a malformed DATAGROVE_DEMO', async () => {
  assert.equal(loadConfig([], {}).demo, true);
  assert.equal(loadConfig(['--demo=false'], {}).demo, false);
  assert.equal(loadConfig([], { DATAGROVE_DEMO: '0' }).demo, false);
  assert.equal(loadConfig(['--demo'], { DATAGROVE_DEMO: '0' }).demo, true, 'a flag wins');
  assert.throws(() => loadConfig([], { DATAGROVE_DEMO: 'maybe' }), /--demo \(DATAGROVE_DEMO\) must be true, false/);
  for (const overrides of [{ demo: false }, { roles: ['auth' as const, 'notify' as const] }]) {
    const { url } = await startServer(overrides);
    const res = await fetch(`${url}/`);
    assert.equal(res.status, 404, JSON.stringify(overrides));
    assert.equal((await res.json()).error.code, 'NOT_FOUND');
    assert.equal((await fetch(`${url}/demo/datagrove-client.js`)).status, 404);
  }
});

/** The messages a page shows, as `who: text`. */
function messages(page: Page): Promise<string[]> {
  return page.$$eval('#messages li', (lis) => lis.map((li) => `${li.querySelector('.who')?.textContent ?? '?'}: ${li.querySelector('.text')?.textContent ?? li.textContent ?? ''}`));
}

async function waitForMessages(page: Page, n: number): Promise<string[]> {
  await page.waitForFunction((count) => document.querySelectorAll('#messages li').length >= count, n, { timeout: 30_000 });
  return messages(page);
}

async function post(page: Page, name: string, text: string): Promise<void> {
  await page.fill('#name', name);
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** Fails the test on any script error of the page, or an error the app shows. */
function watch(page: Page, label: string, errors: string[]): void {
  page.on('pageerror', (err) => errors.push(`${label}: ${err.message}`));
  page.on('console', (m) => {
    // The browser asks for /favicon.ico on its own; the demo has none.
    if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) errors.push(`${label} console: ${m.text()} (${m.location().url})`);
  });
}

test('two browsers share a room through an invite link: live both ways, durable across a reload', { timeout: 180_000 }, async (t) => {
  const skip = await chromiumSkip();
  if (skip) return t.skip(skip);
  // No DATAGROVE_ORIGINS: the page is the server's own origin.
  const { url } = await startServer();
  const browser = await chromium.launch(CHROMIUM_LAUNCH);
  t.after(() => browser.close());
  const errors: string[] = [];

  // Browser 1 signs up on its first visit, creates a room and posts.
  const one = await (await browser.newContext()).newPage();
  watch(one, 'one', errors);
  await one.goto(`${url}/`);
  await one.waitForSelector('body[data-ready="true"]');
  await one.waitForSelector('#lobby:not([hidden])');
  await one.fill('#room-name', 'Tea room');
  await one.click('#create button');
  await one.waitForSelector('#role[data-role="leader"]');
  const site = new URLSearchParams(new URL(one.url()).hash.slice(1)).get('room');
  assert.ok(site !== null && site.length > 0, one.url());
  await post(one, 'Ada', 'hello from Ada');
  assert.deepEqual(await waitForMessages(one, 1), ['Ada: hello from Ada']);

  // The owner makes an invite link; its secret stays in the fragment.
  await one.click('#invite');
  await one.waitForSelector('#invite-link:not([hidden])');
  const link = await one.inputValue('#invite-link');
  assert.ok(link.startsWith(`${url}/#join=${site}&`), link);

  // Browser 2: another context, so another device key and another user.
  const twoContext = await browser.newContext();
  const two = await twoContext.newPage();
  watch(two, 'two', errors);
  await two.goto(link);
  assert.deepEqual(await waitForMessages(two, 1), ['Ada: hello from Ada']);
  assert.equal(await two.textContent('#title'), 'Tea room', 'the room name is the log\'s first entry');
  assert.equal(new URL(two.url()).hash, `#room=${site}`, 'the invite key left the address bar');
  await two.waitForSelector('#role[data-role="follower"]');
  assert.equal(await two.isHidden('#sharing'), true, 'only the owner invites');
  const users = await Promise.all([one, two].map((p) => p.textContent('#me')));
  assert.notEqual(users[0], users[1]);

  // Browser 2 posts through the leader; browser 1 sees it live. Text stays text.
  await post(two, 'Bob', 'hi <b>Ada</b>, Bob here');
  const expected = ['Ada: hello from Ada', 'Bob: hi <b>Ada</b>, Bob here'];
  assert.deepEqual(await waitForMessages(one, 2), expected);
  assert.deepEqual(await waitForMessages(two, 2), expected);
  assert.equal(await one.locator('#messages b').count(), 0, 'user text is never markup');
  const devices = await one.$$eval('#messages .dev', (els) => els.map((e) => e.textContent));
  assert.equal(devices.length, 2);
  assert.notEqual(devices[0], devices[1], 'each message shows the device that signed it');

  // Browser 1 reloads: the same device signs in with its stored session and reads the log again.
  await one.reload();
  await one.waitForSelector('body[data-ready="true"]');
  assert.deepEqual(await waitForMessages(one, 2), expected);
  assert.equal(await one.textContent('#title'), 'Tea room');
  await one.waitForSelector('#role[data-role]:not([data-role=""])');

  assert.deepEqual(errors, []);
  assert.equal(await one.textContent('#error'), '');
  assert.equal(await two.textContent('#error'), '');
  await twoContext.close();
});
