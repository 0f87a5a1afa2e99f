/**
 * An HTTP error response written straight to a socket, for the paths that never reach the
 * web framework (a connection whose bytes are not HTTP, an upgrade refused before it became a
 * WebSocket). It has the same shape as every other HTTP error: `{error:{code, message}}` with
 * the status of the code, and it closes the connection.
 */
import type { Duplex } from 'node:stream';
import { ERROR_STATUS, type ErrorCode } from './errors.js';

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The bytes of the response; `headers` are added as given (lowercase names, no CR or LF). */
export function rawErrorResponse(code: ErrorCode, message: string, headers: Record<string, string> = {}): string {
  const status = ERROR_STATUS[code];
  const body = JSON.stringify({ error: { code, message } });
  let head = `HTTP/1.1 ${status} ${REASON[status] ?? 'Error'}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return `${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * Writes `text` to a socket outside the HTTP server (an upgrade's) and closes it once the
 * bytes are out, whether or not the client closes its side: such a socket is past the HTTP
 * server's time limits, so a half-open one would otherwise stay for good.
 */
export function endSocket(socket: Duplex, text: string): void {
  socket.once('finish', () => socket.destroy());
  socket.end(text);
}

/** Answers an upgrade's socket with an HTTP error in the usual shape, and closes it (endSocket). */
export function refuseSocket(socket: Duplex, code: ErrorCode, message: string, headers?: Record<string, string>): void {
  endSocket(socket, rawErrorResponse(code, message, headers));
}
