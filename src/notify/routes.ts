/**
 * Notify's public HTTP routes, mounted at /notify/v1 (PROTOCOL.md "Notify API"). Errors are
 * thrown as DgError and shaped by the server's error handler.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DgError } from '../protocol/errors.js';

const VapidReply = Type.Object({ publicKey: Type.String() });

/** `publicKey` returns null until the keys are loaded (before start). */
export function notifyRoutes(publicKey: () => string | null): FastifyPluginAsync {
  return async (app) => {
    app.get('/vapid', { schema: { response: { 200: VapidReply } } }, async (_req, reply) => {
      const key = publicKey();
      if (key === null) throw new DgError('UNAVAILABLE', 'notify is starting', { retryAfter: 1 });
      // The key changes only when an operator replaces vapid-keys.json.
      void reply.header('cache-control', 'public, max-age=300');
      return { publicKey: key };
    });
  };
}
