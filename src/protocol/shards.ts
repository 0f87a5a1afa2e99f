/**
 * Rendezvous hashing of sites onto tail shards (PROTOCOL.md "Shards"), shared by auth (which
 * names the shard in a lease reply), tail (which redirects requests for sites it does not
 * own) and the client SDK. Everything about a site goes to the shard whose `id` maximizes the
 * first 8 bytes (big-endian) of SHA-256(UTF-8 of `id + "/" + site`). Removing a shard moves
 * only that shard's sites; adding one takes a fair share from every other.
 * Uses @noble/hashes (not node:crypto) so the same code runs in browsers.
 */
import { sha256 } from '@noble/hashes/sha2.js';

export interface Shard {
  id: string;
  url: string;
}

/** The 64-bit rendezvous score of (shard id, site). */
export function shardScore(shardId: string, site: string): bigint {
  const digest = sha256(new TextEncoder().encode(`${shardId}/${site}`));
  return new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false);
}

/**
 * The shard that serves `site`, or null when there is none. Equal scores (never seen in
 * practice) go to the smaller id, so every caller picks the same shard whatever the order.
 */
export function pickShard<T extends Shard>(shards: readonly T[], site: string): T | null {
  let best: T | null = null;
  let bestScore = -1n;
  for (const s of shards) {
    const score = shardScore(s.id, site);
    if (score > bestScore || (score === bestScore && best !== null && s.id < best.id)) {
      best = s;
      bestScore = score;
    }
  }
  return best;
}
