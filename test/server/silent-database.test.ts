/**
 * A PostgreSQL that accepts connections and never answers (hung, or behind a dead proxy):
 * every PostgreSQL-backed part gives up within its connect timeout instead of waiting
 * forever, so a node fails to start with an error instead of hanging.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openPgAuthStore } from '../../src/auth/index.js';
import { openPgRateLimits } from '../../src/auth/rate-limit-pg.js';
import { openPgNotifyStore } from '../../src/notify/index.js';
import { openPgLogStore } from '../../src/tail/pg-log-store.js';
import { silentPostgres, type SilentServer } from '../helpers/silent-server.js';

describe('a PostgreSQL that never answers', () => {
  let silent: SilentServer;
  before(async () => {
    silent = await silentPostgres();
  });
  after(async () => {
    await silent.close();
  });

  /** Asserts that `open` rejects, after reaching the server, within `withinMs`. */
  async function givesUp(open: () => Promise<unknown>, withinMs: number): Promise<unknown> {
    const seen = silent.accepted();
    const t0 = performance.now();
    let error: unknown = null;
    await assert.rejects(
      open().then(async (x) => {
        // Opened against a server that never answered: close what it made, then fail.
        await (x as { close?: () => Promise<void> }).close?.();
        return x;
      }),
      (e: unknown) => {
        error = e;
        return true;
      },
    );
    const ms = performance.now() - t0;
    assert.ok(silent.accepted() > seen, 'it did connect to the silent server');
    assert.ok(ms < withinMs, `gave up after ${Math.round(ms)} ms`);
    return error;
  }

  it('the tail log store: UNAVAILABLE', async () => {
    const err = await givesUp(() => openPgLogStore(silent.url, { schema: 'silent', connectTimeoutMs: 300 }), 3000);
    assert.equal((err as { code?: string }).code, 'UNAVAILABLE');
  });

  it('the auth store', async () => {
    await givesUp(() => openPgAuthStore(silent.url, { schema: 'silent', connectTimeoutMs: 300 }), 3000);
  });

  it('the notify store', async () => {
    await givesUp(() => openPgNotifyStore(silent.url, { schema: 'silent', connectTimeoutMs: 300 }), 3000);
  });

  it('the shared rate limits (5 s connect timeout)', async () => {
    await givesUp(() => openPgRateLimits(silent.url, 'silent'), 8000);
  });
});
