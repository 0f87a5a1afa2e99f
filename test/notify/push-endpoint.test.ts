import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPushEndpoint, isPushHostEntry } from '../../src/protocol/push-endpoint.js';
import { DEFAULT_PUSH_HOSTS } from '../../src/server/config.js';

describe('checkPushEndpoint', () => {
  const hosts = ['fcm.googleapis.com', '127.0.0.1:8443', 'localhost:8443', '*.notify.windows.com', 'push.example:443', '[::1]:9000'];
  const table: [string, string | null][] = [
    ['https://fcm.googleapis.com/fcm/send/abc', null],
    ['https://FCM.googleapis.com/fcm/send/abc', null],
    ['https://fcm.googleapis.com:443/fcm/send/abc', null],
    ['https://127.0.0.1:8443/push/x', null],
    ['https://localhost:8443/push/x', null],
    ['https://wns2-par02p.notify.windows.com/w/?token=x', null],
    ['https://a.b.notify.windows.com/w', null],
    ['https://push.example/x', null],
    ['https://[::1]:9000/x', null],
    ['http://fcm.googleapis.com/fcm/send/abc', 'push endpoint must be https:'],
    ['https://fcm.googleapis.com:8443/x', "push endpoint host 'fcm.googleapis.com:8443' is not on the push allowlist"],
    ['https://127.0.0.1/push/x', "push endpoint host '127.0.0.1' is not on the push allowlist"],
    ['https://127.0.0.1:8444/push/x', "push endpoint host '127.0.0.1:8444' is not on the push allowlist"],
    ['https://notify.windows.com/w', "push endpoint host 'notify.windows.com' is not on the push allowlist"],
    ['https://evilnotify.windows.com/w', "push endpoint host 'evilnotify.windows.com' is not on the push allowlist"],
    ['https://fcm.googleapis.com.evil.example/x', "push endpoint host 'fcm.googleapis.com.evil.example' is not on the push allowlist"],
    ['https://user:pw@fcm.googleapis.com/x', 'push endpoint must not carry credentials'],
    ['https://fcm.googleapis.com/x#frag', 'push endpoint must not have a fragment'],
    ['https://fcm.googleapis.com/x#', 'push endpoint must not have a fragment'],
    ['not a url', 'push endpoint is not a URL'],
    ['', 'push endpoint is missing'],
    [`https://fcm.googleapis.com/${'a'.repeat(2100)}`, 'push endpoint is longer than 2048 characters'],
  ];
  for (const [endpoint, want] of table) {
    it(`${endpoint.slice(0, 60)} → ${want ?? 'ok'}`, () => {
      assert.equal(checkPushEndpoint(endpoint, hosts), want);
    });
  }

  it('accepts the public push services of the default allowlist', () => {
    for (const e of ['https://fcm.googleapis.com/fcm/send/x', 'https://updates.push.services.mozilla.com/wpush/v2/x', 'https://web.push.apple.com/x']) {
      assert.equal(checkPushEndpoint(e, DEFAULT_PUSH_HOSTS), null, e);
    }
  });

  it('ignores malformed allowlist entries', () => {
    assert.notEqual(checkPushEndpoint('https://x.example/', ['', ' ', '*.', 'x.example:port', ':443']), null);
    // Text the URL parser would cut at is no host: `x.example/y` is not `x.example`.
    for (const bad of ['x.example/y', 'x.example?y', 'x.example#y', 'u@x.example', 'x.example\\y', 'x.exa%6dple']) {
      assert.notEqual(checkPushEndpoint('https://x.example/', [bad]), null, bad);
      assert.equal(isPushHostEntry(bad), false, bad);
    }
  });
});
