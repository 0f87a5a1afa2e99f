/**
 * The one test-server helper: a real server on port 0 with a temp data dir and quiet logs,
 * torn down after the calling test file (node:test `after`).
 */
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { buildServer, type DatagroveServer } from '../../src/server/app.js';
import { defaultConfig, type Config } from '../../src/server/config.js';

export interface TestServer {
  server: DatagroveServer;
  /** http://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT/tail */
  wsUrl: string;
  dataDir: string;
  /** Stops the server (idempotent); the data dir stays until the file's teardown. */
  stop(): Promise<void>;
}

export function tempDir(prefix = 'dg-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A data directory of its own whose databases and key files are those of `dir` (symbolic
 * links; SQLite puts its -wal and -shm beside the real file, so both share one store): a
 * second server on the same store, for tests of what the store guarantees between
 * processes. Servers cannot share the data directory itself: it is locked to one.
 */
export function sameStoreDir(dir: string): string {
  const other = tempDir('dg-same-store-');
  for (const f of ['auth.db', 'tail.db', 'notify.db', 'hmac-keys.json', 'attestation-keys.json', 'vapid-keys.json']) {
    if (existsSync(join(dir, f))) symlinkSync(join(dir, f), join(other, f));
  }
  return other;
}

export async function startServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? tempDir();
  const config: Config = { ...defaultConfig(), port: 0, host: '127.0.0.1', logLevel: 'silent', ...overrides, dataDir };
  const server = await buildServer(config);
  const port = await server.listen();
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.close();
  };
  after(stop);
  return { server, url, wsUrl: `ws://127.0.0.1:${port}/tail`, dataDir, stop };
}
