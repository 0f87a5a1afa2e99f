/**
 * Shared setup of the SDK's integration tests: a real server, SDK clients in this process
 * (ws for WebSocket, werift for WebRTC), sockets that a test can cut, and recorders of
 * what each subscriber saw.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { RTCPeerConnection } from 'werift';
import { startServer, type TestServer } from '../helpers/server.js';
import { DatagroveClient, type FetchLike, type KeyStorage, type LogEntry, type Log, type RtcPeerConnectionConstructor, type WebSocketConstructor } from '../../src/client/index.js';

export interface TestClient {
  client: DatagroveClient;
  /** Every socket this client opened (so a test can cut them). */
  sockets: Set<WebSocket>;
  /** Cuts every open socket of this client at once (no close handshake). */
  cut(): void;
}

/** A `ws` WebSocket class (what the SDK is given). */
export type SocketClass = new (url: string, protocols?: string | string[]) => WebSocket;

export interface ClientSetup {
  rtc?: boolean;
  storage?: KeyStorage;
  onAuthError?: (err: Error) => void;
  /** Derives the class the SDK is given from the tracked one (to watch or hold frames). */
  socket?: (Tracked: SocketClass) => SocketClass;
  /** The fetch the SDK's HTTP calls go through (to fail some of them, as a network would). */
  fetch?: FetchLike;
}

/**
 * A socket class for `ClientSetup.socket` whose new connections reach nothing while
 * `blocked` is set (they go to a port where nobody listens), as for a device offline.
 */
export function blockableSockets(): { blocked: boolean; socket: NonNullable<ClientSetup['socket']> } {
  const state = {
    blocked: false,
    socket: (Tracked: SocketClass): SocketClass =>
      class extends Tracked {
        constructor(url: string, protocols?: string | string[]) {
          super(state.blocked ? 'ws://127.0.0.1:9/' : url, protocols);
        }
      },
  };
  return state;
}

/**
 * Makes `ws` hand the frames the SDK would get through `filter` first: the SDK sets
 * `onmessage`, and what it sets is wrapped (`filter` gets each event and the SDK's handler).
 */
export function filterMessages(ws: WebSocket, filter: (ev: WebSocket.MessageEvent, deliver: (ev: WebSocket.MessageEvent) => void) => void): void {
  const inherited = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  Object.defineProperty(ws, 'onmessage', {
    get: () => inherited.get!.call(ws) as unknown,
    set: (fn: ((ev: WebSocket.MessageEvent) => void) | null) => {
      inherited.set!.call(ws, fn === null ? null : (ev: WebSocket.MessageEvent) => filter(ev, fn));
    },
  });
}

/** A link whose frames from the server can be held (see `stall`). */
export interface Stallable {
  /** While set, frames from the server are held (a stalled link), then delivered at once, in order. */
  held: (() => void)[] | null;
}

/** Holds the link's frames from the server for `ms`, then delivers them in one burst. */
export function stall(link: Stallable, ms: number): void {
  if (link.held !== null) return;
  link.held = [];
  setTimeout(() => {
    const frames = link.held ?? [];
    link.held = null;
    for (const deliver of frames) deliver();
  }, ms);
}

export async function server(overrides: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  return startServer({ leaseGraceMs: 300, ...overrides });
}

export async function makeClient(srv: TestServer, setup: ClientSetup = {}): Promise<TestClient> {
  const sockets = new Set<WebSocket>();
  class TrackedWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.add(this);
      this.on('close', () => sockets.delete(this));
    }
  }
  const client = await DatagroveClient.create({
    url: srv.url,
    WebSocket: (setup.socket?.(TrackedWebSocket) ?? TrackedWebSocket) as unknown as WebSocketConstructor,
    RTCPeerConnection: setup.rtc === true ? (RTCPeerConnection as unknown as RtcPeerConnectionConstructor) : null,
    rtcConfig: { iceServers: [] },
    // The test server's public URL names port 0 (it is bound later): reach it where it listens.
    shardUrl: () => srv.wsUrl,
    ...(setup.storage === undefined ? {} : { storage: setup.storage }),
    ...(setup.onAuthError === undefined ? {} : { onAuthError: setup.onAuthError }),
    ...(setup.fetch === undefined ? {} : { fetch: setup.fetch }),
  });
  return {
    client,
    sockets,
    cut: () => {
      for (const s of sockets) s.terminate();
    },
  };
}

/** Signs `owner` up, creates a site, and gives every other client read+write through a grant. */
export async function sharedSite(owner: TestClient, others: TestClient[]): Promise<string> {
  if (!owner.client.signedIn) await owner.client.signup('owner');
  const { site } = await owner.client.createSite('test');
  for (const o of others) {
    const { user } = o.client.signedIn ? { user: o.client.user! } : await o.client.signup('member');
    const grant = owner.client.signGrant({ sub: `user:${user}`, site, logs: ['*'], rights: ['read', 'write'] });
    await owner.client.declare(grant);
    await o.client.join(site, grant);
  }
  return site;
}

/** What a subscriber saw, as "index:payload" strings. */
export function record(log: Log): { seen: LogEntry[]; text: () => string[] } {
  const seen: LogEntry[] = [];
  log.subscribe((entries) => seen.push(...entries));
  return { seen, text: () => seen.map((e) => `${e.index}:${new TextDecoder().decode(e.payload)}`) };
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Checks the end state after concurrent appends: every acknowledged payload is in the log
 * exactly once, at the index its append reported, and every subscriber saw the same
 * sequence from index 0 without gaps.
 */
export function assertExactlyOnce(acked: Map<string, number>, recorders: { seen: LogEntry[] }[]): void {
  const reference = recorders[0]!.seen;
  reference.forEach((e, i) => assert.equal(e.index, i, 'subscriber saw a gap or reordering'));
  const refText = reference.map((e) => new TextDecoder().decode(e.payload));
  for (const r of recorders.slice(1)) {
    assert.deepEqual(
      r.seen.map((e) => `${e.index}:${new TextDecoder().decode(e.payload)}`),
      reference.map((e, i) => `${e.index}:${refText[i]}`),
      'every subscriber saw the same sequence',
    );
  }
  const counts = new Map<string, number>();
  for (const t of refText) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, n] of counts) assert.equal(n, 1, `payload ${t} appears ${n} times`);
  for (const [payload, index] of acked) {
    assert.equal(refText[index], payload, `acknowledged ${payload} is at index ${index}`);
  }
}
