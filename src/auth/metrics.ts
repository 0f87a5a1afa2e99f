/** Auth's Prometheus counters, registered on the process registry. */
import { Counter, type Registry } from 'prom-client';

export interface AuthMetrics {
  signups: Counter<'outcome'>;
  logins: Counter<'outcome'>;
  refreshes: Counter<'outcome'>;
  tokenChecks: Counter<'outcome'>;
  revocations: Counter<'kind'>;
  oidcLogins: Counter<'step' | 'outcome'>;
  notifySync: Counter<'outcome'>;
}

export function createAuthMetrics(registry: Registry): AuthMetrics {
  const counter = <L extends string>(name: string, help: string, label: L) =>
    new Counter<L>({ name, help, labelNames: [label], registers: [registry] });
  return {
    signups: counter('datagrove_auth_signups_total', 'Signups by outcome', 'outcome'),
    logins: counter('datagrove_auth_logins_total', 'Logins by outcome', 'outcome'),
    refreshes: counter('datagrove_auth_refreshes_total', 'Refreshes by outcome (ok, replay, reused, invalid)', 'outcome'),
    tokenChecks: counter('datagrove_auth_token_checks_total', 'Bearer token checks by outcome', 'outcome'),
    revocations: counter('datagrove_auth_revocations_total', 'Revocations by kind (device, family, grant)', 'kind'),
    oidcLogins: new Counter({
      name: 'datagrove_auth_oidc_logins_total',
      help: 'OIDC login steps (start, callback, complete) by outcome',
      labelNames: ['step', 'outcome'],
      registers: [registry],
    }),
    notifySync: counter('datagrove_auth_notify_sync_total', 'Profile updates sent to notify by outcome (changes, full, gap, unreachable)', 'outcome'),
  };
}
