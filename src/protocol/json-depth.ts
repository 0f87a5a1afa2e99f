/**
 * A bound on how deeply a JSON text nests, checked before it is parsed. Parsing deeply
 * nested JSON costs far more than its size suggests (a 1 MiB frame of nested brackets takes
 * about 300 ms where a flat one takes 6), and code that walks the value recursively
 * (`JSON.stringify`, `structuredClone`) overflows the stack on it. Nothing in the protocol
 * nests deeply: app data and signal payloads get `MAX_JSON_DEPTH` levels.
 */
export const MAX_JSON_DEPTH = 64;

const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether `text` (UTF-8 JSON) opens more than `max` arrays or objects inside one another.
 * Cheap for what the protocol sends: a text cannot nest deeper than its count of `[` and `{`,
 * which native searches bound after at most `max + 1` hits of each; only a text with more
 * brackets than that is scanned byte by byte (outside strings).
 */
export function nestsDeeperThan(text: Uint8Array, max = MAX_JSON_DEPTH): boolean {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  let opens = 0;
  for (let i = buf.indexOf(OPEN_ARRAY); i !== -1 && opens <= max; i = buf.indexOf(OPEN_ARRAY, i + 1)) opens++;
  for (let i = buf.indexOf(OPEN_OBJECT); i !== -1 && opens <= max; i = buf.indexOf(OPEN_OBJECT, i + 1)) opens++;
  if (opens <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return false;
}
