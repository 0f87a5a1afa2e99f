/** The process's Prometheus registry and the HTTP metrics every role shares. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface HttpMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  latency: Histogram<'method' | 'route'>;
  errors: Counter<'code'>;
}

/**
 * How often the event-loop delay histogram samples, in ms. prom-client's default (10 ms)
 * wakes an idle server a hundred times a second, close to 1% of a core doing nothing;
 * at 100 ms the histogram still sees every stall long enough to matter.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetrics(): HttpMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'datagrove_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return {
    registry,
    requests: new Counter({ name: 'datagrove_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    latency: new Histogram({
      name: 'datagrove_http_request_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    errors: new Counter({ name: 'datagrove_errors_total', help: 'Error replies by code (HTTP and tail)', labelNames: ['code'], registers: [registry] }),
  };
}
