/**
 * Signed statements of the key directory, defined once for the server (which checks them)
 * and the client SDK (which makes and checks them). Free of dependencies, so the browser
 * bundle of the SDK can import it.
 */

/** The JWS `typ` of a device certificate. */
export const DEVICE_CERT_TYP = 'dg-device+jwt';

/** The most user key versions a user may have. */
export const MAX_USER_KEY_VERSION = 64;

/**
 * The UTF-8 statement that version `version` of `user`'s key is `publicKey` (base64url).
 * The new key signs it (proof of possession) and, from version 2 on, the previous version
 * signs it too, so a client that knows any earlier version can follow the chain to the
 * newest.
 */
export function userKeyStatement(user: string, version: number, publicKey: string): string {
  return `datagrove-user-key-v1:${user}:${version}:${publicKey}`;
}

/**
 * The UTF-8 statement that `device`'s box key is `boxKey` (both base64url). The device's own
 * signing key signs it (`boxSig`), so a device about to seal a secret to the box key can
 * tell the device's key from one the server put in its place.
 */
export function boxKeyStatement(device: string, boxKey: string): string {
  return `datagrove-box-key-v1:${device}:${boxKey}`;
}
