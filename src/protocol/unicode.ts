/**
 * Lone UTF-16 surrogates. JSON can spell them (`"\ud800"`), but they are not Unicode text:
 * UTF-8 cannot hold them, so a store turns them into replacement characters, each its own
 * way (SQLite and PostgreSQL differ), and the text comes back changed. Requests carrying
 * them are refused instead.
 */

const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** A JSON escape of a surrogate: only a text with one can hold a lone surrogate once parsed. */
const ESCAPED = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;

/** Whether the JSON text may hold a lone surrogate (cheap; `hasLoneSurrogate` decides). */
export function mayHoldSurrogates(json: string): boolean {
  return ESCAPED.test(json);
}

/** Whether any string of `value` (keys included) has a lone surrogate. */
export function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (LONE.test(k) || hasLoneSurrogate(v)) return true;
  }
  return false;
}
