/** POST /challenge {device} → {nonce, expiresIn}: a single-use nonce for the device to sign. */
import type { FastifyInstance } from 'fastify';
import { ChallengeBody, type ChallengeReply } from '../../protocol/auth-schemas.js';
import { NONCE_TTL_MS, type AuthContext } from '../context.js';
import { randomId } from '../crypto.js';
import { IP_LIMITS, KEY_LIMITS, ipLimit, keyLimit } from '../rate-limits.js';

export function challengeRoute(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: ChallengeBody }>(
    '/challenge',
    {
      schema: { body: ChallengeBody },
      config: ipLimit(IP_LIMITS.challenge),
      // Per device and client address: device ids are public, and a count per device alone
      // would let anyone spend a device's challenges and keep it from signing in.
      preHandler: keyLimit(app, 'challenge', KEY_LIMITS.challenge, (req) => `${(req.body as ChallengeBody).device}|${req.ip}`),
    },
    async (req): Promise<ChallengeReply> => {
      const nonce = randomId(32);
      await ctx.store.putNonce(nonce, req.body.device, ctx.now() + NONCE_TTL_MS);
      return { nonce, expiresIn: NONCE_TTL_MS / 1000 };
    },
  );
}
