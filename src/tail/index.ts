/** The tail service: its public entry points (the composition root uses these names). */
export { createTail, type TailService } from './service.js';
export type { TailDeps } from './deps.js';
export { DEFAULT_TAIL_LIMITS, type TailLimits } from './limits.js';
export { openSqliteLogStore } from './sqlite-log-store.js';
export { openPgLogStore } from './pg-log-store.js';
export type { LogStore } from './log-store.js';
