/**
 * The address of the client behind a request that did not go through Fastify's routing (a
 * WebSocket upgrade), by the same `--trust-proxy` rules as the HTTP APIs: the peer's
 * address, unless the peer is a trusted proxy; then `X-Forwarded-For` read from the right,
 * skipping the trusted proxies in the chain, and the first untrusted address is the
 * client's. A header from an untrusted peer is ignored, so a client cannot pick its own
 * address.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/** The ranges of the `--trust-proxy` presets (as proxy-addr, which Fastify uses, names them). */
const PRESETS: Record<string, [string, number, 'ipv4' | 'ipv6'][]> = {
  loopback: [['127.0.0.1', 8, 'ipv4'], ['::1', 128, 'ipv6']],
  linklocal: [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']],
  uniquelocal: [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['fc00::', 7, 'ipv6']],
};

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) as `1.2.3.4`. */
function plain(addr: string): string {
  const lower = addr.toLowerCase();
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

/** Whether `addr` is in `list` (false for anything that is not an address). */
function listed(list: BlockList, addr: string): boolean {
  const a = plain(addr);
  const family = isIP(a);
  if (family === 0) return false;
  return list.check(a, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Builds the lookup for `trustProxy` (the items `--trust-proxy` accepts, already checked by
 * the config: addresses, CIDR ranges, loopback, linklocal, uniquelocal).
 */
export function clientAddressOf(trustProxy: readonly string[]): (req: IncomingMessage) => string {
  const peer = (req: IncomingMessage) => plain(req.socket.remoteAddress ?? '');
  if (trustProxy.length === 0) return peer;
  const trusted = new BlockList();
  for (const item of trustProxy) {
    const preset = PRESETS[item];
    if (preset !== undefined) {
      for (const [net, bits, type] of preset) trusted.addSubnet(net, bits, type);
      continue;
    }
    const slash = item.indexOf('/');
    const addr = plain(slash < 0 ? item : item.slice(0, slash));
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (slash < 0) trusted.addAddress(addr, type);
    else trusted.addSubnet(addr, Number(item.slice(slash + 1)), type);
  }
  return (req) => {
    let client = peer(req);
    if (!listed(trusted, client)) return client;
    const header = req.headers['x-forwarded-for'];
    const chain = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = plain((chain[i] as string).trim());
      if (isIP(hop) === 0) break;
      client = hop;
      if (!listed(trusted, hop)) break;
    }
    return client;
  };
}
