/**
 * Requests that ask to upgrade to something other than a WebSocket are answered as the
 * plain HTTP requests they also are.
 *
 * An Upgrade header is an offer the server may ignore (RFC 9110 §7.8): `curl --http2` and
 * Java's HttpClient send `Upgrade: h2c` on every http:// request and expect an HTTP/1.1
 * answer when the server does not switch. Node 20 hands every request with an Upgrade
 * header to the server's 'upgrade' event, past the request handler, so without this they
 * would all get a 404.
 *
 * Guarantees:
 * - Such a request runs through the same handler as any other, and its connection is
 *   closed once the answer is out (`connection: close`): the socket has left Node's HTTP
 *   parser, so nothing after the request is read on it.
 * - Its body is taken when `content-length` gives it, up to `maxBodyBytes` (more: 413); a
 *   chunked body is refused with 400 (send it without the Upgrade header). A client that
 *   does not send the whole body within `requestMs` of the headers is cut.
 */
import { IncomingMessage, ServerResponse, type RequestListener } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { endSocket, refuseSocket } from '../protocol/raw-error-response.js';

/** Whether the request asks for a WebSocket (the one upgrade this server makes). */
export function asksForWebSocket(req: IncomingMessage): boolean {
  const offer = req.headers.upgrade;
  return offer !== undefined && offer.split(',').some((p) => p.trim().toLowerCase() === 'websocket');
}

/**
 * A request like `req` whose body is still to come: Node ended `req` at its headers (an
 * upgrade's body is the new protocol's), so its body is read here, from `head` on.
 */
function reopened(req: IncomingMessage, socket: Socket): IncomingMessage {
  const r = new IncomingMessage(socket);
  r.method = req.method;
  r.url = req.url;
  r.httpVersionMajor = req.httpVersionMajor;
  r.httpVersionMinor = req.httpVersionMinor;
  r.httpVersion = req.httpVersion;
  r.headers = req.headers;
  r.rawHeaders = req.rawHeaders;
  return r;
}

/** Serves `req` (whose Upgrade is not a WebSocket) through `handler`, on a response of its own. */
export function servePlainUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, handler: RequestListener, limits: { maxBodyBytes: number; requestMs: number }): void {
  if (req.headers['transfer-encoding'] !== undefined) {
    return refuseSocket(socket, 'BAD_REQUEST', 'a chunked body with an Upgrade header is not taken: send the request without Upgrade');
  }
  const declared = req.headers['content-length'];
  const length = declared === undefined ? 0 : Number(declared);
  if (!Number.isSafeInteger(length) || length < 0) return refuseSocket(socket, 'BAD_REQUEST', 'content-length: not a length');
  if (length > limits.maxBodyBytes) return refuseSocket(socket, 'TOO_LARGE', `body: at most ${limits.maxBodyBytes} bytes`);

  const s = socket as Socket;
  // The socket left the HTTP server's time limits with the upgrade.
  s.setTimeout(limits.requestMs, () => s.destroy());
  const r = reopened(req, s);
  const res = new ServerResponse(r);
  res.shouldKeepAlive = false;
  res.assignSocket(s);
  res.once('finish', () => {
    res.detachSocket(s);
    endSocket(s, '');
  });
  // The body: what came with the headers, then the socket's data, to `length` bytes.
  let got = 0;
  const take = (chunk: Buffer) => {
    const part = chunk.subarray(0, length - got);
    got += part.length;
    if (part.length > 0) r.push(part);
    if (got >= length) {
      s.off('data', take);
      r.complete = true;
      r.push(null);
    }
  };
  take(head);
  if (got < length) s.on('data', take);
  handler(r, res);
}
