/**
 * Token benchmark: what the tail hot path pays to check a credential. The project verifies
 * an HMAC access token (HS256, key ring with `kid`; src/protocol/token.ts); the peer is the
 * common alternative of verifying an EdDSA (Ed25519) JWT with jose. Same claims, same
 * process, interleaved repetitions; signing is measured the same way.
 */
import { generateKeyPairSync, randomBytes, verify as edVerify } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { newJti, signToken, verifyToken, type AccessClaims, type KeyRing } from '../src/protocol/token.js';
import { row, type BenchOptions, type BenchResult } from './lib/result.js';
import { fmt } from './lib/stats.js';

/** Runs `op` repeatedly for about `ms` and returns operations per second. */
async function opsPerSec(ms: number, op: () => unknown, isAsync: boolean): Promise<number> {
  const end = performance.now() + ms;
  let n = 0;
  const start = performance.now();
  let now = start;
  // Check the clock every 64 operations so reading it costs little next to the operation.
  while (now < end) {
    if (isAsync) for (let i = 0; i < 64; i++) await op();
    else for (let i = 0; i < 64; i++) op();
    n += 64;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const t0 = performance.now();
  const reps = opts.quick ? 3 : 5;
  const ms = opts.quick ? 300 : 1500;
  const ring: KeyRing = { active: 'h-bench', keys: new Map([['h-bench', randomBytes(32)], ['h-old', randomBytes(32)]]) };
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const now = Math.floor(Date.now() / 1000);
  const claims: AccessClaims = {
    typ: 'access',
    sub: 'u_8d1f3a2b9c',
    dev: randomBytes(32).toString('base64url'),
    fam: 'f_3b9a7c1d2e',
    iat: now,
    exp: now + 900,
    jti: newJti(),
  };
  const hmacToken = signToken(ring, claims);
  const jwsToken = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'EdDSA', kid: 'a-bench' }).sign(privateKey);

  // Both must actually verify, or the comparison means nothing.
  const v = verifyToken<AccessClaims>(ring, hmacToken, 'access');
  if (!v.ok || v.claims.sub !== claims.sub) throw new Error('HMAC token did not verify');
  const j = await jwtVerify(jwsToken, publicKey, { algorithms: ['EdDSA'] });
  if (j.payload.sub !== claims.sub) throw new Error('EdDSA token did not verify');

  const verifyHmac = () => {
    const r = verifyToken<AccessClaims>(ring, hmacToken, 'access');
    if (!r.ok) throw new Error(r.reason);
  };
  const verifyJws = () => jwtVerify(jwsToken, publicKey, { algorithms: ['EdDSA'] });
  // The floor of any Ed25519 scheme: one synchronous node:crypto verify of the same JWS,
  // with no JSON or JOSE handling at all.
  const dot = jwsToken.lastIndexOf('.');
  const signingInput = Buffer.from(jwsToken.slice(0, dot), 'ascii');
  const signature = Buffer.from(jwsToken.slice(dot + 1), 'base64url');
  if (!edVerify(null, signingInput, publicKey, signature)) throw new Error('raw Ed25519 verify failed');
  const verifyRaw = () => {
    if (!edVerify(null, signingInput, publicKey, signature)) throw new Error('raw Ed25519 verify failed');
  };
  const signHmac = () => signToken(ring, { ...claims, jti: newJti() });
  const signJws = () => new SignJWT({ ...claims, jti: newJti() }).setProtectedHeader({ alg: 'EdDSA', kid: 'a-bench' }).sign(privateKey);

  // Warm-up so both sides run optimized code.
  await opsPerSec(ms / 2, verifyHmac, false);
  await opsPerSec(ms / 2, verifyJws, true);
  await opsPerSec(ms / 2, verifyRaw, false);
  await opsPerSec(ms / 2, signHmac, false);
  await opsPerSec(ms / 2, signJws, true);

  const vH: number[] = [];
  const vJ: number[] = [];
  const sH: number[] = [];
  const sJ: number[] = [];
  const vH2: number[] = [];
  const vR: number[] = [];
  for (let r = 0; r < reps; r++) {
    // Alternate which side goes first, so neither always follows the other.
    if (r % 2 === 0) {
      vH.push(await opsPerSec(ms, verifyHmac, false));
      vJ.push(await opsPerSec(ms, verifyJws, true));
    } else {
      vJ.push(await opsPerSec(ms, verifyJws, true));
      vH.push(await opsPerSec(ms, verifyHmac, false));
    }
    vR.push(await opsPerSec(ms, verifyRaw, false));
    vH2.push(await opsPerSec(ms, verifyHmac, false));
    sH.push(await opsPerSec(ms, signHmac, false));
    sJ.push(await opsPerSec(ms, signJws, true));
    opts.log(`token rep ${r + 1}/${reps}: verify ${fmt(vH.at(-1) ?? 0)} vs ${fmt(vJ.at(-1) ?? 0)} ops/s; sign ${fmt(sH.at(-1) ?? 0)} vs ${fmt(sJ.at(-1) ?? 0)} ops/s`);
  }

  const faster = { text: '> 1', test: (x: number) => x > 1 };
  return {
    name: 'token',
    title: 'Access-token verification and signing',
    project: 'HMAC JWT (HS256, key ring), src/protocol/token.ts',
    peer: 'EdDSA (Ed25519) JWT with jose jwtVerify / SignJWT',
    quick: opts.quick,
    params: { reps, msPerRep: ms, tokenBytesHmac: hmacToken.length, tokenBytesEdDSA: jwsToken.length },
    rows: [
      row('verify', 'ops/s', 'higher', vH, vJ, faster),
      row('sign', 'ops/s', 'higher', sH, sJ, faster),
      row('verify time', 'µs/op', 'lower', vH.map((x) => 1e6 / x), vJ.map((x) => 1e6 / x)),
      row('verify vs raw Ed25519 (node:crypto)', 'ops/s', 'higher', vH2, vR, faster),
    ],
    notes: [
      'Single thread, one token verified repeatedly; jose is awaited per call (its API is async), which is how a server would call it.',
      'Both verifiers check signature, kid/alg and expiry; ours also checks typ.',
      'jose 6 verifies through WebCrypto (crypto.subtle, asynchronous); the last row pairs our full verify with a bare synchronous node:crypto Ed25519 signature check of the same token, the floor for any Ed25519 scheme.',
    ],
    seconds: (performance.now() - t0) / 1000,
  };
}
