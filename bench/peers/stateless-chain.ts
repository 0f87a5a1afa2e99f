/**
 * The stateless way to check a delegation chain (as capability-token schemes do): the
 * verifier is handed every link and checks each one's EdDSA signature with jose under the
 * key its `iss` names (a device id is the raw Ed25519 public key), and that each link's
 * `prf` is the SHA-256 of the next. No store. Used by the auth peer and, in process, by the
 * auth benchmark. Throws on the first bad link.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { jwtVerify } from 'jose';

export async function verifyStatelessChain(links: readonly string[]): Promise<void> {
  for (let i = 0; i < links.length; i++) {
    const jws = links[i] ?? '';
    const claims = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown; prf?: unknown };
    if (typeof claims.iss !== 'string') throw new Error('chain: link without iss');
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: claims.iss }, format: 'jwk' });
    await jwtVerify(jws, key, { algorithms: ['EdDSA'] });
    const next = links[i + 1];
    const want = next === undefined ? undefined : createHash('sha256').update(next, 'ascii').digest('base64url');
    if (claims.prf !== want) throw new Error(`chain: link ${i + 1} does not prove with the next`);
  }
}
