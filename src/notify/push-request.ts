/**
 * One Web Push request (PROTOCOL.md "Notify API"): web-push encrypts the payload (RFC 8291,
 * aes128gcm) and signs the VAPID JWT (RFC 8292, ES256); this file posts it with node:https,
 * so that the timeout, the agent and the size of what is read back stay in our hands.
 * Redirects are not followed. Nothing here throws: every end is an outcome. Plaintexts are
 * padded to one size.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import webpush from 'web-push';
import { parseRetryAfter } from './retry-after.js';
import type { PushKeys } from './store.js';
import type { VapidKeys } from './vapid.js';

/** The plaintext of every push. */
export interface PushPayload {
  site: string;
  log: string;
  length: number;
}

export interface PushRequest {
  endpoint: string;
  keys: PushKeys;
  device: string;
  payload: PushPayload;
}

export interface PushSettings {
  vapid: VapidKeys;
  subject: string;
  /** Seconds the push service keeps an undelivered push. */
  ttlSec: number;
  timeoutMs: number;
  /** Agent for the TLS connections; undefined uses Node's global agent and the system CAs. */
  agent?: https.Agent;
}

/**
 * `status` is the HTTP status as text, `network` for a connection failure or timeout, and
 * `invalid` when the request could not be built (bad subscription keys).
 */
export type PushOutcome =
  | { kind: 'sent'; status: string }
  | { kind: 'gone'; status: string }
  | { kind: 'retry'; status: string; retryAfterMs: number | null }
  | { kind: 'failed'; status: string };

/**
 * Every push's plaintext is padded to this many bytes with trailing spaces (still JSON),
 * so the size of the encrypted body does not tell the site's or log's name length, nor
 * the length's digits, to the push service or anyone on the path. The longest payload
 * (a 64-character site, a 128-character log, a 16-digit length) is 238 bytes.
 */
export const PUSH_PLAINTEXT_BYTES = 256;

/** The payload as it is encrypted: JSON padded to PUSH_PLAINTEXT_BYTES. */
export function pushPlaintext(payload: PushPayload): string {
  const json = JSON.stringify(payload);
  return json.length >= PUSH_PLAINTEXT_BYTES ? json : json.padEnd(PUSH_PLAINTEXT_BYTES, ' ');
}

/** Bytes of a push service's response that are read before the socket is dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** The `Topic` header: the first 32 chars of base64url(SHA-256(device + "/" + site)). */
export function pushTopic(device: string, site: string): string {
  return createHash('sha256').update(`${device}/${site}`).digest('base64url').slice(0, 32);
}

export function classifyStatus(status: number, retryAfter: string | string[] | undefined, now: number): PushOutcome {
  const s = String(status);
  if (status >= 200 && status < 300) return { kind: 'sent', status: s };
  if (status === 404 || status === 410) return { kind: 'gone', status: s };
  if (status === 429 || (status >= 500 && status < 600)) return { kind: 'retry', status: s, retryAfterMs: parseRetryAfter(retryAfter, now) };
  return { kind: 'failed', status: s };
}

export function sendPush(req: PushRequest, settings: PushSettings, signal: AbortSignal): Promise<PushOutcome> {
  let details: ReturnType<typeof webpush.generateRequestDetails>;
  try {
    // The endpoint as WHATWG URL serializes it: web-push takes the VAPID `aud` from the
    // legacy url.parse, which keeps an explicit :443 or a port's leading zeros, and a push
    // service refuses an `aud` that is not its origin (RFC 8292 §2).
    const endpoint = new URL(req.endpoint).href;
    details = webpush.generateRequestDetails({ endpoint, keys: req.keys }, pushPlaintext(req.payload), {
      vapidDetails: { subject: settings.subject, publicKey: settings.vapid.publicKey, privateKey: settings.vapid.privateKey },
      TTL: settings.ttlSec,
      urgency: 'normal',
      topic: pushTopic(req.device, req.payload.site),
      contentEncoding: 'aes128gcm',
    });
  } catch {
    return Promise.resolve({ kind: 'failed', status: 'invalid' });
  }
  return new Promise<PushOutcome>((resolve) => {
    // The outcome is known from the status line, but the promise settles only when the
    // exchange has ended (body read, cut at MAX_RESPONSE_BYTES, or the deadline): until then
    // the request holds its slot, so `maxConcurrent` bounds the connections open at once
    // even against a push service that answers and then never finishes its body.
    let outcome: PushOutcome | null = null;
    let http: ReturnType<typeof https.request>;
    try {
      http = https.request(details.endpoint, { method: 'POST', headers: details.headers, agent: settings.agent, signal }, (res) => {
        outcome = classifyStatus(res.statusCode ?? 0, res.headers['retry-after'], Date.now());
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) res.destroy();
        });
        res.on('error', () => undefined);
        res.on('close', () => resolve(outcome ?? { kind: 'retry', status: 'network', retryAfterMs: null }));
      });
    } catch {
      resolve({ kind: 'failed', status: 'invalid' });
      return;
    }
    // One deadline for the whole exchange, response body included: a push service that
    // trickles bytes holds a slot for at most this long.
    const timer = setTimeout(() => http.destroy(new Error('push request timed out')), settings.timeoutMs);
    http.on('close', () => {
      clearTimeout(timer);
      resolve(outcome ?? { kind: 'retry', status: 'network', retryAfterMs: null });
    });
    // An error after the status line (the deadline, a cut body) keeps the status's outcome.
    http.on('error', () => resolve(outcome ?? { kind: 'retry', status: 'network', retryAfterMs: null }));
    http.end(details.body ?? undefined);
  });
}
