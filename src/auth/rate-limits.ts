/**
 * Rate limits of the credential endpoints (@fastify/rate-limit, registered by the composition
 * root with `global:false`): one limit per client address (route config, checked on arrival,
 * before the body is parsed) and one per device or token (checked after validation, keyed by
 * the validated body). One process counts in memory; auth processes sharing a PostgreSQL
 * database count there together (rate-limit-pg.ts), so a cluster's limits are these.
 */
import type {} from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DgError } from '../protocol/errors.js';

const MINUTE = 60_000;

/** Requests per minute per client address, by route. Generous: the per-device limits are the tight ones. */
export const IP_LIMITS = { challenge: 300, signup: 100, login: 200, refresh: 300, oidcStart: 100, oidcCallback: 200, oidcComplete: 200 } as const;
/**
 * Requests per minute per device (challenge, signup, login, OIDC start, envelopes sent, user
 * keys and certificates written, grants declared or joined, member lists, email look-ups,
 * sessions listed or ended),
 * per refresh token, per OIDC login (complete: 10 tries a minute for a 10-minute login leave
 * a 40-bit confirmation code about 1 in 10^10 to a guesser), or per user (claims).
 */
export const KEY_LIMITS = {
  challenge: 20, signup: 5, login: 10, refresh: 20, oidcStart: 10, oidcComplete: 10, envelopes: 120, claims: 60, keys: 60,
  /** POST /declare and POST /join per device: each verifies a chain of up to 8 grants. */
  grants: 120,
  /** GET /sites/:site/members per device: it verifies up to 1000 chains. */
  members: 30,
  /** GET /keys?email= per device: bounds the probing of which addresses have accounts. */
  emailLookups: 120,
  /** POST /logout, GET /sessions and DELETE /sessions/:id per device, together. */
  sessions: 60,
} as const;

/** The route config of a per-address limit. */
export function ipLimit(max: number) {
  return { rateLimit: { max, timeWindow: MINUTE } };
}

/**
 * A preHandler hook limiting requests per key (e.g. the body's device). It runs after schema
 * validation, so the key is well formed; keys of unknown devices still count, which bounds
 * guessing.
 */
export function keyLimit(app: FastifyInstance, scope: string, max: number, key: (req: FastifyRequest) => string) {
  const check = app.createRateLimit({ max, timeWindow: MINUTE, keyGenerator: (req) => `${scope}:${key(req)}` });
  return async (req: FastifyRequest): Promise<void> => {
    const r = await check(req);
    if (!r.isAllowed && r.isExceeded) throw new DgError('RATE_LIMITED', 'too many requests', { retryAfter: Math.max(1, r.ttlInSeconds) });
  };
}
