/**
 * A token whose `kid` this process's key ring lacks is refused like any bad token, but when
 * it happens because the processes of a cluster hold different `hmac-keys.json` files
 * (one made its own, or a rotation reached auth before tail), every client is refused and
 * the operator must hear why. This says so in the log, at most once per interval.
 */
import type { FastifyBaseLogger } from 'fastify';
import { LogThrottle } from './log-throttle.js';

export function unknownKeyWarner(log: FastifyBaseLogger, everyMs = 60_000, now: () => number = Date.now): () => void {
  const throttle = new LogThrottle(everyMs, now);
  return () => {
    const left = throttle.take();
    if (left === null) return;
    log.warn(
      { refused: left + 1 },
      "tokens signed with a key this process's hmac-keys.json lacks were refused: every process of a cluster needs the same key files (after `datagrove keys rotate`, copy them everywhere and restart the tail and notify processes before the auth ones)",
    );
  };
}
