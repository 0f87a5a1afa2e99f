/**
 * The client address of an upgrade request under --trust-proxy: the same answer Fastify
 * gives an HTTP request from the same peer with the same X-Forwarded-For.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { clientAddressOf } from '../../src/server/client-address.js';

function req(peer: string, xff?: string | string[]): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } } as unknown as IncomingMessage;
}

/** What Fastify (proxy-addr) says the client is, for the same peer, header and trust list. */
async function fastifyIp(trust: string[], peer: string, xff?: string): Promise<string> {
  const app = Fastify({ trustProxy: trust.length > 0 ? trust : false });
  app.get('/', async (r) => r.ip);
  const res = await app.inject({ method: 'GET', url: '/', remoteAddress: peer, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
  await app.close();
  return res.body;
}

const CASES: [string[], string, string | undefined, string][] = [
  // [trust, peer, X-Forwarded-For, client]
  [[], '203.0.113.9', '198.51.100.1', '203.0.113.9'],
  [['loopback'], '127.0.0.1', '198.51.100.1', '198.51.100.1'],
  [['loopback'], '::1', '2001:db8::5', '2001:db8::5'],
  [['loopback'], '::ffff:127.0.0.1', '198.51.100.1', '198.51.100.1'],
  [['loopback'], '203.0.113.9', '198.51.100.1', '203.0.113.9'],
  [['loopback'], '127.0.0.1', undefined, '127.0.0.1'],
  [['loopback', 'uniquelocal'], '127.0.0.1', '198.51.100.1, 10.0.0.7', '198.51.100.1'],
  [['loopback'], '127.0.0.1', '198.51.100.1, 10.0.0.7', '10.0.0.7'],
  [['10.1.0.0/16'], '10.1.2.3', '192.0.2.4', '192.0.2.4'],
  [['10.1.0.0/16'], '10.2.2.3', '192.0.2.4', '10.2.2.3'],
  [['10.1.2.3'], '10.1.2.3', '192.0.2.4, 10.1.2.3', '192.0.2.4'],
  [['loopback', 'linklocal'], '127.0.0.1', '169.254.1.1', '169.254.1.1'],
  [['loopback'], '127.0.0.1', '127.0.0.5, 127.0.0.6', '127.0.0.5'],
];

describe('client address of an upgrade', () => {
  for (const [trust, peer, xff, want] of CASES) {
    it(`trust [${trust.join(', ')}], peer ${peer}, X-Forwarded-For ${xff ?? '(none)'}: ${want}`, async () => {
      assert.equal(clientAddressOf(trust)(req(peer, xff)), want);
      assert.equal(await fastifyIp(trust, peer, xff), want, 'Fastify agrees');
    });
  }

  it('joins repeated X-Forwarded-For headers and stops at a hop that is not an address', () => {
    const of = clientAddressOf(['loopback']);
    assert.equal(of(req('127.0.0.1', ['198.51.100.1', '127.0.0.2'])), '198.51.100.1');
    assert.equal(of(req('127.0.0.1', 'garbage, 127.0.0.2')), '127.0.0.2');
  });
});
