/** An assertion for `assert.rejects`: a store refusal that is UNAVAILABLE because SQLite stayed busy. */
import assert from 'node:assert/strict';
import { DgError } from '../../src/protocol/errors.js';

export function isBusyUnavailable(err: unknown): true {
  assert.ok(err instanceof DgError, `expected DgError UNAVAILABLE, got ${String(err)}`);
  assert.equal(err.code, 'UNAVAILABLE');
  assert.match(String((err.cause as { code?: unknown } | undefined)?.code), /^SQLITE_BUSY/);
  return true;
}
