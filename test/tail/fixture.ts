/**
 * Common steps of the tail tests: a real server (auth + tail), real signed-up devices,
 * a site, grants, and connected tail sessions.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { openSqliteAuthStore } from '../../src/auth/index.js';
import type { Config } from '../../src/server/config.js';
import { createSite, declareGrant, post, signupDevice, type SignedUpDevice } from '../helpers/auth-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { TailClient } from '../helpers/tail-client.js';

export interface World {
  srv: TestServer;
  url: string;
  wsUrl: string;
  /** A user who owns `site` (admin on it). */
  owner: SignedUpDevice;
  site: string;
}

export async function world(overrides: Partial<Config> = {}): Promise<World> {
  const srv = await startServer(overrides);
  const owner = await signupDevice(srv.url, { name: 'owner' });
  const site = await createSite(srv.url, owner.access);
  return { srv, url: srv.url, wsUrl: srv.wsUrl, owner, site };
}

/** A new user with a declared grant from the owner giving `rights` on `logs` of the site. */
export async function member(w: World, rights: ('read' | 'write' | 'admin')[], logs: string[] = ['*']): Promise<{ dev: SignedUpDevice; grant: { jws: string; hash: string } }> {
  const dev = await signupDevice(w.url, { name: 'member' });
  const grant = await declareGrant(w.url, w.owner, { sub: `user:${dev.user}`, site: w.site, logs, rights });
  return { dev, grant };
}

/** A member who also joined the grant over HTTP, so leases succeed at once. */
export async function joined(w: World, rights: ('read' | 'write' | 'admin')[], logs: string[] = ['*']): Promise<SignedUpDevice> {
  const m = await member(w, rights, logs);
  const r = await post(w.url, '/join', { site: w.site, grant: m.grant.hash }, m.dev.access);
  if (r.status !== 200) throw new Error(`join: ${r.status} ${r.text}`);
  return m.dev;
}

export function connect(w: World, dev: SignedUpDevice): Promise<TailClient> {
  return TailClient.connect(w.wsUrl, dev.access);
}

export interface Lease {
  handle: string;
  role: 'leader' | 'follower';
  epoch: number;
  length: number;
  leader: string | null;
  peers: string[];
  writers: string[];
}

export function lease(c: TailClient, site: string, log: string, extra: Record<string, unknown> = {}): Promise<Lease> {
  return c.call<Lease>('lease', { site, log, ...extra });
}

/**
 * Revokes a grant through another connection to the world's auth database: stored as a
 * revocation is, but no dg.tail.revoke is published (as when its message is lost). Returns
 * the users whose access it dropped.
 */
export async function revokeGrantUnannounced(w: World, hash: string): Promise<string[]> {
  const store = openSqliteAuthStore(join(w.srv.dataDir, 'auth.db'));
  try {
    return (await store.revokeGrant(hash, Date.now())).dropped.map((x) => x.user);
  } finally {
    await store.close();
  }
}

export function logName(prefix = 'log'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns true (fails after `timeoutMs`). */
export async function until(f: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

