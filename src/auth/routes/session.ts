/**
 * POST /signup and POST /login: a device proves it holds its key by signing a challenge nonce
 * and gets a new session (access + refresh tokens). Every failed proof is the same
 * UNAUTHORIZED, so a caller learns nothing about which part was wrong beyond the field.
 */
import type { FastifyInstance } from 'fastify';
import { LoginBody, SignupBody, type SessionReply } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import type { AuthContext } from '../context.js';
import { randomId } from '../crypto.js';
import { checkBoxSig, proveDevice } from '../proof.js';
import { IP_LIMITS, KEY_LIMITS, ipLimit, keyLimit } from '../rate-limits.js';
import { issueSession } from '../session.js';

export function sessionRoutes(app: FastifyInstance, ctx: AuthContext): void {
  app.post<{ Body: SignupBody }>(
    '/signup',
    {
      schema: { body: SignupBody },
      config: ipLimit(IP_LIMITS.signup),
      preHandler: keyLimit(app, 'signup', KEY_LIMITS.signup, (req) => (req.body as SignupBody).device),
    },
    async (req, reply): Promise<SessionReply> => {
      const count = (outcome: string) => ctx.metrics.signups.inc({ outcome });
      const b = req.body;
      if (b.boxSig !== undefined) checkBoxSig(b.device, b.boxKey, b.boxSig);
      await proveDevice(ctx, b, count);
      const now = ctx.now();
      const user = randomId(16);
      const device = { id: b.device, boxKey: b.boxKey, boxSig: b.boxSig ?? null, name: b.name ?? '', createdAt: now };
      const created = await ctx.store.createUser({ id: user, createdAt: now }, device);
      if (!created) {
        count('conflict');
        throw new DgError('CONFLICT', 'device: already registered; log in instead');
      }
      const session = await issueSession(ctx, user, b.device);
      count('ok');
      void reply.code(201);
      return session;
    },
  );

  // Counted once the device proved its key: device ids are public, and requests anyone can
  // make with a bad signature must not spend the device's own logins.
  const logins = keyLimit(app, 'login', KEY_LIMITS.login, (req) => (req.body as LoginBody).device);
  app.post<{ Body: LoginBody }>(
    '/login',
    {
      schema: { body: LoginBody },
      config: ipLimit(IP_LIMITS.login),
    },
    async (req): Promise<SessionReply> => {
      const count = (outcome: string) => ctx.metrics.logins.inc({ outcome });
      const b = req.body;
      await proveDevice(ctx, b, count);
      await logins(req);
      const device = await ctx.store.getDevice(b.device);
      // The caller proved it holds the device key: it may learn which of the two it is.
      if (device === null) {
        count('unknown-device');
        throw new DgError('UNAUTHORIZED', 'device: not signed up; sign up with this key first (POST /auth/v1/signup)');
      }
      if (device.revokedAt !== null) {
        count('unknown-device');
        throw new DgError('UNAUTHORIZED', 'device: revoked; this key cannot sign in again (make a new device key)');
      }
      const session = await issueSession(ctx, device.user, device.id);
      count('ok');
      return session;
    },
  );
}
