/**
 * GET /keys?email= (identity attestations of an email's live devices, for encrypting to
 * them), POST /devices/:device/name {name} (rename a device of the caller's user) and
 * POST /devices/:device/box-sig {boxSig} (a device registered without a signature of its
 * box key adds one; only the device itself can make it, so the caller must be that device).
 */
import type { FastifyInstance } from 'fastify';
import {
  BoxSigBody,
  DeviceParams,
  KeysQuery,
  RenameDeviceBody,
  type BoxSigReply,
  type KeysReply,
  type RenameDeviceReply,
} from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import { normalizeEmail } from '../../protocol/email.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { checkBoxSig } from '../proof.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';

/** Attestations in one answer: more devices than this under one email is not a real user. */
export const MAX_ATTESTATIONS = 256;

export function deviceRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);

  const lookups = keyLimit(app, 'email-lookups', KEY_LIMITS.emailLookups, (req) => principal(req).device);
  app.get<{ Querystring: KeysQuery }>('/keys', { onRequest, preHandler: lookups, schema: { querystring: KeysQuery } }, async (req): Promise<KeysReply> => {
    principal(req);
    const found = await ctx.store.attestationsOf(normalizeEmail(req.query.email), MAX_ATTESTATIONS);
    return { attestations: found.map((a) => a.attestation) };
  });

  app.post<{ Params: DeviceParams; Body: RenameDeviceBody }>(
    '/devices/:device/name',
    { onRequest, schema: { params: DeviceParams, body: RenameDeviceBody } },
    async (req): Promise<RenameDeviceReply> => {
      const p = principal(req);
      const { device } = req.params;
      if (!(await ctx.store.renameDevice(p.user, device, req.body.name))) {
        const d = await ctx.store.getDevice(device);
        if (d === null) throw new DgError('NOT_FOUND', 'device: no such device');
        throw new DgError('FORBIDDEN', d.user === p.user ? 'device: revoked' : 'device: belongs to another user');
      }
      return { device, name: req.body.name };
    },
  );

  app.post<{ Params: DeviceParams; Body: BoxSigBody }>(
    '/devices/:device/box-sig',
    { onRequest, schema: { params: DeviceParams, body: BoxSigBody } },
    async (req): Promise<BoxSigReply> => {
      const p = principal(req);
      const { device } = req.params;
      if (device !== p.device) throw new DgError('FORBIDDEN', 'device: only the device itself signs its box key');
      const d = await ctx.store.getDevice(device);
      if (d === null || d.revokedAt !== null) throw new DgError('FORBIDDEN', 'device: revoked');
      checkBoxSig(device, d.boxKey, req.body.boxSig);
      // Only a revocation since the read makes this false.
      if (!(await ctx.store.setBoxSig(device, d.boxKey, req.body.boxSig))) throw new DgError('FORBIDDEN', 'device: revoked');
      return { device, boxKey: d.boxKey, boxSig: req.body.boxSig };
    },
  );
}
