/**
 * Auth API calls for load: the same challenge → signature → signup/login flow as
 * bench/lib/auth-client.ts, over bench/lib/http-json.ts so each request can come from a
 * chosen loopback address (the server limits credential requests per client address and
 * per device; a load of many clients is many addresses and many devices). Grants for
 * delegation chains of a given depth are built here too.
 */
import { createHash, sign } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Device } from './auth-client.js';
import type { JsonHttp } from './http-json.js';

export interface Signed {
  user: string;
  device: Device;
  access: string;
}

const PREFIX = 'datagrove-auth-v1:';

export function signNonce(device: Device, nonce: string): string {
  return sign(null, Buffer.from(PREFIX + nonce, 'utf8'), device.privateKey).toString('base64url');
}

/** Challenge, signature and POST {prefix}/signup or /login; resolves with the access token. */
export async function proveAndEnter(http: JsonHttp, prefix: string, route: 'signup' | 'login', device: Device, from?: string): Promise<Signed> {
  const opts = from === undefined ? {} : { from };
  const { nonce } = await http.ok<{ nonce: string }>(`${prefix}/challenge`, { device: device.id }, opts);
  const sig = signNonce(device, nonce);
  const body = route === 'signup' ? { device: device.id, boxKey: device.boxKey, nonce, sig } : { device: device.id, nonce, sig };
  const r = await http.ok<{ user?: string; access?: string }>(`${prefix}/${route}`, body, opts);
  return { user: r.user ?? '', device, access: r.access ?? '' };
}

export function grantHash(jws: string): string {
  return createHash('sha256').update(jws, 'ascii').digest('base64url');
}

/**
 * A delegation chain of `depth` grants on `site`: grant 1 is issued by the owner's device to
 * users[0] (admin, every log, no proof); grant k is issued by users[k-2]'s device to
 * users[k-1] with `prf` = hash of grant k-1. Returned leaf first … root last.
 */
export async function buildChain(owner: Signed, users: Signed[], site: string, depth: number): Promise<string[]> {
  const chain: string[] = [];
  let issuer = owner;
  let prf: string | undefined;
  for (let k = 0; k < depth; k++) {
    const sub = users[k];
    if (sub === undefined) throw new Error(`buildChain: need ${depth} users`);
    const jws = await new SignJWT({ site, logs: ['*'], rights: ['admin'], ...(prf === undefined ? {} : { prf }) })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'dg-grant+jwt' })
      .setIssuer(issuer.device.id)
      .setSubject(`user:${sub.user}`)
      .setIssuedAt()
      .sign(issuer.device.privateKey);
    chain.unshift(jws);
    prf = grantHash(jws);
    issuer = sub;
  }
  return chain;
}
