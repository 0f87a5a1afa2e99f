/**
 * Just enough of the auth API (PROTOCOL.md "Auth API") to set up benchmark users the way a
 * real client does: real Ed25519 device keys, challenge, signup, sites, and grants
 * (EdDSA compact JWS) declared by the owner and joined by the grantee.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';

export interface Device {
  id: string;
  boxKey: string;
  privateKey: KeyObject;
}

export interface Session {
  user: string;
  device: Device;
  access: string;
}

const MAX_RETRIES = 30;

export function newDevice(): Device {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const box = generateKeyPairSync('x25519');
  return {
    id: String(publicKey.export({ format: 'jwk' }).x),
    boxKey: String(box.publicKey.export({ format: 'jwk' }).x),
    privateKey,
  };
}

/** POSTs JSON; waits out 429 (retry-after) so set-up never trips the server's rate limits. */
export async function post<T>(base: string, path: string, body: unknown, access?: string): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (access !== undefined) headers.authorization = `Bearer ${access}`;
    const res = await fetch(`${base}/auth/v1${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status === 429 && attempt < MAX_RETRIES) {
      const wait = Number(res.headers.get('retry-after') ?? '1');
      await new Promise((r) => setTimeout(r, Math.min(60, Math.max(0.1, wait)) * 1000));
      continue;
    }
    if (!res.ok) throw new Error(`POST ${path} → ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }
}

export async function signup(base: string, device: Device = newDevice()): Promise<Session> {
  const { nonce } = await post<{ nonce: string }>(base, '/challenge', { device: device.id });
  const sig = sign(null, Buffer.from(`datagrove-auth-v1:${nonce}`, 'utf8'), device.privateKey).toString('base64url');
  const r = await post<{ user: string; access: string }>(base, '/signup', { device: device.id, boxKey: device.boxKey, nonce, sig });
  return { user: r.user, device, access: r.access };
}

export async function createSite(base: string, owner: Session): Promise<string> {
  const r = await post<{ site: string }>(base, '/sites', {}, owner.access);
  return r.site;
}

/** The owner grants `rights` on every log of `site` to `user`; the grantee joins with it. */
export async function grantAndJoin(base: string, owner: Session, site: string, grantee: Session, rights: string[]): Promise<void> {
  const grant = await new SignJWT({ site, logs: ['*'], rights })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'dg-grant+jwt' })
    .setIssuer(owner.device.id)
    .setSubject(`user:${grantee.user}`)
    .setIssuedAt()
    .sign(owner.device.privateKey);
  await post(base, '/declare', { grant }, owner.access);
  await post(base, '/join', { site, grant }, grantee.access);
}
