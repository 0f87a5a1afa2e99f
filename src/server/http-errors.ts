/**
 * The HTTP error shape `{error:{code, message}}` for every failure, including fastify's own
 * (validation, body size, content type, unknown route, rate limit, a URL that does not
 * decode, a path parameter over the router's length limit) and Node's for requests that
 * never became one (malformed HTTP, headers too large, too slow). Internal causes go to the
 * log, never to the client.
 */
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DgError, ERROR_STATUS, type ErrorCode } from '../protocol/errors.js';
import { rawErrorResponse } from '../protocol/raw-error-response.js';

export function sendError(reply: FastifyReply, code: ErrorCode, message: string, retryAfter?: number): FastifyReply {
  if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
  return reply.code(ERROR_STATUS[code]).send({ error: { code, message } });
}

function classify(err: FastifyError): { code: ErrorCode; message: string } | null {
  if (err.validation !== undefined) {
    const v = err.validation[0];
    const field = v === undefined ? '' : `${err.validationContext ?? 'body'}${v.instancePath.replaceAll('/', '.')}`;
    const detail = v?.keyword === 'required' ? `missing ${String((v.params as { missingProperty?: string }).missingProperty)}` : (v?.message ?? 'invalid');
    return { code: 'BAD_REQUEST', message: `${field || 'body'}: ${detail}` };
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'TOO_LARGE', message: 'body over the size limit' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'BAD_REQUEST', message: 'content-type must be application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { code: 'BAD_REQUEST', message: 'body: empty JSON body' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { code: 'BAD_REQUEST', message: 'body: not valid JSON' };
    default:
      break;
  }
  if (err.statusCode === 429) return { code: 'RATE_LIMITED', message: 'too many requests' };
  if (err instanceof SyntaxError || err.statusCode === 400) return { code: 'BAD_REQUEST', message: 'body: not valid JSON' };
  if (err.statusCode === 413) return { code: 'TOO_LARGE', message: 'body over the size limit' };
  if (err.statusCode === 415) return { code: 'BAD_REQUEST', message: 'content-type must be application/json' };
  return null;
}

export function installErrorHandlers(app: FastifyInstance, onError: (code: ErrorCode) => void): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof DgError) {
      onError(err.code);
      if (err.code === 'INTERNAL') req.log.error({ err: err.cause ?? err }, 'internal error');
      return sendError(reply, err.code, err.message, err.retryAfter);
    }
    const known = classify(err);
    if (known !== null) {
      onError(known.code);
      return sendError(reply, known.code, known.message);
    }
    onError('INTERNAL');
    req.log.error({ err }, 'unhandled error');
    return sendError(reply, 'INTERNAL', 'internal error');
  });
  app.setNotFoundHandler((req, reply) => {
    const miss = routeMiss(req.method, req.url);
    onError(miss.code);
    return sendError(reply, miss.code, miss.message);
  });
}

/** Longest path segment a URL may have (the router's limit for a path parameter). */
export const MAX_PATH_SEGMENT = 100;
/** Characters of the path a NOT_FOUND message repeats, at most. */
const ECHOED_PATH = 200;

/**
 * A request no route takes: NOT_FOUND naming it, or BAD_REQUEST when a path segment is
 * over MAX_PATH_SEGMENT characters (as on routes with a parameter, where the router refuses it).
 */
export function routeMiss(method: string | undefined, url: string | undefined): { code: ErrorCode; message: string } {
  const path = (url ?? '').split('?')[0] ?? '';
  if (path.split('/').some((segment) => segment.length > MAX_PATH_SEGMENT)) {
    return { code: 'BAD_REQUEST', message: `url: a path segment is over ${MAX_PATH_SEGMENT} characters` };
  }
  const shown = path.length > ECHOED_PATH ? `${path.slice(0, ECHOED_PATH)}…` : path;
  return { code: 'NOT_FOUND', message: `no route ${method ?? 'GET'} ${shown}` };
}

/**
 * fastify's `frameworkErrors`: errors raised before routing (a URL whose escapes do not
 * decode, a path parameter longer than the router allows), answered in the error shape.
 */
export function frameworkErrorHandler(onError: (code: ErrorCode) => void) {
  return (err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void => {
    const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? `url: a path segment is over ${MAX_PATH_SEGMENT} characters` : 'url: not a valid URL';
    onError('BAD_REQUEST');
    void sendError(reply, 'BAD_REQUEST', message);
  };
}

/** How a connection-level failure is answered: the code, and the message of its error shape. */
function classifyClientError(err: NodeJS.ErrnoException): { code: ErrorCode; message: string } {
  if (err.code === 'HPE_HEADER_OVERFLOW') return { code: 'TOO_LARGE', message: 'headers over the size limit' };
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { code: 'BAD_REQUEST', message: 'request not complete in time' };
  return { code: 'BAD_REQUEST', message: 'malformed HTTP request' };
}

/**
 * Node's `clientError`: the bytes on a connection did not make a request (bad framing,
 * headers over the size limit, too slow). Answered in the error shape, then the connection is
 * closed; nothing is written to a socket that is already gone.
 */
export function clientErrorHandler(onError: (code: ErrorCode) => void) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const { code, message } = classifyClientError(err);
    onError(code);
    if (socket.writable) socket.write(rawErrorResponse(code, message));
    socket.destroy();
  };
}
