/**
 * What the SDK puts in envelopes (POST /auth/v1/envelopes): a JSON message, signed by the
 * sending device's Ed25519 key, then sealed with HPKE to the recipient's box key.
 *
 *   data = base64url( HPKE-seal(recipient box key, info "datagrove-envelope-v1",
 *                               aad = from "\n" to, plaintext) )
 *   plaintext = JSON {b: body (a JSON string), s: base64url Ed25519 signature by `from` over
 *                     UTF-8 "datagrove-envelope-v1\n" from "\n" to "\n" b}
 *
 * HPKE base mode hides the body from everyone but the recipient; the signature proves which
 * device wrote it (the server stamps `from`, and a device id is its public key, so the server
 * cannot claim another sender), and binding `to` stops a recipient from replaying a message
 * to another device as if it were meant for it.
 */
import { DgError } from '../../protocol/errors.js';
import { b64urlDecode, b64urlEncode, fromUtf8, utf8 } from '../bytes.js';
import { hpkeOpen, hpkeSeal } from '../crypto/hpke.js';
import { verifyEd25519 } from '../crypto/jws.js';
import type { DeviceKeys } from '../device-keys.js';

const LABEL = 'datagrove-envelope-v1';
/** Site keys per envelope; more are split over several envelopes (each at most ~64 KiB). */
export const MAX_KEYS_PER_ENVELOPE = 400;

export type EnvelopeBody =
  /** The user key's seed, for another device of the same user (after approval). */
  | { t: 'user-key'; user: string; version: number; seed: string }
  /** Keys of a site by epoch; `grant` (a JWS) when this shares the site with the recipient. */
  | { t: 'site-keys'; site: string; keys: { epoch: number; key: string }[]; grant?: string };

function signedText(from: string, to: string, body: string): Uint8Array {
  return utf8(`${LABEL}\n${from}\n${to}\n${body}`);
}

/** Seals `body` from this device to `to` (device id and its box key, base64url). */
export async function sealEnvelope(me: DeviceKeys, to: { device: string; boxKey: string }, body: EnvelopeBody): Promise<string> {
  const box = b64urlDecode(to.boxKey);
  if (box?.length !== 32) throw new DgError('BAD_REQUEST', 'box key: malformed');
  const b = JSON.stringify(body);
  const plaintext = utf8(JSON.stringify({ b, s: b64urlEncode(me.sign(signedText(me.deviceId, to.device, b))) }));
  return b64urlEncode(await hpkeSeal(box, plaintext, utf8(LABEL), utf8(`${me.deviceId}\n${to.device}`)));
}

function parseBody(b: string): EnvelopeBody | null {
  let v: unknown;
  try {
    v = JSON.parse(b);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (o.t === 'user-key') {
    if (typeof o.user !== 'string' || typeof o.seed !== 'string' || typeof o.version !== 'number' || !Number.isSafeInteger(o.version)) return null;
    return { t: 'user-key', user: o.user, version: o.version, seed: o.seed };
  }
  if (o.t === 'site-keys') {
    if (typeof o.site !== 'string' || !Array.isArray(o.keys) || o.keys.length > MAX_KEYS_PER_ENVELOPE) return null;
    const keys: { epoch: number; key: string }[] = [];
    for (const k of o.keys as unknown[]) {
      const e = k as { epoch?: unknown; key?: unknown } | null;
      if (e === null || typeof e !== 'object' || typeof e.epoch !== 'number' || !Number.isSafeInteger(e.epoch) || e.epoch < 1 || typeof e.key !== 'string') return null;
      keys.push({ epoch: e.epoch, key: e.key });
    }
    if (o.grant !== undefined && typeof o.grant !== 'string') return null;
    return { t: 'site-keys', site: o.site, keys, ...(typeof o.grant === 'string' ? { grant: o.grant } : {}) };
  }
  return null;
}

/** Opens an envelope `from` a device to this one; BAD_REQUEST when it does not open, is not signed by `from`, or is malformed. */
export async function openEnvelope(me: DeviceKeys, from: string, data: string): Promise<EnvelopeBody> {
  const sealed = b64urlDecode(data);
  if (sealed === null) throw new DgError('BAD_REQUEST', 'envelope: not base64url');
  const secret = b64urlDecode(me.toJSON().box);
  if (secret === null) throw new DgError('INTERNAL', 'device box key unreadable');
  const plaintext = await hpkeOpen(secret, sealed, utf8(LABEL), utf8(`${from}\n${me.deviceId}`));
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plaintext));
  } catch {
    throw new DgError('BAD_REQUEST', 'envelope: not a Datagrove message');
  }
  // Anyone can seal to a box key: what opens is the sender's to choose (null, a number, …).
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new DgError('BAD_REQUEST', 'envelope: not a Datagrove message');
  const outer = parsed as { b?: unknown; s?: unknown };
  const sig = typeof outer.s === 'string' ? b64urlDecode(outer.s) : null;
  if (typeof outer.b !== 'string' || sig === null) throw new DgError('BAD_REQUEST', 'envelope: not a Datagrove message');
  if (!verifyEd25519(from, signedText(from, me.deviceId, outer.b), sig)) throw new DgError('BAD_REQUEST', 'envelope: not signed by its sender');
  const body = parseBody(outer.b);
  if (body === null) throw new DgError('BAD_REQUEST', 'envelope: unknown message');
  return body;
}
