/**
 * The key directory (docs/protocol.md "Additions: user keys, device certificates and site
 * members"): POST /user-key (a version of the caller's user key, first writer wins),
 * POST /certificates (a user-key-signed certificate of one of the user's devices),
 * GET /certificates?user= | ?email= (a user's key chain and the certificates of its live
 * devices), and GET /sites/:site/members (whom a site key goes to). Only public keys and
 * signatures pass here; the server checks them before it stores them.
 */
import type { FastifyInstance } from 'fastify';
import { SiteParams } from '../../protocol/auth-schemas.js';
import { DgError } from '../../protocol/errors.js';
import {
  CertificateBody,
  CertificatesQuery,
  UserKeyBody,
  type CertificateReply,
  type CertificatesReply,
  type MembersReply,
  type UserKeyReply,
} from '../../protocol/key-schemas.js';
import { requireSite, siteRights } from '../access.js';
import { normalizeEmail } from '../../protocol/email.js';
import { bearerHook, principal } from '../bearer.js';
import type { AuthContext } from '../context.js';
import { MAX_USER_KEY_VERSIONS } from '../key-directory.js';
import { KEY_LIMITS, keyLimit } from '../rate-limits.js';
import { siteMembers } from '../site-members.js';
import { certificateSignedBy, parseCertificate, userKeyProblem } from '../user-keys.js';

export function keyRoutes(app: FastifyInstance, ctx: AuthContext): void {
  const onRequest = bearerHook(ctx);
  const preHandler = keyLimit(app, 'keys', KEY_LIMITS.keys, (req) => principal(req).device);

  app.post<{ Body: UserKeyBody }>('/user-key', { onRequest, preHandler, schema: { body: UserKeyBody } }, async (req, reply): Promise<UserKeyReply> => {
    const p = principal(req);
    const b = req.body;
    const chain = await ctx.store.keys.userKeys(p.user);
    const newest = chain.at(-1)?.version ?? 0;
    const same = chain.find((k) => k.version === b.version);
    // A retry of a write that succeeded is answered as a success; another key is refused.
    if (same !== undefined && same.publicKey === b.publicKey) return { user: p.user, version: same.version, publicKey: same.publicKey };
    if (b.version !== newest + 1) throw new DgError('CONFLICT', `version: must be the newest version + 1 (newest ${newest})`);
    if (b.version > MAX_USER_KEY_VERSIONS) throw new DgError('TOO_LARGE', `version: at most ${MAX_USER_KEY_VERSIONS} user key versions`);
    const problem = userKeyProblem(p.user, b, chain);
    if (problem !== null) throw new DgError('BAD_REQUEST', problem);
    const ok = await ctx.store.keys.addUserKey({ user: p.user, version: b.version, publicKey: b.publicKey, sig: b.sig, prevSig: b.prevSig ?? null, createdAt: ctx.now() });
    if (!ok) throw new DgError('CONFLICT', 'version: another device set this version first');
    ctx.deps.log.info({ user: p.user, device: p.device, version: b.version }, 'user key set');
    void reply.code(201);
    return { user: p.user, version: b.version, publicKey: b.publicKey };
  });

  app.post<{ Body: CertificateBody }>('/certificates', { onRequest, preHandler, schema: { body: CertificateBody } }, async (req, reply): Promise<CertificateReply> => {
    const p = principal(req);
    const c = parseCertificate(req.body.certificate);
    if (!c.ok) throw new DgError('BAD_REQUEST', c.message);
    const { sub, box, user, ukv } = c.payload;
    if (user !== p.user) throw new DgError('FORBIDDEN', "certificate.user: not the caller's user");
    const device = await ctx.store.getDevice(sub);
    if (device === null) throw new DgError('NOT_FOUND', 'certificate.sub: no such device');
    if (device.user !== p.user) throw new DgError('FORBIDDEN', "certificate.sub: a device of another user");
    if (device.revokedAt !== null) throw new DgError('FORBIDDEN', 'certificate.sub: revoked');
    if (device.boxKey !== box) throw new DgError('BAD_REQUEST', "certificate.box: not the device's box key");
    const key = (await ctx.store.keys.userKeys(p.user)).find((k) => k.version === ukv);
    if (key === undefined) throw new DgError('BAD_REQUEST', 'certificate.ukv: no such user key version');
    if (!certificateSignedBy(c, key.publicKey)) throw new DgError('BAD_REQUEST', 'certificate: signature does not verify with the user key');
    const r = await ctx.store.keys.putCertificate({ device: sub, user: p.user, keyVersion: ukv, certificate: req.body.certificate, createdAt: ctx.now() });
    if (r === 'no-device') throw new DgError('FORBIDDEN', 'certificate.sub: revoked');
    if (r === 'stale-key') throw new DgError('CONFLICT', 'certificate.ukv: not the newest user key version; certify with the newest');
    void reply.code(201);
    return { device: sub, keyVersion: ukv };
  });

  app.get<{ Querystring: CertificatesQuery }>('/certificates', { onRequest, schema: { querystring: CertificatesQuery } }, async (req): Promise<CertificatesReply> => {
    principal(req);
    const q = req.query;
    if ((q.user === undefined) === (q.email === undefined)) throw new DgError('BAD_REQUEST', 'query: give exactly one of user and email');
    const user = q.user ?? (await ctx.store.keys.userOfEmail(normalizeEmail(q.email ?? '')));
    if (user === null) throw new DgError('NOT_FOUND', 'email: no user has signed in with it');
    if ((await ctx.store.listDevices(user)).length === 0) throw new DgError('NOT_FOUND', 'user: no such user');
    const chain = await ctx.store.keys.userKeys(user);
    const newest = chain.at(-1)?.version ?? 0;
    const certs = await ctx.store.keys.certificatesOf(user);
    return {
      user,
      userKeys: chain.map((k) => ({ version: k.version, publicKey: k.publicKey, sig: k.sig, prevSig: k.prevSig })),
      certificates: certs.filter((c) => c.revokedAt === null).map((c) => ({ device: c.device, boxKey: c.boxKey, keyVersion: c.keyVersion, certificate: c.certificate })),
      rotationRequired: certs.some((c) => c.revokedAt !== null && c.keyVersion === newest),
    };
  });

  const members = keyLimit(app, 'members', KEY_LIMITS.members, (req) => principal(req).device);
  app.get<{ Params: SiteParams }>('/sites/:site/members', { onRequest, preHandler: members, schema: { params: SiteParams } }, async (req): Promise<MembersReply> => {
    const p = principal(req);
    const site = await requireSite(ctx, req.params.site);
    if ((await siteRights(ctx, p.user, site)).length === 0) throw new DgError('FORBIDDEN', 'site: no access');
    return siteMembers(ctx, site);
  });
}
