/**
 * HTTP pipelining: a client that writes many requests on one connection and never reads
 * the answers must not stall the server nor grow it. The attack runs against a real
 * `datagrove serve` process, so its memory is the server's alone.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MAX_UNANSWERED_PER_CONNECTION } from '../../src/server/pipelining.js';
import { tempDir } from '../helpers/server.js';
import { freePort, sleep, spawnCli, waitHttp } from './child.js';

/** The resident memory of process `pid`, in MB (Linux /proc). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** Milliseconds `url` takes to answer 200, or Infinity when it does not within `limitMs`. */
async function answerMs(url: string, limitMs: number): Promise<number> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(limitMs) });
    await res.arrayBuffer();
    return res.status === 200 ? performance.now() - t0 : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** Opens a connection that writes `count` pipelined GETs of `path` and never reads. */
function flood(port: number, path: string, count: number): Socket {
  const s = connect(port, '127.0.0.1');
  s.pause();
  s.on('error', () => {});
  const burst = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(100));
  s.on('connect', () => {
    let sent = 0;
    const pump = (): void => {
      while (sent < count) {
        sent += 100;
        if (!s.write(burst)) return void s.once('drain', pump);
      }
    };
    pump();
  });
  return s;
}

/** Writes `text` on a fresh connection and resolves with everything read until it closes. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got));
  });
}

describe('HTTP pipelining', { skip: existsSync('/proc/self/status') ? false : 'needs /proc to read the server process memory' }, async () => {
  const port = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--data', join(tempDir(), 'data'), '--demo=false', '--log-level', 'warn']);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(child, `${url}/ready`);
  const pid = child.proc.pid as number;

  it('stays responsive and bounded while 8 connections pipeline 2 000 GET /metrics each and never read', async () => {
    await (await fetch(`${url}/metrics`)).text();
    const before = rssMb(pid);
    const socks = Array.from({ length: 8 }, () => flood(port, '/metrics', 2000));
    const waits: number[] = [];
    let peak = before;
    try {
      for (let i = 0; i < 8; i++) {
        await sleep(250);
        waits.push(await answerMs(`${url}/health`, 5000));
        peak = Math.max(peak, rssMb(pid));
      }
    } finally {
      for (const s of socks) s.destroy();
    }
    const slowest = Math.max(...waits);
    assert.ok(slowest < 1000, `/health took ${waits.map((w) => Math.round(w)).join(', ')} ms during the flood`);
    assert.ok(peak - before < 64, `server memory grew from ${Math.round(before)} to ${Math.round(peak)} MB`);
    // Nothing goes on after the attacker left.
    assert.ok((await answerMs(`${url}/health`, 1000)) < 1000);
  });

  it('answers requests pipelined within the bound, in order', async () => {
    const n = MAX_UNANSWERED_PER_CONNECTION;
    const req = (path: string, last: boolean) => `GET ${path} HTTP/1.1\r\nHost: x\r\n${last ? 'Connection: close\r\n' : ''}\r\n`;
    const paths = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? '/health' : '/metrics'));
    const got = await exchange(port, paths.map((p, i) => req(p, i === n - 1)).join(''));
    const statuses = [...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    assert.deepEqual(statuses, paths.map(() => '200'));
    // Each answer is the one asked for, in the order asked.
    const kinds = got.split(/HTTP\/1\.1 200 /).slice(1).map((part) => (part.includes('{"ok":true}') ? '/health' : '/metrics'));
    assert.deepEqual(kinds, paths);
  });

  it('closes a connection with more requests waiting for their answers than the bound', async () => {
    const n = MAX_UNANSWERED_PER_CONNECTION * 4;
    const got = await exchange(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n));
    const answered = [...got.matchAll(/HTTP\/1\.1 200 /g)].length;
    assert.ok(answered <= MAX_UNANSWERED_PER_CONNECTION, `${answered} answers on one connection`);
    const closes = await (await fetch(`${url}/metrics`)).text();
    assert.match(closes, /^datagrove_http_pipeline_closes_total [1-9]/m);
  });
});
