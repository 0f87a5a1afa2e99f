/**
 * Checking a user's published key chain (GET /auth/v1/certificates): versions 1, 2, … with
 * no hole; each version signed by its own key (proof of possession) and, from version 2 on,
 * by the version before. The chain is anchored in version 1, which the SDK pins the first
 * time it sees a user (trust on first use, pins.ts); from the pin every later version is
 * proven by signatures, so the server cannot substitute a key without breaking the chain.
 */
import { DgError } from '../../protocol/errors.js';
import { userKeyStatement } from '../../protocol/key-statements.js';
import { b64urlDecode, utf8 } from '../bytes.js';
import { verifyEd25519 } from '../crypto/jws.js';

export interface UserKeyLink {
  version: number;
  publicKey: string;
  sig: string;
  prevSig: string | null;
}

function sigOk(publicKey: string, statement: Uint8Array, sig: string | null): boolean {
  const s = sig === null ? null : b64urlDecode(sig);
  return s !== null && verifyEd25519(publicKey, statement, s);
}

/** The chain, checked; FORBIDDEN naming the first broken link otherwise. */
export function verifyUserKeyChain(user: string, links: UserKeyLink[]): UserKeyLink[] {
  const sorted = [...links].sort((a, b) => a.version - b.version);
  sorted.forEach((k, i) => {
    if (k.version !== i + 1) throw new DgError('FORBIDDEN', `user ${user}: key chain has a hole at version ${i + 1}`);
    const statement = utf8(userKeyStatement(user, k.version, k.publicKey));
    if (!sigOk(k.publicKey, statement, k.sig)) throw new DgError('FORBIDDEN', `user ${user}: key version ${k.version} is not signed by its key`);
    const prev = sorted[i - 1];
    if (prev !== undefined && !sigOk(prev.publicKey, statement, k.prevSig)) {
      throw new DgError('FORBIDDEN', `user ${user}: key version ${k.version} is not signed by version ${prev.version}`);
    }
  });
  return sorted;
}
