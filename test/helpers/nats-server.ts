/**
 * A NATS server of a test's own, on a free loopback port, for tests that run tail nodes:
 * tail nodes on a shared NATS see each other (the shard map is cluster-wide), so two such
 * test files running at once would find each other's nodes in their maps. The binary is the
 * one the machine's NATS service runs (`nats-server` from Debian's package).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from '../server/child.js';
import { IN_CI, portOpen } from './services.js';

export const NATS_SERVER_BIN = process.env.DATAGROVE_TEST_NATS_SERVER ?? '/usr/sbin/nats-server';

export interface OwnNats {
  url: string;
  stop(): Promise<void>;
}

/** Whether the binary is here (the caller skips outside CI when it is not). */
export function natsServerAvailable(): boolean {
  return existsSync(NATS_SERVER_BIN);
}

/** Starts a NATS server (no JetStream, nothing on disk) and resolves once it accepts connections. */
export async function startOwnNats(): Promise<OwnNats> {
  const port = await freePort();
  const child: ChildProcess = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; !(await portOpen('127.0.0.1', port)); i++) {
    if (child.exitCode !== null || i > 100) {
      child.kill('SIGKILL');
      throw new Error(`nats-server did not start on port ${port}: ${output.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** False when nats-server can run here (or in CI, where it must); else the reason to skip, also printed. */
export function natsServerSkip(): string | false {
  if (natsServerAvailable() || IN_CI) return false;
  const reason = `nats-server at ${NATS_SERVER_BIN} is not available here; skipped (CI runs it)`;
  process.stderr.write(`# SKIP: ${reason}\n`);
  return reason;
}
