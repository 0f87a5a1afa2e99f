/** The tail service's Prometheus metrics, registered on the process registry. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ErrorCode } from '../protocol/errors.js';

export interface TailMetrics {
  sessions: Gauge;
  handles: Gauge<'role'>;
  writes: Counter<'result'>;
  entries: Counter;
  commitBatch: Histogram;
  fanout: Counter<'kind'>;
  lagging: Gauge;
  slowCloses: Counter;
  closes: Counter<'code'>;
  errors: Counter<'code'>;
  error(code: ErrorCode): void;
}

export function createTailMetrics(registry: Registry): TailMetrics {
  const registers = [registry];
  const errors = new Counter({ name: 'datagrove_tail_errors_total', help: 'Tail error replies by code', labelNames: ['code'], registers });
  return {
    sessions: new Gauge({ name: 'datagrove_tail_sessions', help: 'Open tail WebSocket sessions', registers }),
    handles: new Gauge({ name: 'datagrove_tail_leases', help: 'Live handles (leases) by role', labelNames: ['role'], registers }),
    writes: new Counter({ name: 'datagrove_tail_writes_total', help: 'Write requests by outcome', labelNames: ['result'], registers }),
    entries: new Counter({ name: 'datagrove_tail_entries_committed_total', help: 'Log entries committed', registers }),
    commitBatch: new Histogram({
      name: 'datagrove_tail_commit_batch_writes',
      help: 'Writes of one log committed together (in one group-commit batch)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    fanout: new Counter({ name: 'datagrove_tail_fanout_deliveries_total', help: 'Tail events delivered to followers, with or without entries', labelNames: ['kind'], registers }),
    lagging: new Gauge({ name: 'datagrove_tail_lagging_sessions', help: 'Sessions over the soft send-buffer limit (events without entries, coalesced)', registers }),
    slowCloses: new Counter({ name: 'datagrove_tail_slow_consumer_closes_total', help: 'Sessions closed 4408 as slow consumers', registers }),
    closes: new Counter({ name: 'datagrove_tail_closes_total', help: 'Sessions closed by the server, by close code', labelNames: ['code'], registers }),
    errors,
    error: (code) => errors.inc({ code }),
  };
}
