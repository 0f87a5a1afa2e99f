import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { pickShard, shardScore } from '../../src/protocol/shards.js';

const shards = ['tail-1', 'tail-2', 'tail-3', 'tail-4'].map((id) => ({ id, url: `ws://${id}/tail` }));
const sites = Array.from({ length: 400 }, (_, i) => `site-${i}`);

describe('rendezvous hashing of sites onto shards', () => {
  it('scores with the first 8 bytes, big-endian, of SHA-256(id + "/" + site)', () => {
    const digest = createHash('sha256').update('tail-1/abc', 'utf8').digest();
    assert.equal(shardScore('tail-1', 'abc'), digest.readBigUInt64BE(0));
  });

  it('picks the shard with the highest score, whatever the order of the list', () => {
    for (const site of sites.slice(0, 50)) {
      const best = [...shards].sort((a, b) => (shardScore(b.id, site) > shardScore(a.id, site) ? 1 : -1))[0];
      assert.equal(pickShard(shards, site), best);
      assert.equal(pickShard([...shards].reverse(), site), best);
    }
  });

  it('moves only the removed shard\'s sites, and spreads sites fairly', () => {
    const before = new Map(sites.map((s) => [s, pickShard(shards, s)?.id]));
    const counts = new Map<string, number>();
    for (const id of before.values()) counts.set(id ?? '', (counts.get(id ?? '') ?? 0) + 1);
    for (const n of counts.values()) assert.ok(n > 50 && n < 150, `unfair spread ${[...counts.values()].join(',')}`);
    const fewer = shards.filter((s) => s.id !== 'tail-2');
    for (const s of sites) {
      const now = pickShard(fewer, s)?.id;
      if (before.get(s) !== 'tail-2') assert.equal(now, before.get(s));
      else assert.notEqual(now, 'tail-2');
    }
  });

  it('answers null with no shard', () => {
    assert.equal(pickShard([], 'site'), null);
  });
});
