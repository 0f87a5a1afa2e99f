/**
 * A real Web Push receiver on loopback, standing in for a browser push service: HTTPS with a
 * self-signed certificate (made with `openssl` in a temp dir), subscriptions made as a
 * browser makes them (a P-256 ECDH key pair and a 16-byte auth secret), and for every push:
 * - the VAPID header `vapid t=<jwt>, k=<key>` is checked: `k` must be the
 *   applicationServerKey the subscription was made with, the JWT must be ES256 signed by it,
 *   `aud` must be this origin and `exp` in the future (at most 24 h away);
 * - the body is decrypted with http_ece (aes128gcm) using the subscription's private key and
 *   auth secret, and parsed as JSON;
 * - the headers are recorded.
 * A push that fails a check is answered 400/401/403 as a push service would, and recorded
 * with `error`. Responses can be scripted per subscription (410, 429 + retry-after, 500, a
 * delay). Torn down after the calling test file.
 */
import { execFileSync } from 'node:child_process';
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after } from 'node:test';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { tempDir } from './server.js';

interface Ece {
  decrypt(buffer: Buffer, params: { version: 'aes128gcm'; privateKey: ECDH; authSecret: string }): Buffer;
}
const ece = createRequire(import.meta.url)('http_ece') as Ece;

export interface BrowserSubscription {
  /** The receiver's id of this subscription. */
  id: string;
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ScriptedResponse {
  status: number;
  /** Sent as the `retry-after` header. */
  retryAfter?: string;
  /** Waits this long before answering. */
  delayMs?: number;
}

export interface ReceivedPush {
  id: string;
  at: number;
  /** The status the receiver answered. */
  status: number;
  /** Why the push was refused, or null when it verified and decrypted. */
  error: string | null;
  headers: { ttl?: string; urgency?: string; topic?: string; contentEncoding?: string };
  jwt: { aud?: unknown; exp?: unknown; sub?: unknown };
  /** The decrypted JSON payload. */
  payload: unknown;
  /** Bytes of the encrypted body, and of the plaintext (once decrypted). */
  bodyBytes: number;
  plainBytes: number | null;
}

export interface PushReceiver {
  origin: string;
  /** Allowlist entries for this receiver: `127.0.0.1:PORT` and `localhost:PORT`. */
  hosts: string[];
  /** An agent that trusts the receiver's certificate (and only it). */
  agent: https.Agent;
  /** A new subscription, as `PushManager.subscribe({applicationServerKey})` makes one. */
  subscribe(applicationServerKey: string): BrowserSubscription;
  /** The next responses for this subscription, in order; afterwards it answers 201. */
  script(id: string, ...responses: ScriptedResponse[]): void;
  /** What arrived, for one subscription or all. */
  received(id?: string): ReceivedPush[];
  /** Resolves when at least `count` pushes arrived for `id`; rejects after `timeoutMs`. */
  waitFor(id: string, count: number, timeoutMs?: number): Promise<ReceivedPush[]>;
  /** Most requests in flight at once so far. */
  maxInFlight(): number;
  close(): Promise<void>;
}

interface Sub {
  ecdh: ECDH;
  auth: string;
  serverKey: string;
  script: ScriptedResponse[];
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl. */
export function makeCertificate(): { key: string; cert: string } {
  const dir = tempDir('dg-push-cert-');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function verifyVapid(authorization: string | undefined, sub: Sub, origin: string): Promise<{ jwt: ReceivedPush['jwt']; error: string | null; status: number }> {
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(authorization ?? '');
  if (m === null) return { jwt: {}, error: 'no vapid authorization', status: 401 };
  const [, token = '', k = ''] = m;
  if (k !== sub.serverKey) return { jwt: {}, error: 'k is not the applicationServerKey of the subscription', status: 403 };
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) return { jwt: {}, error: 'k is not a P-256 public key', status: 401 };
  try {
    if (decodeProtectedHeader(token).alg !== 'ES256') return { jwt: {}, error: 'alg is not ES256', status: 401 };
    const key = await importJWK({ kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') }, 'ES256');
    const { payload } = await jwtVerify(token, key, { algorithms: ['ES256'], audience: origin, requiredClaims: ['exp', 'sub'] });
    const jwt = { aud: payload.aud, exp: payload.exp, sub: payload.sub };
    if ((payload.exp ?? 0) > Date.now() / 1000 + 24 * 3600 + 60) return { jwt, error: 'exp more than 24 h away', status: 401 };
    return { jwt, error: null, status: 201 };
  } catch (err) {
    return { jwt: {}, error: `vapid jwt: ${(err as Error).message}`, status: 401 };
  }
}

export async function startPushReceiver(): Promise<PushReceiver> {
  const { key, cert } = makeCertificate();
  const subs = new Map<string, Sub>();
  const log: ReceivedPush[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let origin = '';

  const server = https.createServer({ key, cert }, (req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on('close', () => inFlight--);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 8192) chunks.push(c);
    });
    req.on('end', () => {
      void (async () => {
        const id = /^\/push\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '')?.[1] ?? '';
        const sub = subs.get(id);
        if (req.method !== 'POST' || sub === undefined) {
          res.writeHead(404).end();
          return;
        }
        const rec: ReceivedPush = {
          id,
          at: Date.now(),
          status: 201,
          error: null,
          headers: {
            ttl: header(req.headers.ttl),
            urgency: header(req.headers.urgency),
            topic: header(req.headers.topic),
            contentEncoding: header(req.headers['content-encoding']),
          },
          jwt: {},
          payload: undefined,
          bodyBytes: size,
          plainBytes: null,
        };
        const v = await verifyVapid(req.headers.authorization, sub, origin);
        rec.jwt = v.jwt;
        rec.error = v.error;
        rec.status = v.status;
        if (rec.error === null && size > 4096) [rec.error, rec.status] = ['body over 4096 bytes', 413];
        if (rec.error === null && rec.headers.contentEncoding !== 'aes128gcm') [rec.error, rec.status] = ['content-encoding is not aes128gcm', 400];
        if (rec.error === null) {
          try {
            const plain = ece.decrypt(Buffer.concat(chunks), { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
            rec.plainBytes = plain.length;
            rec.payload = JSON.parse(plain.toString('utf8'));
          } catch (err) {
            [rec.error, rec.status] = [`decrypt: ${(err as Error).message}`, 400];
          }
        }
        const scripted = rec.error === null ? sub.script.shift() : undefined;
        if (scripted !== undefined) {
          rec.status = scripted.status;
          if (scripted.delayMs !== undefined) await new Promise((r) => setTimeout(r, scripted.delayMs));
        }
        log.push(rec);
        const headers: Record<string, string> = {};
        if (scripted?.retryAfter !== undefined) headers['retry-after'] = scripted.retryAfter;
        if (rec.status === 201) headers.location = `${origin}/message/${randomBytes(8).toString('hex')}`;
        res.writeHead(rec.status, headers).end();
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  origin = `https://127.0.0.1:${port}`;
  const agent = new https.Agent({ ca: cert, keepAlive: true });

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  after(close);

  return {
    origin,
    hosts: [`127.0.0.1:${port}`, `localhost:${port}`],
    agent,
    subscribe(applicationServerKey) {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const id = randomBytes(12).toString('base64url');
      const auth = randomBytes(16).toString('base64url');
      subs.set(id, { ecdh, auth, serverKey: applicationServerKey, script: [] });
      return { id, endpoint: `${origin}/push/${id}`, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth } };
    },
    script(id, ...responses) {
      const sub = subs.get(id);
      if (sub === undefined) throw new Error(`no subscription ${id}`);
      sub.script.push(...responses);
    },
    received(id) {
      return id === undefined ? [...log] : log.filter((r) => r.id === id);
    },
    async waitFor(id, count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = log.filter((r) => r.id === id);
        if (got.length >= count) return got;
        if (Date.now() > deadline) throw new Error(`push receiver: ${got.length} of ${count} pushes for ${id} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    maxInFlight: () => maxInFlight,
    close,
  };
}
