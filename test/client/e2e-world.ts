/**
 * Shared setup of the end-to-end encryption tests: SDK clients (harness.ts) that sign in
 * through the real OIDC dev provider (driven over HTTP with a cookie jar), each with its
 * own storage and KeyManager, and a recorder of what a log's subscribers saw.
 */
import assert from 'node:assert/strict';
import { DgError } from '../../src/protocol/errors.js';
import { MemoryKeyStorage, type FetchLike, type KeyStorage } from '../../src/client/index.js';
import { KeyManager } from '../../src/client/keys/key-manager.js';
import type { ApprovalResult, DeviceApprovalRequest } from '../../src/client/keys/device-approval.js';
import { confirmationCode, devIdpSignIn, post } from '../helpers/auth-client.js';
import type { TestServer } from '../helpers/server.js';
import { makeClient, waitFor, type ClientSetup, type TestClient } from './harness.js';

export interface Device extends TestClient {
  storage: KeyStorage;
  keys: KeyManager;
  /** Approval requests this device's app was asked. */
  asked: DeviceApprovalRequest[];
  /** Outcomes of the devices it considered. */
  considered: ApprovalResult[];
  errors: DgError[];
  /** The identity attestation of its sign-in. */
  identity: string;
}

export interface SignIn {
  /** Send the device's signature of its box key (default: yes, as an up-to-date app does). */
  boxSig?: boolean;
  /** Runs between the login's start and its completion (a test playing a compromised server). */
  beforeComplete?: (state: string) => void;
}

/** OIDC sign-in of the client's device at the dev IdP as `email`, through the SDK. */
export async function oidcSignIn(srv: TestServer, c: TestClient, email: string, name: string, opts: SignIn = {}): Promise<{ user: string; identity: string; newDevice: boolean }> {
  if (opts.boxSig === false) return oidcSignInWithoutBoxSig(srv, c, email, name, opts);
  const started = await c.client.oidcStart('dev', { name });
  const { callback, browser } = await devIdpSignIn(started.url, email);
  const cb = await browser.request(callback);
  assert.equal(cb.status, 200);
  const code = await confirmationCode(cb);
  opts.beforeComplete?.(started.state);
  const done = await c.client.oidcComplete(started.state, code);
  assert.equal(done.device, c.client.device);
  assert.ok(c.client.signedIn, 'signed in by the sign-in itself');
  return done;
}

/** The same over HTTP by hand, leaving out the box key signature (as an old app would), then an SDK login. */
async function oidcSignInWithoutBoxSig(srv: TestServer, c: TestClient, email: string, name: string, opts: SignIn): Promise<{ user: string; identity: string; newDevice: boolean }> {
  const keys = c.client.keys;
  const challenge = async () => {
    const r = await post<{ nonce: string }>(srv.url, '/challenge', { device: keys.deviceId });
    assert.equal(r.status, 200, r.text);
    return r.body.nonce;
  };
  let nonce = await challenge();
  const started = await post<{ url: string; state: string }>(srv.url, '/oidc/start', { provider: 'dev', device: keys.deviceId, boxKey: keys.boxKey, name, nonce, sig: keys.signChallenge(nonce) });
  assert.equal(started.status, 200, started.text);
  const { callback, browser } = await devIdpSignIn(started.body.url, email);
  const cb = await browser.request(callback);
  assert.equal(cb.status, 200);
  const code = await confirmationCode(cb);
  opts.beforeComplete?.(started.body.state);
  nonce = await challenge();
  const done = await post<{ user: string; identity: string; newDevice: boolean }>(srv.url, '/oidc/complete', { state: started.body.state, code, nonce, sig: keys.signChallenge(nonce) });
  assert.equal(done.status, 200, done.text);
  await c.client.login();
  return done.body;
}

export interface DeviceSetup {
  storage?: KeyStorage;
  /** The fetch the client's HTTP calls go through (default: the global one). */
  fetch?: FetchLike;
  /** The app's answer to approval requests (default: yes). */
  approve?: boolean;
  /** Do not call `start()`. */
  noStart?: boolean;
  signIn?: SignIn;
  /** Derives the class the SDK is given from the tracked one (to block or watch its sockets). */
  socket?: ClientSetup['socket'];
}

/** A device signed in as `email`, with its KeyManager started. */
export async function device(srv: TestServer, email: string, name: string, setup: DeviceSetup = {}): Promise<Device> {
  const storage = setup.storage ?? new MemoryKeyStorage();
  const c = await makeClient(srv, { storage, ...(setup.fetch === undefined ? {} : { fetch: setup.fetch }), ...(setup.socket === undefined ? {} : { socket: setup.socket }) });
  const { identity } = await oidcSignIn(srv, c, email, name, setup.signIn);
  return withKeys(c, storage, identity, setup);
}

/** A KeyManager for an already signed-in client. */
export async function withKeys(c: TestClient, storage: KeyStorage, identity: string, setup: DeviceSetup = {}): Promise<Device> {
  const asked: DeviceApprovalRequest[] = [];
  const considered: ApprovalResult[] = [];
  const errors: DgError[] = [];
  const keys = await KeyManager.open(c.client, {
    storage,
    approveDevice: async (req) => {
      asked.push(req);
      return setup.approve ?? true;
    },
  });
  keys.on('device', (r) => considered.push(r));
  keys.on('error', (e) => errors.push(e));
  if (setup.noStart !== true) await keys.start();
  return { ...c, storage, keys, asked, considered, errors, identity };
}

export async function waitReady(d: Device, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${d.client.device.slice(0, 6)} ready`, () => d.keys.state === 'ready', timeoutMs);
}

export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

export const newEmail = (who: string): string => `${who}-${Math.random().toString(36).slice(2, 10)}@example.com`;

/** Closes the devices' key managers and clients. */
export async function closeAll(...devices: Device[]): Promise<void> {
  for (const d of devices) {
    d.keys.close();
    await d.client.close();
  }
}
