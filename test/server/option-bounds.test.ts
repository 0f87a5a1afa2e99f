/**
 * `datagrove --help` states every bound that `serve` enforces on an option, so an operator
 * learns it before a start is refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig, OPTIONS } from '../../src/server/config.js';

describe('option bounds', () => {
  // [flag, what its help says, a value the bound refuses]
  const cases: [string, string, string][] = [
    ['--access-ttl', 'at most 900', '901'],
    ['--node-ttl-ms', '100 to 600000', '99'],
    ['--node-ttl-ms', '100 to 600000', '600001'],
    ['--lease-grace-ms', 'at most 600000', '600001'],
    ['--commit-delay-ms', '0 to 50', '51'],
    ['--max-sessions', 'at least 1', '0'],
    ['--max-pending-per-address', 'at least 1', '0'],
    ['--push-interval-ms', 'at most 86400000', '86400001'],
    ['--metrics-token', 'no spaces', 'a token with spaces in it'],
  ];
  for (const [flag, bound, refused] of cases) {
    it(`${flag}: the help says '${bound}', and ${JSON.stringify(refused)} is refused`, () => {
      const spec = OPTIONS.find((o) => o.flag === flag);
      assert.ok(spec !== undefined, `no option ${flag}`);
      assert.ok(spec.help.includes(bound), `help of ${flag} lacks '${bound}': ${spec.help}`);
      assert.throws(() => loadConfig([flag, refused], {}), new RegExp(flag));
    });
  }
});
