/**
 * `retry-after` (RFC 9110 §10.2.3) as push services send it with 429 and 503: either a
 * number of seconds or an HTTP date. Returns the wait in ms (0 for a date in the past), or
 * null when the header is absent or malformed, so the caller falls back to its own backoff.
 *
 * @example
 * parseRetryAfter('120', Date.now()); // 120000
 * parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('2015-10-21T07:27:00Z')); // 60000
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return null;
  const text = raw.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  // Only the IMF-fixdate and the two obsolete forms are dates; Date.parse accepts more, so
  // require a weekday and "GMT" or a 4-digit year to avoid reading garbage as a date.
  if (!/^[A-Za-z]{3,9},? /.test(text) || !/(GMT|\d{4})/.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}
