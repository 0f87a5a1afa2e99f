/**
 * Who may read /metrics: everyone while no token is configured (the operator blocks the
 * path at the proxy), else only a request whose `authorization` is `Bearer <token>`. The
 * comparison takes the same time whatever the guess (both sides hashed to 32 bytes first,
 * so not even the token's length shows).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function metricsGate(token: string): (authorization: string | undefined) => boolean {
  if (token === '') return () => true;
  const expected = digest(token);
  return (authorization) => {
    if (typeof authorization !== 'string') return false;
    const m = /^Bearer +(\S+) *$/i.exec(authorization);
    return m !== null && timingSafeEqual(digest(m[1] as string), expected);
  };
}
