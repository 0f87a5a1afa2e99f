/**
 * The one rule for Web Push endpoints (PROTOCOL.md "Auth API", profile changes): auth uses it
 * to refuse a `push` change with a comment, notify uses it again before it stores or sends,
 * so a server never posts to a host it was not told to trust.
 *
 * Allowlist entries (`DATAGROVE_PUSH_HOSTS`), compared case-insensitively:
 * - `host`: that host on the default https port (443) only;
 * - `host:port`: that host on that port (`host:443` is the same as `host`);
 * - `*.domain` or `*.domain:port`: any subdomain of `domain` (one or more labels), not
 *   `domain` itself. IPv6 literals are written in brackets (`[::1]:8443`).
 *
 * @example
 * checkPushEndpoint('https://fcm.googleapis.com/fcm/send/abc', ['fcm.googleapis.com']); // null
 * checkPushEndpoint('http://fcm.googleapis.com/x', ['fcm.googleapis.com']); // 'push endpoint must be https:'
 */

/** Longest endpoint accepted; real push services use a few hundred characters. */
export const MAX_PUSH_ENDPOINT_LENGTH = 2048;

interface HostEntry {
  wildcard: boolean;
  /** Lower-case host name without the `*.` prefix. */
  name: string;
  /** '' for the default port. */
  port: string;
}

function parseEntry(raw: string): HostEntry | null {
  let text = raw.trim().toLowerCase();
  if (text === '') return null;
  const wildcard = text.startsWith('*.');
  if (wildcard) text = text.slice(2);
  let name = text;
  let port = '';
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text);
  if (m === null) return null;
  name = m[1] ?? '';
  port = m[2] ?? '';
  // Nothing the URL parser would read as the end of the host (`a/b` is not the host `a`).
  if (name === '' || /[/?#@\\%\s]/.test(name)) return null;
  // Read as the URL parser reads an endpoint's host and port, since that is what an entry is
  // compared with: `127.000.0.1` is `127.0.0.1`, `[0:0::1]` is `[::1]`, `0443` is 443 (the
  // default, ''). An entry spelled otherwise would match no endpoint.
  const url = URL.canParse(`https://${name}${port === '' ? '' : `:${port}`}/`) ? new URL(`https://${name}${port === '' ? '' : `:${port}`}/`) : null;
  if (url === null || url.hostname === '') return null;
  return { wildcard, name: url.hostname, port: url.port };
}

/** Whether `raw` is a well-formed allowlist entry (for configuration checks). */
export function isPushHostEntry(raw: string): boolean {
  const e = parseEntry(raw);
  return e !== null && /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/.test(e.name) && Number(e.port || '443') <= 65535;
}

function matches(entry: HostEntry, hostname: string, port: string): boolean {
  if (entry.port !== port) return false;
  if (!entry.wildcard) return hostname === entry.name;
  return hostname.length > entry.name.length + 1 && hostname.endsWith(`.${entry.name}`);
}

/**
 * Checks a push endpoint against the allowlist. Returns null when it is acceptable, else
 * the reason (safe to show to the client). Pure: no DNS, no I/O.
 */
export function checkPushEndpoint(endpoint: string, hosts: readonly string[]): string | null {
  if (typeof endpoint !== 'string' || endpoint.length === 0) return 'push endpoint is missing';
  if (endpoint.length > MAX_PUSH_ENDPOINT_LENGTH) return `push endpoint is longer than ${MAX_PUSH_ENDPOINT_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'push endpoint is not a URL';
  }
  if (url.protocol !== 'https:') return 'push endpoint must be https:';
  if (url.username !== '' || url.password !== '') return 'push endpoint must not carry credentials';
  // An empty fragment (a trailing '#') parses to no hash, but the endpoint is stored as sent.
  if (url.hash !== '' || endpoint.includes('#')) return 'push endpoint must not have a fragment';
  // The URL parser drops or escapes these, but the endpoint is stored as sent (and a store may not hold U+0000).
  for (let i = 0; i < endpoint.length; i++) {
    const c = endpoint.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return 'push endpoint must not contain spaces or control characters';
  }
  // URL lower-cases the host and drops the default port, so `port` is '' for 443.
  const hostname = url.hostname;
  const port = url.port;
  for (const raw of hosts) {
    const entry = parseEntry(raw);
    if (entry !== null && matches(entry, hostname, port)) return null;
  }
  return `push endpoint host '${url.host}' is not on the push allowlist`;
}
