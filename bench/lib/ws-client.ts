/**
 * A small JSON-over-WebSocket client speaking the request/reply/event framing of
 * PROTOCOL.md "Tail API" (requests carry `id`, replies `re`, events `ev`). The fan-out
 * followers use the same class against the real server and the relay peer.
 */
import WebSocket from 'ws';

export interface Reply {
  re: number | null;
  error?: { code: string; message: string };
  [k: string]: unknown;
}

export type Frame = Record<string, unknown>;

export class WsClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  /** Called with every frame that is not a reply to a pending request. */
  onFrame: (f: Frame) => void = () => {};
  closeCode: number | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.receive(data));
    ws.on('close', (code) => {
      this.closeCode = code;
      for (const p of this.pending.values()) p.reject(new Error(`socket closed (${code})`));
      this.pending.clear();
    });
  }

  static open(url: string, protocol?: string): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocol === undefined ? [] : [protocol], { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
      ws.once('open', () => resolve(new WsClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
  }

  private receive(data: Buffer): void {
    const f = JSON.parse(data.toString('utf8')) as Frame;
    const re = f.re;
    if (typeof re === 'number') {
      const p = this.pending.get(re);
      if (p !== undefined) {
        this.pending.delete(re);
        p.resolve(f as Reply);
        return;
      }
    }
    this.onFrame(f);
  }

  /** Sends a request and resolves with its reply (an `error` reply rejects). */
  async request(op: string, args: Record<string, unknown> = {}): Promise<Reply> {
    const r = await this.send(op, args);
    if (r.error !== undefined) throw new Error(`${op}: ${r.error.code} ${r.error.message}`);
    return r;
  }

  /** Sends a request and resolves with its raw reply, error or not. */
  send(op: string, args: Record<string, unknown> = {}): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, op, ...args }));
    });
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }
}
