/** `retry-after` of a push service's reply (RFC 9110 §10.2.3). */
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850 = /^[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * `retry-after` (RFC 9110 §10.2.3) as push services send it with 429 and 503: either a
 * number of seconds or an HTTP date. Returns the wait in ms (0 for a date in the past;
 * Infinity for a number of seconds of more than 10 digits), or null when the header is
 * absent or malformed, so the caller falls back to its own backoff.
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
  // More digits than any wait a caller would keep (over 300 years): a wait beyond every limit.
  if (/^\d+$/.test(text)) return Number.POSITIVE_INFINITY;
  // The three HTTP date forms only (Date.parse alone accepts far more). asctime carries
  // no zone but is GMT by definition.
  let dated: string;
  if (IMF_FIXDATE.test(text) || RFC850.test(text)) dated = text;
  else if (ASCTIME.test(text)) dated = `${text} GMT`;
  else return null;
  const at = Date.parse(dated);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}
