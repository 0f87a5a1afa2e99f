/**
 * Values that name nothing usable are refused when `serve` starts, with the option named
 * and exit code 2, instead of failing later on a file system call or publishing a shard
 * URL that no client can parse.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/server/config.js';
import { runCli } from './child.js';

describe('option values', () => {
  it('--data and --host refuse an empty value given as a flag (an empty variable is unset)', () => {
    assert.throws(() => loadConfig(['--data='], {}), /--data needs a directory/);
    assert.throws(() => loadConfig(['--data', ''], {}), /--data needs a directory/);
    assert.throws(() => loadConfig(['--host='], {}), /--host needs an address/);
    assert.equal(loadConfig([], { DATAGROVE_DATA: '' }).dataDir, './data');
    assert.equal(loadConfig([], { DATAGROVE_HOST: '' }).host, '0.0.0.0');
    assert.equal(loadConfig(['--data', '/srv/dg'], {}).dataDir, '/srv/dg');
  });

  it('--tail-url must be a ws:// or wss:// URL that parses, without credentials or fragment', () => {
    for (const bad of ['ws://[::1', 'ws:///', 'ws://user:pw@dg.example.com/tail', 'wss://dg.example.com/tail#x', 'https://dg.example.com/tail']) {
      assert.throws(() => loadConfig(['--tail-url', bad], {}), /--tail-url must be a ws:\/\/ or wss:\/\/ URL/, bad);
      assert.throws(() => loadConfig([], { DATAGROVE_TAIL_URL: bad }), /--tail-url must be a ws:\/\/ or wss:\/\/ URL/, bad);
    }
    for (const good of ['ws://127.0.0.1:8081/tail', 'wss://tail-2.dg.example.com/tail', 'wss://[::1]:8443/tail']) {
      assert.equal(loadConfig(['--tail-url', good], {}).tailUrl, good);
    }
  });

  it('serve --data= exits 2 with one line naming the option', async () => {
    const r = await runCli(['serve', '--data=', '--port', '0']);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /^datagrove: --data needs a directory/);
    assert.doesNotMatch(r.output, /ENOENT|\n\s+at /);
  });
});
