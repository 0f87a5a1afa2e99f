/**
 * Envelopes, a server-relayed mailbox between devices (e.g. a user key sealed to a new
 * device's box key): POST /envelopes {to, data} → 201 {id}; GET /envelopes → the caller
 * device's envelopes, oldest first; DELETE /envelopes/:id → 204 (its recipient only).
 * `data` is an opaque string: base64url of at most 64 KiB of bytes, or any other string of at
 * most 64 KiB in UTF-8. Each envelope expires after
 * ENVELOPE_TTL_MS. The recipient's live sessions get an `envelope` event.
 *
 * A device holds at most MAX_ENVELOPES_PER_DEVICE unexpired envelopes, at most
 * MAX_ENVELOPES_PER_SENDER of them from one sending device, and at most
 * MAX_ENVELOPES_FROM_OTHER_USERS from devices of other users: the rest is kept for its own
 * user's devices, so strangers filling the box cannot stop a user's devices from reaching
 * each other (e.g. with the user key sealed to a new device). Over a bound: 429 RATE_LIMITED
 * until the recipient deletes some (or they expire).
 */
import type { FastifyInstance } from 'fastify';
import { b64urlDecode } from '../../protocol/b64.js';
import { EnvelopeBody, EnvelopeParams, MAX_ENVELOPE_BYTES, type EnvelopeReply, type EnvelopesReply } from '../../protocol/auth-schemas.js';
import { SUBJECTS, type UserEvent } from '../../protocol/bus-messages.js';
import { DgError } from '../../protocol/errors.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { randomId } from '../crypto.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';
import type { EnvelopeLimits } from '../store.js';

export const MAX_ENVELOPES_PER_DEVICE = 256;
/** Enough for an admin to share the keys of many sites with one device before it reads them. */
export const MAX_ENVELOPES_PER_SENDER = 64;
/** Of MAX_ENVELOPES_PER_DEVICE; the other 64 are kept for devices of the recipient's own user. */
export const MAX_ENVELOPES_FROM_OTHER_USERS = 192;
const LIMITS: EnvelopeLimits = { perDevice: MAX_ENVELOPES_PER_DEVICE, perSender: MAX_ENVELOPES_PER_SENDER, fromOtherUsers: MAX_ENVELOPES_FROM_OTHER_USERS };
/** The retry-after of a full mailbox: the recipient reads its envelopes when it next comes online. */
const FULL_RETRY_AFTER_S = 60;
export const ENVELOPE_TTL_MS = 30 * 24 * 3600_000;
/** One GET answers at most this many envelopes and about this many bytes of data (`more` says the rest wait). */
export const LIST_MAX_ENVELOPES = 64;
export const LIST_MAX_BYTES = 4 * 1024 * 1024;

/** The size of `data`: the bytes it encodes when it is base64url, else its UTF-8 bytes. */
function envelopeBytes(data: string): number {
  return b64urlDecode(data)?.length ?? Buffer.byteLength(data, 'utf8');
}

export function envelopeRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);

  app.post<{ Body: EnvelopeBody }>(
    '/envelopes',
    {
      onRequest,
      // 64 KiB of bytes is about 87 KiB of base64url.
      bodyLimit: 96 * 1024,
      schema: { body: EnvelopeBody },
      preHandler: keyLimit(app, 'envelopes', KEY_LIMITS.envelopes, (req) => principal(req).device),
    },
    async (req, reply): Promise<EnvelopeReply> => {
      const p = principal(req);
      const { to, data } = req.body;
      if (envelopeBytes(data) > MAX_ENVELOPE_BYTES) throw new DgError('TOO_LARGE', `data: at most ${MAX_ENVELOPE_BYTES} bytes`);
      const now = ctx.now();
      const id = randomId(16);
      const r = await ctx.store.putEnvelope({ id, to, from: p.device, data, at: now, expiresAt: now + ENVELOPE_TTL_MS }, LIMITS, now);
      if (r === 'no-device') throw new DgError('NOT_FOUND', 'to: no live device has this id');
      if (r === 'sender-full') {
        throw new DgError('RATE_LIMITED', `to: the device already holds ${MAX_ENVELOPES_PER_SENDER} envelopes from this device; retry once it has read some`, {
          retryAfter: FULL_RETRY_AFTER_S,
        });
      }
      if (r === 'full') throw new DgError('RATE_LIMITED', 'to: the device\'s mailbox is full; retry once it has read some', { retryAfter: FULL_RETRY_AFTER_S });
      const recipient = await ctx.store.getDevice(to);
      if (recipient !== null) {
        const event: UserEvent = { user: recipient.user, device: to, event: { ev: 'envelope', id, from: p.device } };
        try {
          ctx.deps.bus.publish(SUBJECTS.tailUser, event);
        } catch (err) {
          ctx.deps.log.warn({ err }, 'could not publish an envelope event');
        }
      }
      void reply.code(201);
      return { id };
    },
  );

  app.get('/envelopes', { onRequest }, async (req): Promise<EnvelopesReply> => {
    const p = principal(req);
    const rows = await ctx.store.listEnvelopes(p.device, ctx.now(), LIST_MAX_ENVELOPES + 1);
    const envelopes: EnvelopesReply['envelopes'] = [];
    let bytes = 0;
    for (const e of rows.slice(0, LIST_MAX_ENVELOPES)) {
      if (envelopes.length > 0 && bytes + e.data.length > LIST_MAX_BYTES) break;
      bytes += e.data.length;
      envelopes.push({ id: e.id, from: e.from, data: e.data, at: e.at });
    }
    return { envelopes, more: rows.length > envelopes.length };
  });

  app.delete<{ Params: EnvelopeParams }>('/envelopes/:id', { onRequest, schema: { params: EnvelopeParams } }, async (req, reply) => {
    const p = principal(req);
    if (!(await ctx.store.deleteEnvelope(req.params.id, p.device))) throw new DgError('NOT_FOUND', 'id: no envelope with this id waits for this device');
    return reply.code(204).send();
  });
}
