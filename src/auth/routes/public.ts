/** Unauthenticated, public facts: GET /server-keys (attestation keys) and GET /shards. */
import type { FastifyInstance } from 'fastify';
import type { ServerKeysReply, ShardsReply } from '../../protocol/auth-schemas.js';
import type { AuthContext } from '../context.js';

export function publicRoutes(app: FastifyInstance, ctx: AuthContext): void {
  app.get('/server-keys', async (): Promise<ServerKeysReply> => ({
    keys: ctx.deps.attestation.map((k) => ({ kid: k.kid, publicKey: k.publicKey, status: k.status })),
  }));

  app.get('/shards', async (): Promise<ShardsReply> => {
    const m = ctx.deps.shards();
    return { version: m.version, shards: m.shards.map((s) => ({ id: s.id, url: s.url })) };
  });
}
