/**
 * Notify's Prometheus metrics, on the process registry. A second notify on the same
 * registry (a restart inside one process) reuses the registered metrics.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface NotifyMetrics {
  sent: Counter;
  /** Failed attempts by `status`: HTTP status, `network`, `invalid` or `refused`. */
  failed: Counter<'status'>;
  retried: Counter;
  /** Publishes folded into another push of the same (device, site). */
  coalesced: Counter;
  endpointsRemoved: Counter;
  /** Pushes dropped because a bound was reached (`queue`, `slots`), at shutdown, or because the device may not read the log (`no-access`). */
  dropped: Counter<'reason'>;
  queued: Gauge;
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[] = []): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

export function createNotifyMetrics(registry: Registry): NotifyMetrics {
  const existingGauge = registry.getSingleMetric('datagrove_notify_queue_length');
  return {
    sent: counter(registry, 'datagrove_notify_pushes_sent_total', 'Web Push requests accepted by the push service'),
    failed: counter(registry, 'datagrove_notify_pushes_failed_total', 'Web Push attempts that failed, by status', ['status']),
    retried: counter(registry, 'datagrove_notify_pushes_retried_total', 'Web Push attempts scheduled again after 429, 5xx or a network error'),
    coalesced: counter(registry, 'datagrove_notify_pushes_coalesced_total', 'Publishes folded into another push of the same device and site'),
    endpointsRemoved: counter(registry, 'datagrove_notify_endpoints_removed_total', 'Push endpoints deleted after 404 or 410'),
    dropped: counter(registry, 'datagrove_notify_pushes_dropped_total', 'Pushes dropped at a bound, at shutdown, or for a device that may not read the log, by reason', ['reason']),
    queued:
      existingGauge instanceof Gauge
        ? existingGauge
        : new Gauge({ name: 'datagrove_notify_queue_length', help: 'Pushes waiting for a connection slot', registers: [registry] }),
  };
}
