import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyStatus, pushTopic } from '../../src/notify/push-request.js';
import { parseRetryAfter } from '../../src/notify/retry-after.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads seconds and HTTP dates', () => {
    assert.equal(parseRetryAfter('0', now), 0);
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 3 ', now), 3000);
    assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:01:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Wednesday, 01-Jan-25 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now), 0, 'a past date means now');
    assert.equal(parseRetryAfter('Wed Jan  1 00:00:10 2025', now), 10_000, 'asctime is GMT');
    assert.equal(parseRetryAfter(['5', '9'], now), 5000);
    assert.equal(parseRetryAfter('99999999999', now), Number.POSITIVE_INFINITY, 'more than 10 digits is a wait beyond any limit, not malformed');
    assert.equal(parseRetryAfter('99999999999999999999', now), Number.POSITIVE_INFINITY);
  });
  it('returns null for absent or malformed values', () => {
    for (const v of [undefined, '', '-1', '1.5', 'soon', '12abc', 'Jan 1 2025', 'Wed, garbage GMT']) {
      assert.equal(parseRetryAfter(v, now), null, String(v));
    }
  });
});

describe('push outcome and topic', () => {
  it('classifies push service statuses', () => {
    assert.deepEqual(classifyStatus(201, undefined, 0), { kind: 'sent', status: '201' });
    assert.deepEqual(classifyStatus(410, undefined, 0), { kind: 'gone', status: '410' });
    assert.deepEqual(classifyStatus(404, undefined, 0), { kind: 'gone', status: '404' });
    assert.deepEqual(classifyStatus(429, '7', 0), { kind: 'retry', status: '429', retryAfterMs: 7000 });
    assert.deepEqual(classifyStatus(503, undefined, 0), { kind: 'retry', status: '503', retryAfterMs: null });
    assert.deepEqual(classifyStatus(400, '7', 0), { kind: 'failed', status: '400' });
    assert.deepEqual(classifyStatus(301, undefined, 0), { kind: 'failed', status: '301' });
  });
  it('makes a 32-char base64url topic from device and site', () => {
    const t = pushTopic('dev', 'site');
    assert.match(t, /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(t, pushTopic('dev', 'site2'));
    assert.equal(t, pushTopic('dev', 'site'));
  });
});
