/**
 * The auth peer, run as a measured child of the bench like the real server: bare fastify 5
 * routes that do only the cryptographic core of each auth operation, the common way, with no
 * store, no rate limits and no metrics. It is the floor for the same jobs on the same HTTP
 * framework:
 * - POST /challenge {device} → {nonce}: a random nonce kept in memory for that device;
 * - POST /login {device, nonce, sig} → {ok}: takes the nonce and checks one Ed25519
 *   signature with node:crypto (the device id is the raw public key);
 * - POST /lease {site, log} with a Bearer HS256 JWT → {token}: jose verifies the bearer and
 *   signs a lease JWT with the same claims as the project's;
 * - POST /chain {chain: [jws leaf … root]} → {ok, depth}: the stateless way to check a
 *   delegation chain (./stateless-chain.ts): every link's EdDSA signature verified with
 *   jose, every `prf` checked to be the hash of the next link.
 * Usage (forked by bench/lib/child.ts): fastify-auth.ts HMAC_SECRET_B64URL
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import Fastify from 'fastify';
import { jwtVerify, SignJWT } from 'jose';
import { reportFailure, serveControl } from '../lib/child-control.js';
import { verifyStatelessChain } from './stateless-chain.js';

const PREFIX = 'datagrove-auth-v1:';
const MAX_NONCES = 100_000;
const NONCE_MS = 5 * 60_000;

interface Nonce {
  device: string;
  expires: number;
}

function edKey(device: string) {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: device }, format: 'jwk' });
}

async function main(): Promise<void> {
  const secretArg = process.argv[2];
  if (secretArg === undefined) throw new Error('usage: fastify-auth.ts HMAC_SECRET_B64URL');
  const secret = Buffer.from(secretArg, 'base64url');
  const nonces = new Map<string, Nonce>();
  const app = Fastify({ logger: false });

  app.post<{ Body: { device?: unknown } }>('/challenge', async (req, reply) => {
    const device = req.body.device;
    if (typeof device !== 'string') return reply.code(400).send({ error: 'device' });
    if (nonces.size >= MAX_NONCES) nonces.delete(nonces.keys().next().value as string);
    const nonce = randomBytes(32).toString('base64url');
    nonces.set(nonce, { device, expires: Date.now() + NONCE_MS });
    return { nonce, expiresIn: NONCE_MS / 1000 };
  });

  app.post<{ Body: { device?: unknown; nonce?: unknown; sig?: unknown } }>('/login', async (req, reply) => {
    const { device, nonce, sig } = req.body;
    if (typeof device !== 'string' || typeof nonce !== 'string' || typeof sig !== 'string') return reply.code(400).send({ error: 'body' });
    const n = nonces.get(nonce);
    nonces.delete(nonce);
    if (n === undefined || n.device !== device || n.expires < Date.now()) return reply.code(401).send({ error: 'nonce' });
    if (!verify(null, Buffer.from(PREFIX + nonce, 'utf8'), edKey(device), Buffer.from(sig, 'base64url'))) return reply.code(401).send({ error: 'sig' });
    return { ok: true };
  });

  app.post<{ Body: { site?: unknown; log?: unknown } }>('/lease', async (req, reply) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const { site, log } = req.body;
    if (m === null || typeof site !== 'string' || typeof log !== 'string') return reply.code(400).send({ error: 'body' });
    const { payload } = await jwtVerify(m[1] ?? '', secret, { algorithms: ['HS256'] });
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ typ: 'lease', dev: payload.dev, site, log, rights: ['read', 'write', 'admin'] })
      .setProtectedHeader({ alg: 'HS256', kid: 'peer' })
      .setSubject(String(payload.sub))
      .setIssuedAt(now)
      .setExpirationTime(now + 900)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(secret);
    return { token, expiresIn: 900 };
  });

  app.post<{ Body: { chain?: unknown } }>('/chain', async (req, reply) => {
    const chain = req.body.chain;
    if (!Array.isArray(chain) || chain.length < 1 || chain.length > 8 || !chain.every((j) => typeof j === 'string')) return reply.code(400).send({ error: 'chain' });
    try {
      await verifyStatelessChain(chain as string[]);
    } catch {
      return reply.code(403).send({ error: 'chain' });
    }
    return { ok: true, depth: chain.length };
  });

  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  serveControl(Number(new URL(address).port), () => app.close());
}

main().catch(reportFailure);
