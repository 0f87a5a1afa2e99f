/**
 * A JSON-over-HTTP client for load: node:http with one keep-alive agent, requests sent from
 * a chosen loopback source address (bench/lib/loopback.ts). The same client drives the
 * project's auth API and the peers, so both sides pay the same client costs.
 */
import { Agent, request } from 'node:http';

export interface JsonReply<T> {
  status: number;
  body: T;
}

export class JsonHttp {
  private readonly agent: Agent;

  constructor(
    private readonly port: number,
    maxSocketsPerAddress = 64,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: maxSocketsPerAddress });
  }

  /** POSTs `body` as JSON; resolves with the status and the parsed reply, whatever the status. */
  post<T>(path: string, body: unknown, opts: { bearer?: string; from?: string } = {}): Promise<JsonReply<T>> {
    const data = Buffer.from(JSON.stringify(body), 'utf8');
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': data.length };
    if (opts.bearer !== undefined) headers.authorization = `Bearer ${opts.bearer}`;
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: this.port, path, method: 'POST', headers, agent: this.agent, ...(opts.from === undefined ? {} : { localAddress: opts.from }) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: res.statusCode ?? 0, body: (text === '' ? null : JSON.parse(text)) as T });
            } catch {
              reject(new Error(`POST ${path} → ${res.statusCode ?? 0}: not JSON: ${text.slice(0, 200)}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  /** POSTs and returns the body of a 2xx reply; any other status throws with the reply. */
  async ok<T>(path: string, body: unknown, opts: { bearer?: string; from?: string } = {}): Promise<T> {
    const r = await this.post<T>(path, body, opts);
    if (r.status < 200 || r.status >= 300) throw new Error(`POST ${path} → ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  }

  close(): void {
    this.agent.destroy();
  }
}
