/**
 * The JSON of a signed object's header or payload (a compact JWS part), read strictly. A
 * signature vouches for bytes, and JSON with a key given twice means different things to
 * different readers (the last one wins in JavaScript, the first in others): such a part is
 * refused, so every verifier reads the same claims from the same signature.
 */

import { repeatedKey } from './json-keys.js';

export type JwsJson = { ok: true; value: unknown } | { ok: false; problem: string };

/** Decodes a base64url JWS part as JSON with no key repeated in any object. */
export function decodeJwsJson(part: string): JwsJson {
  const text = Buffer.from(part, 'base64url').toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return { ok: false, problem: 'not JSON' };
  }
  const twice = repeatedKey(text);
  return twice === null ? { ok: true, value } : { ok: false, problem: `the key ${JSON.stringify(twice)} is given twice` };
}
