/** The parts of the tail service, shared by the op handlers (built once in service.ts). */
import type { FastifyBaseLogger } from 'fastify';
import type { LogThrottle } from '../protocol/log-throttle.js';
import type { AccessControl } from './access.js';
import type { TailDeps } from './deps.js';
import type { Fanout } from './fanout.js';
import type { GroupCommitter } from './group-commit.js';
import type { LogRegistry } from './leaders.js';
import type { TailLimits } from './limits.js';
import type { TailMetrics } from './metrics.js';
import type { NotifyPublisher } from './notify-publish.js';
import type { RevokedSet } from './revocation.js';
import type { SessionRegistry } from './sessions.js';

export interface TailContext {
  deps: TailDeps;
  limits: TailLimits;
  metrics: TailMetrics;
  log: FastifyBaseLogger;
  committer: GroupCommitter;
  logs: LogRegistry;
  access: AccessControl;
  fanout: Fanout;
  notify: NotifyPublisher;
  sessions: SessionRegistry;
  revoked: RevokedSet;
  /** The node is draining: requests are answered UNAVAILABLE while what was accepted commits. */
  stopping: boolean;
  /** Notes a token refused for a key this process lacks (logged at most once a minute). */
  unknownKey: () => void;
  /** Commit failures are logged at most once per 10 s (they repeat while the store is down). */
  commitFailures: LogThrottle;
}
