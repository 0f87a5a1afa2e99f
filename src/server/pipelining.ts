/**
 * A bound on HTTP/1.1 pipelining. Node's HTTP server hands every request it parses to the
 * handler at once, however many earlier answers on the connection are still unsent, and
 * parses a whole read (64 KiB: some 1 700 small requests) before it looks at the socket's
 * backpressure. A client that pipelines thousands of requests and never reads the answers
 * thus makes the server run all of them and hold all their answers, stalling everyone else
 * for as long as it keeps writing. Node offers no option for this (`maxRequestsPerSocket`
 * caps a connection's requests over its whole life, which only makes keep-alive clients
 * reconnect, and still runs a pipelined batch in full).
 *
 * Guarantee: at most MAX_UNANSWERED_PER_CONNECTION requests of one connection are being
 * run or have answers not yet handed to the kernel at any time. A request over that bound
 * closes the connection at once, without running it or the ones after it; the answers
 * still unsent are dropped with it. Browsers and HTTP client libraries do not pipeline,
 * or only a few requests deep, so no client that reads its answers reaches the bound.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Requests of one connection that may be running or waiting for their answers to be sent. */
export const MAX_UNANSWERED_PER_CONNECTION = 16;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Wraps an HTTP request handler with the bound above; `onCut` hears of each connection
 * closed for it.
 */
export function boundPipelining(handler: Handler, onCut: () => void): Handler {
  const unanswered = new WeakMap<Socket, number>();
  return (req, res) => {
    const socket = req.socket;
    // The rest of a read the connection was closed in: nothing more of it is run.
    if (socket.destroyed) return;
    const n = (unanswered.get(socket) ?? 0) + 1;
    if (n > MAX_UNANSWERED_PER_CONNECTION) {
      onCut();
      socket.destroy();
      return;
    }
    unanswered.set(socket, n);
    // `close` follows the answer's last byte reaching the kernel, or the connection's end.
    res.once('close', () => unanswered.set(socket, (unanswered.get(socket) ?? 1) - 1));
    handler(req, res);
  };
}
