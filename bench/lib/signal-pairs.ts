/**
 * Offer/answer pairs for the signaling benchmark, one class per server, the same client
 * code otherwise (bench/lib/ws-client.ts). A round trip is: A sends an offer to B, the
 * server relays it, B answers A, the server relays the answer: two relays.
 * - Tail: A leads a log and B follows it; both `signal` (the server replies `{}` to the
 *   sender and stamps `from` on the event it relays).
 * - PeerJS: A and B are PeerServer clients `a-<k>` and `b-<k>`; messages are
 *   `{type:"OFFER"|"ANSWER", dst, payload}` as the peerjs client library sends them, and
 *   the server stamps `src`. Clients send HEARTBEAT every 5 s like that library, or the
 *   server drops them after its alive timeout.
 */
import WebSocket from 'ws';
import { connectTail } from './targets.js';
import type { Frame, WsClient } from './ws-client.js';

export interface Pair {
  /** Resolves with the round-trip time in ms once A has B's answer. */
  roundTrip(): Promise<number>;
  close(): Promise<void>;
}

/** A plausible data-channel SDP (about 500 bytes), the payload of every offer and answer. */
export const SDP = [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=extmap-allow-mixed', 'a=msid-semantic: WMS',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0', 'a=ice-ufrag:Q2xT', 'a=ice-pwd:3Xq1kB9HqJ8m0oZyF4xJm0xv',
  'a=ice-options:trickle', 'a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CF:CC:C8:B3:9A:2C:65:1B:0A:1E:D7:1E:2A:6D:40:59:3E:61:C0:8E',
  'a=setup:actpass', 'a=mid:0', 'a=sctp-port:5000', 'a=max-message-size:262144', '',
].join('\r\n');

/** One round trip in flight at a time: started by roundTrip(), ended by the answer. */
class Waiter {
  private resolve: ((ms: number) => void) | null = null;
  private started = 0;
  constructor(private readonly why: () => string) {}

  start(): Promise<number> {
    if (this.resolve !== null) return Promise.reject(new Error('a round trip is already in flight on this pair'));
    this.started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.resolve = null;
        reject(new Error(`round trip timed out: ${this.why()}`));
      }, 10_000);
      this.resolve = (ms) => {
        clearTimeout(timer);
        resolve(ms);
      };
    });
  }

  done(): void {
    const r = this.resolve;
    this.resolve = null;
    r?.(performance.now() - this.started);
  }
}

export class TailPair implements Pair {
  private readonly waiter: Waiter;
  private error: string | null = null;

  private constructor(
    private readonly a: WsClient,
    private readonly ha: string | number,
    private readonly b: WsClient,
    private readonly bDevice: string,
  ) {
    this.waiter = new Waiter(() => this.error ?? 'no answer');
    a.onFrame = (f) => {
      if (f.ev === 'signal' && f.kind === 'answer') this.waiter.done();
    };
  }

  static async open(url: string, site: string, log: string, a: { access: string }, b: { access: string; device: string }): Promise<TailPair> {
    const la = await connectTail(url, a.access, site, log, true);
    const lb = await connectTail(url, b.access, site, log, false);
    const pair = new TailPair(la.conn.client, la.conn.handle, lb.conn.client, b.device);
    const hb = lb.conn.handle;
    lb.conn.client.onFrame = (f: Frame) => {
      if (f.ev !== 'signal' || f.kind !== 'offer') return;
      void pair.b.send('signal', { handle: hb, to: f.from, kind: 'answer', data: { type: 'answer', sdp: SDP } }).then((r) => {
        if (r.error !== undefined) pair.error = `answer: ${r.error.code} ${r.error.message}`;
      });
    };
    return pair;
  }

  roundTrip(): Promise<number> {
    const p = this.waiter.start();
    void this.a.send('signal', { handle: this.ha, to: this.bDevice, kind: 'offer', data: { type: 'offer', sdp: SDP } }).then((r) => {
      if (r.error !== undefined) this.error = `offer: ${r.error.code} ${r.error.message}`;
    });
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([this.a.close(), this.b.close()]);
  }
}

/** A PeerServer client socket, listening from the start (OPEN may arrive with the upgrade). */
class PeerJsClient {
  onMessage: (m: Frame) => void = () => {};

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.onMessage(JSON.parse(data.toString('utf8')) as Frame));
  }

  static open(port: number, id: string): Promise<PeerJsClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/peerjs?key=peerjs&id=${id}&token=${Math.random().toString(36).slice(2)}`, { perMessageDeflate: false });
    const c = new PeerJsClient(ws);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`peerjs ${id}: no OPEN`)), 10_000);
      ws.once('error', reject);
      c.onMessage = (f) => {
        if (f.type === 'OPEN') {
          clearTimeout(t);
          resolve(c);
        } else if (f.type === 'ERROR' || f.type === 'ID-TAKEN') reject(new Error(`peerjs ${id}: ${JSON.stringify(f)}`));
      };
    });
  }

  send(m: Frame): void {
    this.ws.send(JSON.stringify(m));
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }
}

export class PeerJsPair implements Pair {
  private readonly waiter = new Waiter(() => 'no answer');
  private readonly heartbeat: NodeJS.Timeout;

  private constructor(
    private readonly a: PeerJsClient,
    private readonly b: PeerJsClient,
    private readonly bId: string,
    private readonly connectionId: string,
  ) {
    a.onMessage = (f) => {
      if (f.type === 'ANSWER') this.waiter.done();
    };
    b.onMessage = (f) => {
      if (f.type !== 'OFFER') return;
      b.send({ type: 'ANSWER', dst: f.src, payload: { sdp: { type: 'answer', sdp: SDP }, type: 'data', connectionId: this.connectionId, browser: 'node' } });
    };
    this.heartbeat = setInterval(() => {
      for (const c of [a, b]) c.send({ type: 'HEARTBEAT' });
    }, 5000);
  }

  static async open(port: number, k: number): Promise<PeerJsPair> {
    const a = await PeerJsClient.open(port, `a-${k}`);
    const b = await PeerJsClient.open(port, `b-${k}`);
    return new PeerJsPair(a, b, `b-${k}`, `dc_${k}`);
  }

  roundTrip(): Promise<number> {
    const p = this.waiter.start();
    this.a.send({
      type: 'OFFER',
      dst: this.bId,
      payload: { sdp: { type: 'offer', sdp: SDP }, type: 'data', connectionId: this.connectionId, label: this.connectionId, reliable: true, serialization: 'binary' },
    });
    return p;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await Promise.all([this.a.close(), this.b.close()]);
  }
}
