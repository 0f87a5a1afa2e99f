/**
 * Real `datagrove` processes for tests: spawn the CLI (through tsx, or any command), wait
 * until it answers HTTP, stop it with a signal, and keep its output for failure messages.
 * Every child still running when the test file ends is killed (node:test `after`).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadVapidKeys, VAPID_FILE } from '../../src/notify/index.js';
import { initKeyFiles } from '../../src/server/secrets.js';
import { tempDir } from '../helpers/server.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAX_OUTPUT = 64 * 1024;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Child {
  proc: ChildProcess;
  /** stdout and stderr so far (the last 64 KiB). */
  output(): string;
  exited: Promise<Exit>;
  /** Sends `signal` and resolves with the exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

const running = new Set<Child>();
after(async () => {
  await Promise.all([...running].map((c) => c.stop('SIGKILL')));
});

/** A port that was free a moment ago (bound on 127.0.0.1, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The environment without any DATAGROVE_* setting of the caller's, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DATAGROVE_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Spawns `command args` in the repository root. With `group`, the child leads a process
 * group of its own and signals go to the whole group (for wrappers such as `npm start`
 * whose real work runs in a grandchild).
 */
export function spawnChild(command: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv(), group = false): Child {
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: group });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > MAX_OUTPUT) out = out.slice(-MAX_OUTPUT);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<Exit>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const child: Child = {
    proc,
    output: () => out,
    exited,
    stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) {
        if (group && proc.pid !== undefined) {
          try {
            process.kill(-proc.pid, signal);
          } catch {
            // The group is gone already.
          }
        } else {
          proc.kill(signal);
        }
      }
      return exited;
    },
  };
  running.add(child);
  void exited.then(() => running.delete(child));
  return child;
}

/** Runs the CLI from source: `node --import tsx src/server/cli.ts ...args`. */
export function spawnCli(args: string[], env?: NodeJS.ProcessEnv): Child {
  return spawnChild(process.execPath, ['--import', 'tsx', 'src/server/cli.ts', ...args], env);
}

/** Runs a command to its end and resolves with its exit and output. */
export async function runCli(args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<Exit & { output: string }> {
  const c = spawnCli(args, env);
  const timer = setTimeout(() => void c.stop('SIGKILL'), timeoutMs);
  const exit = await c.exited;
  clearTimeout(timer);
  return { ...exit, output: c.output() };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until `url` answers 200; fails early when the child exits. */
export async function waitHttp(child: Child, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`process exited (${child.proc.exitCode ?? child.proc.signalCode}) before ${url} answered:\n${child.output()}`);
    }
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${child.output()}`);
    await sleep(100);
  }
}

/** Polls `probe` until it returns a value other than undefined. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    await sleep(everyMs);
  }
}

/** A directory of fresh key files, made once for the processes of a cluster. */
export function clusterKeys(prefix: string): string {
  const keys = tempDir(`${prefix}keys-`);
  initKeyFiles(keys, { file: VAPID_FILE, make: (d) => void loadVapidKeys(d) });
  return keys;
}

/** A fresh data directory holding copies of the key files in `keys`, as an operator copies them. */
export function nodeDataDir(keys: string, prefix: string): string {
  const data = tempDir(prefix);
  for (const f of ['hmac-keys.json', 'attestation-keys.json', VAPID_FILE]) copyFileSync(join(keys, f), join(data, f));
  return data;
}

/** A fresh data directory holding the key files every process of a cluster shares, as an operator copies them. */
export function clusterDataDir(prefix: string): string {
  return nodeDataDir(clusterKeys(prefix), prefix);
}

/** `serve --roles roles` on `bus` and the PostgreSQL schema `schema`, on a free port, once /ready answers. */
export async function spawnRoles(roles: string, bus: string, db: string, schema: string, prefix: string): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnCli([
    'serve', '--roles', roles, '--port', String(port), '--host', '127.0.0.1', '--public-url', url, '--data', clusterDataDir(prefix),
    '--bus', bus, '--db', db, '--db-schema', schema, '--log-level', 'warn',
  ]);
  await waitHttp(child, `${url}/ready`);
  return { child, url };
}

/** `serve` (every service, SQLite) on `dataDir` and a free port, once /ready answers. */
export async function serveDataDir(dataDir: string, logLevel = 'warn'): Promise<{ child: Child; url: string; wsUrl: string }> {
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--log-level', logLevel]);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(child, `${url}/ready`);
  return { child, url, wsUrl: `ws://127.0.0.1:${port}/tail` };
}

/** Stops `child` with SIGTERM; asserts that it exited 0 (its output otherwise). */
export async function stopCleanly(child: Child): Promise<void> {
  assert.deepEqual(await child.stop('SIGTERM'), { code: 0, signal: null }, child.output());
}
