/**
 * `--push-hosts` entries are compared with endpoints as the URL parser reads them: an entry
 * the configuration accepts allows the endpoints written with that same host and port,
 * however the operator spelled the address (IPv4 with leading zeros, IPv6 not in its
 * shortest form, a port with leading zeros, capitals).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPushEndpoint } from '../../src/protocol/push-endpoint.js';
import { loadConfig } from '../../src/server/config.js';

describe('--push-hosts spellings', () => {
  const cases: [string, string][] = [
    ['127.000.0.1:8443', 'https://127.000.0.1:8443/push/a'],
    ['[0:0::1]:9000', 'https://[0:0::1]:9000/push/a'],
    ['[::FFFF:127.0.0.1]:9001', 'https://[::ffff:127.0.0.1]:9001/push/a'],
    ['push.example:0443', 'https://push.example/push/a'],
    ['push.example:08443', 'https://push.example:8443/push/a'],
    ['Push.Example', 'https://push.example/push/a'],
    ['*.Push.Example:0443', 'https://eu.push.example/push/a'],
  ];
  for (const [entry, endpoint] of cases) {
    it(`${entry} allows ${endpoint}`, () => {
      const { pushHosts } = loadConfig(['--push-hosts', entry], {});
      assert.equal(checkPushEndpoint(endpoint, pushHosts), null);
      // And no more than that host: another port or host stays refused.
      assert.notEqual(checkPushEndpoint('https://other.example:8443/push/a', pushHosts), null);
    });
  }

  it('keeps entries that need no change as written, from the environment too', () => {
    assert.deepEqual(loadConfig([], { DATAGROVE_PUSH_HOSTS: 'fcm.googleapis.com, *.notify.windows.com, localhost:8443, [::1]:9000' }).pushHosts, [
      'fcm.googleapis.com',
      '*.notify.windows.com',
      'localhost:8443',
      '[::1]:9000',
    ]);
  });
});
