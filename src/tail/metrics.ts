/**
 * The tail service's Prometheus metrics, registered on the process registry.
 *
 * What the write path and fan-out count on every write or event (write results, entries
 * committed, events delivered) is kept in plain numbers and folded into the counters when
 * they are scraped (`collect`): prom-client hashes the labels on every labelled `inc`, even
 * through `labels()`, which cost more than the rest of a small write's bookkeeping.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ErrorCode } from '../protocol/errors.js';
import type { StoreDamage } from './store-damage.js';

export type WriteResult = 'ok' | 'dup' | 'nack' | 'refused' | 'failed';
const WRITE_RESULTS: readonly WriteResult[] = ['ok', 'dup', 'nack', 'refused', 'failed'];
export type FanoutKind = 'entries' | 'length';
const FANOUT_KINDS: readonly FanoutKind[] = ['entries', 'length'];

export interface TailMetrics {
  sessions: Gauge;
  handles: Gauge<'role'>;
  /** Where the `datagrove_tail_live_logs` gauge reads, when scraped, the logs held in memory. */
  countLiveLogs(count: () => number): void;
  /** Where `datagrove_tail_store_damaged` and `…_damage_failures_total` read, when scraped, the store's damage. */
  countStoreDamage(read: () => StoreDamage | null): void;
  writes: Counter<'result'>;
  entries: Counter;
  commitBatch: Histogram;
  /** Seconds each durable group commit took (the store call, fsync included). */
  commitSeconds: Histogram;
  fanout: Counter<'kind'>;
  lagging: Gauge;
  slowCloses: Counter;
  closes: Counter<'code'>;
  /** Upgrades refused because the node was full (`sessions`), had too many sessions not yet connected (`pending`), or too many of them from the client's address (`address`). */
  refusedUpgrades: Counter<'reason'>;
  errors: Counter<'code'>;
  error(code: ErrorCode): void;
  /** One write answered with `result` (counted in `writes`). */
  wrote(result: WriteResult): void;
  /** `n` entries committed (counted in `entries`). */
  committedEntries(n: number): void;
  /** `n` tail events of `kind` delivered (counted in `fanout`). */
  fannedOut(kind: FanoutKind, n: number): void;
}

/** A counter by one label whose increments wait in plain numbers until it is read. */
function foldedCounter<V extends string>(
  config: { name: string; help: string; label: string; values: readonly V[]; registers: Registry[] },
): { counter: Counter<string>; add: (v: V, n: number) => void } {
  const pending = new Map<V, number>(config.values.map((v) => [v, 0]));
  const counter = new Counter<string>({
    name: config.name,
    help: config.help,
    labelNames: [config.label],
    registers: config.registers,
    collect() {
      for (const [v, n] of pending) {
        if (n === 0) continue;
        this.inc({ [config.label]: v }, n);
        pending.set(v, 0);
      }
    },
  });
  return { counter, add: (v, n) => pending.set(v, (pending.get(v) ?? 0) + n) };
}

export function createTailMetrics(registry: Registry): TailMetrics {
  const registers = [registry];
  const errors = new Counter({ name: 'datagrove_tail_errors_total', help: 'Tail error replies by code', labelNames: ['code'], registers });
  const writes = foldedCounter({ name: 'datagrove_tail_writes_total', help: 'Write requests by outcome', label: 'result', values: WRITE_RESULTS, registers });
  const fanout = foldedCounter({
    name: 'datagrove_tail_fanout_deliveries_total',
    help: 'Tail events delivered to followers, with or without entries',
    label: 'kind',
    values: FANOUT_KINDS,
    registers,
  });
  let entriesPending = 0;
  const entries = new Counter({
    name: 'datagrove_tail_entries_committed_total',
    help: 'Log entries committed',
    registers,
    collect() {
      if (entriesPending === 0) return;
      this.inc(entriesPending);
      entriesPending = 0;
    },
  });
  let damage = (): StoreDamage | null => null;
  new Gauge({
    name: 'datagrove_tail_store_damaged',
    help: '1 once the log store found its storage damaged (a corrupt page: repair or restore it, then restart), else 0',
    registers,
    collect() {
      this.set(damage() === null ? 0 : 1);
    },
  });
  let damageCounted = 0;
  new Counter({
    name: 'datagrove_tail_store_damage_failures_total',
    help: 'Log store calls that failed on damaged storage',
    registers,
    collect() {
      const failures = damage()?.failures ?? 0;
      if (failures > damageCounted) this.inc(failures - damageCounted);
      damageCounted = failures;
    },
  });
  let liveLogs = (): number => 0;
  new Gauge({
    name: 'datagrove_tail_live_logs',
    help: 'Logs held in memory: with handles, a leadership grace running, or writes settling',
    registers,
    collect() {
      this.set(liveLogs());
    },
  });
  return {
    sessions: new Gauge({ name: 'datagrove_tail_sessions', help: 'Open tail WebSocket sessions', registers }),
    countLiveLogs: (count) => {
      liveLogs = count;
    },
    countStoreDamage: (read) => {
      damage = read;
    },
    handles: new Gauge({ name: 'datagrove_tail_leases', help: 'Live handles (leases) by role', labelNames: ['role'], registers }),
    writes: writes.counter,
    entries,
    commitBatch: new Histogram({
      name: 'datagrove_tail_commit_batch_writes',
      help: 'Writes of one log committed together (in one group-commit batch)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    commitSeconds: new Histogram({
      name: 'datagrove_tail_commit_seconds',
      help: 'Duration of each durable group commit (the store call, fsync included)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2],
      registers,
    }),
    fanout: fanout.counter,
    lagging: new Gauge({ name: 'datagrove_tail_lagging_sessions', help: 'Sessions over the soft send-buffer limit (events without entries, coalesced)', registers }),
    slowCloses: new Counter({ name: 'datagrove_tail_slow_consumer_closes_total', help: 'Sessions closed 4408 as slow consumers', registers }),
    closes: new Counter({ name: 'datagrove_tail_closes_total', help: 'Sessions closed by the server, by close code', labelNames: ['code'], registers }),
    refusedUpgrades: new Counter({
      name: 'datagrove_tail_refused_upgrades_total',
      help: 'WebSocket upgrades refused with 503: the node held maxSessions sessions (sessions), maxPendingSessions not yet connected (pending), or that many from the client address (address)',
      labelNames: ['reason'],
      registers,
    }),
    errors,
    error: (code) => errors.inc({ code }),
    wrote: (result) => writes.add(result, 1),
    committedEntries: (n) => {
      entriesPending += n;
    },
    fannedOut: (kind, n) => fanout.add(kind, n),
  };
}
