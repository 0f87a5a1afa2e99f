/**
 * Envelopes, a server-relayed mailbox between devices (e.g. a user key sealed to a new
 * device's box key): POST /envelopes {to, data} → 201 {id}; GET /envelopes → the caller
 * device's envelopes, oldest first; DELETE /envelopes/:id → 204 (its recipient only).
 * `data` is opaque base64url, at most 64 KiB of bytes. A device holds at most
 * MAX_ENVELOPES_PER_DEVICE unexpired envelopes (then 429 RATE_LIMITED until it deletes some);
 * each expires after ENVELOPE_TTL_MS. The recipient's live sessions get an `envelope` event.
 */
import type { FastifyInstance } from 'fastify';
import { EnvelopeBody, EnvelopeParams, MAX_ENVELOPE_BYTES, type EnvelopeReply, type EnvelopesReply } from '../../protocol/auth-schemas.js';
import { SUBJECTS, type UserEvent } from '../../protocol/bus-messages.js';
import { DgError } from '../../protocol/errors.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { randomId } from '../crypto.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';

export const MAX_ENVELOPES_PER_DEVICE = 256;
export const ENVELOPE_TTL_MS = 30 * 24 * 3600_000;
/** One GET answers at most this many envelopes and about this many bytes of data (`more` says the rest wait). */
export const LIST_MAX_ENVELOPES = 64;
export const LIST_MAX_BYTES = 4 * 1024 * 1024;

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
      if (data.length % 4 === 1) throw new DgError('BAD_REQUEST', 'data: not base64url');
      if (Buffer.byteLength(data, 'base64url') > MAX_ENVELOPE_BYTES) throw new DgError('TOO_LARGE', `data: at most ${MAX_ENVELOPE_BYTES} bytes`);
      const now = ctx.now();
      const id = randomId(16);
      const r = await ctx.store.putEnvelope({ id, to, from: p.device, data, at: now, expiresAt: now + ENVELOPE_TTL_MS }, MAX_ENVELOPES_PER_DEVICE, now);
      if (r === 'no-device') throw new DgError('NOT_FOUND', 'to: no live device has this id');
      if (r === 'full') throw new DgError('RATE_LIMITED', `to: the device holds ${MAX_ENVELOPES_PER_DEVICE} envelopes; retry once it has read some`, { retryAfter: 60 });
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
