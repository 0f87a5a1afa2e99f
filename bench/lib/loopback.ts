/**
 * Client source addresses on the loopback network (127.0.0.1, 127.0.0.2, …: Linux routes
 * all of 127/8 to `lo`). Spreading connections over several source addresses keeps many
 * thousands of sockets clear of the ephemeral-port range of one address, and lets one
 * bench process stand for many clients where a server limits requests per address.
 * Traffic never leaves the machine.
 */
import { execFileSync } from 'node:child_process';

/** `count` loopback addresses, 127.0.0.1 first (at most 250). */
export function loopbackAddresses(count: number): string[] {
  if (count < 1 || count > 250) throw new Error('loopbackAddresses: 1..250');
  return Array.from({ length: count }, (_, i) => `127.0.0.${i + 1}`);
}

/** The soft limit on open file descriptors of processes this one starts (`ulimit -n`). */
export function openFileLimit(): number {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
  } catch {
    return Number.NaN;
  }
}

/** Throws a clear error when `sockets` connections (plus headroom) would not fit the descriptor limit. */
export function requireOpenFiles(sockets: number, what: string): void {
  const limit = openFileLimit();
  if (Number.isFinite(limit) && limit < sockets + 512) {
    throw new Error(`${what}: needs about ${sockets + 512} open files per process, but ulimit -n is ${limit}; raise it (ulimit -n ${sockets * 2}) or run a smaller size`);
  }
}
