/**
 * What the auth service is given (AuthDeps, wired by the composition root) and the context
 * its routes and bus handlers share.
 */
import type { KeyObject } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import type { Bus } from '../bus/bus.js';
import { unknownKeyWarner } from '../protocol/key-ring-warning.js';
import type { KeyRing } from '../protocol/token.js';
import { UnavailableLog } from '../protocol/unavailable-log.js';
import type { Shard } from '../protocol/shards.js';
import { createAuthMetrics, type AuthMetrics } from './metrics.js';
import { NotifySync } from './notify-sync.js';
import type { OidcProviderConfig } from './oidc/config.js';
import { OidcProviders } from './oidc/providers.js';
import { RevocationSet } from './revocation-set.js';
import type { AuthStore } from './store.js';

export interface AttestationKeyView {
  kid: string;
  status: 'active' | 'retired' | 'revoked';
  publicKey: string;
  privateKey: KeyObject;
}

export interface AuthDeps {
  store: AuthStore;
  bus: Bus;
  ring: KeyRing;
  attestation: AttestationKeyView[];
  /** The URL clients use (issuer of attestations, base of the OIDC callback); read when needed, since a server on port 0 knows it only once listening. */
  publicUrl: () => string;
  /** CORS origins; OIDC redirects must go to one of them (or to the public URL). */
  origins: string[];
  /** The OpenID Connect providers (DATAGROVE_OIDC, plus the dev IdP when mounted). */
  oidc: () => readonly OidcProviderConfig[];
  accessTtlSec: number;
  pushHosts: string[];
  shards: () => { version: number; shards: Shard[] };
  log: FastifyBaseLogger;
  registry: Registry;
}

/** Challenge nonces live 5 minutes (PROTOCOL.md). */
export const NONCE_TTL_MS = 5 * 60_000;
/** Refresh tokens expire 30 days after they were issued; each rotation starts a new 30 days. */
export const REFRESH_TTL_MS = 30 * 24 * 3600_000;
/** The longest an access token can live (DATAGROVE_ACCESS_TTL ≤ 900), plus clock slack. */
export const REVOCATION_WINDOW_MS = (900 + 60) * 1000;

export interface AuthContext {
  deps: AuthDeps;
  store: AuthStore;
  metrics: AuthMetrics;
  revocations: RevocationSet;
  providers: OidcProviders;
  /** Keeps notify's copy of each profile's subscriptions and push endpoints current. */
  notify: NotifySync;
  /** Notes a token refused for a key this process lacks (logged at most once a minute). */
  unknownKey: () => void;
  /** Logs requests answered UNAVAILABLE for a failed dependency, once per 10 s per reason. */
  unavailable: UnavailableLog;
  now(): number;
}

export function createContext(deps: AuthDeps): AuthContext {
  const metrics = createAuthMetrics(deps.registry);
  return {
    deps,
    store: deps.store,
    metrics,
    revocations: new RevocationSet(Math.max(REVOCATION_WINDOW_MS, (deps.accessTtlSec + 60) * 1000)),
    providers: new OidcProviders(deps.oidc, deps.log),
    notify: new NotifySync({ bus: deps.bus, store: deps.store, log: deps.log, count: (outcome) => metrics.notifySync.inc({ outcome }) }),
    unknownKey: unknownKeyWarner(deps.log),
    unavailable: new UnavailableLog(deps.log),
    now: () => Date.now(),
  };
}
