/**
 * The one registry of error codes (PROTOCOL.md, "Conventions"). HTTP replies carry
 * `{error:{code, message}}` with the status below; tail replies carry `error:{code, message}`.
 * `docs/protocol.md` lists the same table; a test keeps the two in agreement.
 */
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  UNKNOWN_OP: 400,
  UNAUTHORIZED: 401,
  REFRESH_REUSED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  TAKEN: 409,
  CONFLICT: 409,
  NOT_LEADER: 409,
  FENCED: 409,
  TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}

/**
 * The one error class. `message` is safe to show to clients: never put internal causes
 * in it; pass them as `cause`, which is logged and never sent.
 */
export class DgError extends Error {
  readonly code: ErrorCode;
  /** Seconds a client should wait before retrying (RATE_LIMITED, UNAVAILABLE). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DgError';
    this.code = code;
    this.retryAfter = options?.retryAfter;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** The wire form of any thrown value: DgError keeps its code, anything else is INTERNAL. */
export function toWireError(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof DgError) return err.toJSON();
  return { code: 'INTERNAL', message: 'internal error' };
}
