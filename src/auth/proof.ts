/**
 * Proof that a caller holds a device key: an Ed25519 signature over a challenge nonce that
 * was issued to that device. The signature is checked first (cheap, no state); the nonce is
 * consumed only after, atomically, so of two concurrent uses one fails. Every failure is the
 * same UNAUTHORIZED on the wire.
 *
 * Also the device's signature of its box key (`boxSig`), checked before it is stored: a
 * malformed request, so BAD_REQUEST.
 */
import { DgError } from '../protocol/errors.js';
import { boxKeyStatement } from '../protocol/key-statements.js';
import type { AuthContext } from './context.js';
import { challengeMessage, verifyDeviceSignature } from './crypto.js';

export interface DeviceProof {
  device: string;
  nonce: string;
  sig: string;
}

export function checkDeviceSignature(proof: DeviceProof, count: (outcome: string) => void): void {
  if (!verifyDeviceSignature(proof.device, challengeMessage(proof.nonce), proof.sig)) {
    count('bad-signature');
    throw new DgError('UNAUTHORIZED', 'sig: does not verify with the device key');
  }
}

export async function consumeNonce(ctx: AuthContext, proof: DeviceProof, count: (outcome: string) => void): Promise<void> {
  if (!(await ctx.store.takeNonce(proof.nonce, proof.device, ctx.now()))) {
    count('bad-nonce');
    throw new DgError('UNAUTHORIZED', 'nonce: unknown, already used, expired, or issued to another device');
  }
}

/** Checks the signature, then consumes the nonce. */
export async function proveDevice(ctx: AuthContext, proof: DeviceProof, count: (outcome: string) => void): Promise<void> {
  checkDeviceSignature(proof, count);
  await consumeNonce(ctx, proof, count);
}

/** Throws BAD_REQUEST unless `boxSig` is `device`'s signature of its box key statement for `boxKey`. */
export function checkBoxSig(device: string, boxKey: string, boxSig: string): void {
  if (!verifyDeviceSignature(device, Buffer.from(boxKeyStatement(device, boxKey), 'utf8'), boxSig)) {
    throw new DgError('BAD_REQUEST', 'boxSig: does not verify with the device key over its box key statement');
  }
}
