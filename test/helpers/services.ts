/**
 * External services for tests. Outside CI a suite whose service is down is skipped with a
 * message naming what is missing; with CI=true it runs anyway (and fails), so CI never
 * skips a suite.
 */
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import pg from 'pg';

export const PG_URL = process.env.DATAGROVE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.DATAGROVE_TEST_NATS ?? 'nats://127.0.0.1:4222';
export const CHROMIUM = '/usr/bin/chromium';
export const IN_CI = process.env.CI === 'true';

export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function hostPort(url: string, defaultPort: number): [string, number] {
  const u = new URL(url);
  return [u.hostname, u.port === '' ? defaultPort : Number(u.port)];
}

/** `false` when the suite should run, else the skip reason (never a reason under CI). */
async function skipUnless(available: boolean, what: string): Promise<string | false> {
  if (available || IN_CI) return false;
  const reason = `${what} is not available here; skipped (CI runs it)`;
  process.stderr.write(`# SKIP: ${reason}\n`);
  return reason;
}

/** Drops the test's PostgreSQL schemas (with everything in them), after a suite that made them. */
export async function dropPgSchemas(...schemas: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** Kills every PostgreSQL connection named `applicationName` (as a store names its pool); resolves how many. */
export async function killPgConnections(applicationName: string): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const { rows } = await c.query('SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
    return rows.length;
  } finally {
    await c.end();
  }
}

export async function pgSkip(): Promise<string | false> {
  return skipUnless(await portOpen(...hostPort(PG_URL, 5432)), `PostgreSQL at ${PG_URL}`);
}

export async function natsSkip(): Promise<string | false> {
  return skipUnless(await portOpen(...hostPort(NATS_URL, 4222)), `NATS at ${NATS_URL}`);
}

export async function chromiumSkip(): Promise<string | false> {
  return skipUnless(existsSync(CHROMIUM), `Chromium at ${CHROMIUM}`);
}

/** The launch options every browser test uses. */
export const CHROMIUM_LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-features=WebRtcHideLocalIpsWithMdns'],
};
