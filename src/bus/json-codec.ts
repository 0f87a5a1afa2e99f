import { DgError } from '../protocol/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../protocol/json-depth.js';

/**
 * The strict JSON codec of the NATS bus. `JSON.stringify` alone quietly turns values that
 * are not JSON into something else (a Map into `{}`, NaN into `null`, an undefined field
 * into nothing, a Uint8Array into an object of indices); the in-process bus would hand the
 * same value over untouched, so the two buses would disagree. Encoding therefore refuses
 * anything that would not survive the trip: only null, booleans, finite numbers, strings,
 * arrays and plain objects (after `toJSON`, so a Date or a DgError encodes as it always
 * does in JSON). Negative zero is the one number JSON cannot tell apart: it arrives as 0.
 *
 * Decoding is just as strict: the payload must be valid UTF-8 and one JSON text, nested at
 * most MAX_JSON_DEPTH levels (no bus message nests deeper than a few). Anyone who can reach
 * NATS can send one: parsing 1 MiB of nested brackets holds the event loop about 60 times
 * longer than a flat message of that size, and the value would overflow the stack of any
 * code that walks it recursively, so it is refused before it is parsed.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function check(this: unknown, key: string, value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      throw new DgError('BAD_REQUEST', `bus message is not JSON: non-finite number at ${describe(key)}`);
    case 'object': {
      if (value === null || Array.isArray(value)) return value;
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto === Object.prototype || proto === null) return value;
      throw new DgError('BAD_REQUEST', `bus message is not JSON: ${value.constructor?.name ?? 'object'} at ${describe(key)}`);
    }
    default:
      // undefined, function, symbol, bigint
      throw new DgError('BAD_REQUEST', `bus message is not JSON: ${typeof value} at ${describe(key)}`);
  }
}

function describe(key: string): string {
  return key === '' ? 'top level' : `key ${JSON.stringify(key)}`;
}

/** The UTF-8 JSON bytes of `value`; throws DgError BAD_REQUEST if `value` is not JSON. */
export function encodeJson(value: unknown): Uint8Array {
  let text: string;
  try {
    text = JSON.stringify(value, check);
  } catch (err) {
    if (err instanceof DgError) throw err;
    // A cycle (TypeError) or a throwing toJSON.
    throw new DgError('BAD_REQUEST', 'bus message is not JSON', { cause: err });
  }
  return encoder.encode(text);
}

/** The value of a UTF-8 JSON payload; throws DgError BAD_REQUEST on anything else. */
export function decodeJson(bytes: Uint8Array): unknown {
  if (nestsDeeperThan(bytes)) throw new DgError('BAD_REQUEST', `bus message nests deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(decoder.decode(bytes)) as unknown;
  } catch (err) {
    throw new DgError('BAD_REQUEST', 'bus message is not JSON', { cause: err });
  }
}
