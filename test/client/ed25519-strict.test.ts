/**
 * The SDK's Ed25519 checks are strict (RFC 8032): a small-order device key, under which a
 * signature anyone can make verifies for every message, verifies nothing. Such a "device"
 * could otherwise carry a box key signature or a JWS that no one had to hold a key to make.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceKeys, verifyBoxSig, verifyDeviceSignature } from '../../src/client/index.js';
import { verifyEd25519 } from '../../src/client/crypto/jws.js';

const identity = new Uint8Array(32);
identity[0] = 1; // the identity point (y = 1)
const identityId = Buffer.from(identity).toString('base64url');
const trivial = new Uint8Array(64);
trivial[0] = 1; // R = identity, S = 0

test('a small-order device key verifies no signature', () => {
  const msg = new TextEncoder().encode('datagrove-auth-v1:n0nce');
  assert.equal(verifyDeviceSignature(identityId, msg, trivial), false);
  assert.equal(verifyEd25519(identityId, msg, trivial), false);
  const box = DeviceKeys.generate().boxKey;
  assert.equal(verifyBoxSig(identityId, box, Buffer.from(trivial).toString('base64url')), false);
  // A real key still verifies its own signatures.
  const keys = DeviceKeys.generate();
  assert.equal(verifyDeviceSignature(keys.deviceId, msg, keys.sign(msg)), true);
  assert.equal(verifyBoxSig(keys.deviceId, keys.boxKey, keys.boxSig), true);
});
