/** The process's Prometheus registry and the HTTP metrics every role shares. */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface HttpMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  latency: Histogram<'method' | 'route'>;
  errors: Counter<'code'>;
  /** Connections closed for pipelining more requests than the bound of pipelining.ts. */
  pipelineCloses: Counter;
  /** The registry's Prometheus text, rendered once for all the requests waiting for it. */
  text(): Promise<string>;
}

/**
 * How often the event-loop delay histogram samples, in ms. prom-client's default (10 ms)
 * wakes an idle server a hundred times a second, close to 1% of a core doing nothing;
 * at 100 ms the histogram still sees every stall long enough to matter.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * `render`, shared by concurrent callers: a call while no render runs starts one; a call
 * while one runs waits for the next, which starts as that one ends and serves every call
 * that came meanwhile. So each answer is rendered after it was asked for (a scrape never
 * misses what happened before it), and any number of concurrent calls cost at most two
 * renders.
 */
export function coalesced(render: () => Promise<string>): () => Promise<string> {
  let running: Promise<string> | null = null;
  let next: Promise<string> | null = null;
  const start = (): Promise<string> => {
    const p: Promise<string> = render().finally(() => {
      if (running === p) running = null;
    });
    running = p;
    return p;
  };
  const settled = (): void => {};
  return () => {
    if (running === null) return start();
    next ??= running.then(settled, settled).then(() => {
      next = null;
      return start();
    });
    return next;
  };
}

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
    pipelineCloses: new Counter({
      name: 'datagrove_http_pipeline_closes_total',
      help: 'HTTP connections closed for having more pipelined requests waiting for their answers than allowed',
      registers: [registry],
    }),
    text: coalesced(() => registry.metrics()),
  };
}
