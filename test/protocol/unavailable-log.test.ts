/**
 * UnavailableLog: a dependency that stays down is logged once per interval per reason, with
 * the count left out; refusals that are not a failed dependency are not its business.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DgError } from '../../src/protocol/errors.js';
import { UnavailableLog } from '../../src/protocol/unavailable-log.js';

describe('UnavailableLog', () => {
  it('logs each reason once per interval, with its cause and the count left out', () => {
    let now = 0;
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = new UnavailableLog({ error: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) }, 10_000, () => now);
    const full = new Error('database or disk is full');
    const store = () => new DgError('UNAVAILABLE', 'auth store is unavailable', { cause: full });
    for (let i = 0; i < 100; i++) assert.equal(log.report(store(), { route: '/challenge' }), true);
    assert.equal(log.report(new DgError('UNAVAILABLE', 'provider is unreachable', { cause: new Error('ENOTFOUND') })), true);
    assert.deepEqual(
      lines.map((l) => [l.msg, l.obj.notLogged, l.obj.err, l.obj.route]),
      [
        ['auth store is unavailable (at most one line per 10 s)', 0, full, '/challenge'],
        ['provider is unreachable (at most one line per 10 s)', 0, lines[1]?.obj.err, undefined],
      ],
    );
    now = 10_000;
    log.report(store());
    assert.equal(lines.length, 3);
    assert.equal(lines[2]?.obj.notLogged, 99);
  });

  it('leaves other errors and causeless refusals to their callers', () => {
    const lines: unknown[] = [];
    const log = new UnavailableLog({ error: (obj) => lines.push(obj) });
    assert.equal(log.report(new DgError('UNAVAILABLE', 'server going away')), false);
    assert.equal(log.report(new DgError('INTERNAL', 'x', { cause: new Error('y') })), false);
    assert.equal(log.report(new Error('SQLITE_FULL')), false);
    assert.deepEqual(lines, []);
  });
});
