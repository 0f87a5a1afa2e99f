/**
 * Keys given twice in a JSON object: JavaScript keeps the last, other readers the first.
 * Pure string work (no Node built-ins), for the server and the client SDK alike.
 */

/** The first key that an object of `text` (valid JSON) gives twice, or null. */
export function repeatedKey(text: string): string | null {
  // One entry per open object (its keys so far) or array (null).
  const open: (Set<string> | null)[] = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const keys = open.at(-1);
      if (keyNext && keys !== undefined && keys !== null) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
      }
      keyNext = false;
      i = j;
    } else if (c === 0x7b) {
      open.push(new Set());
      keyNext = true;
    } else if (c === 0x5b) {
      open.push(null);
      keyNext = false;
    } else if (c === 0x7d || c === 0x5d) {
      open.pop();
      keyNext = false;
    } else if (c === 0x2c) {
      keyNext = open.at(-1) instanceof Set;
    }
  }
  return null;
}
