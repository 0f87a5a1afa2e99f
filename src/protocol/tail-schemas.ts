/**
 * The frames of the Tail API (PROTOCOL.md "Tail API"): one TypeBox schema per operation,
 * compiled once, so the server validates every frame at the boundary and clients share the
 * types. Unknown extra fields are allowed (a later protocol version may add some).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { GrantRef } from './auth-schemas.js';
import { DEVICE_ID_PATTERN, LOG_NAME_PATTERN, SITE_ID_PATTERN, type Right } from './ids.js';

export const TAIL_SUBPROTOCOL = 'datagrove.v1';

/** A handle id: an opaque token the server made. */
export const HANDLE_PATTERN = '^[A-Za-z0-9_-]{1,32}$';
/** A write id: 1 to 128 printable ASCII characters (space included) chosen by the client, as `guid` in auth. */
export const WID_PATTERN = '^[\\x20-\\x7E]{1,128}$';

export const SIGNAL_KINDS = ['offer', 'answer', 'candidate', 'bye', 'data'] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

const Handle = Type.String({ pattern: HANDLE_PATTERN });
const Position = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const ConnectArgs = Type.Object({ token: Type.String({ minLength: 1, maxLength: 4096 }) });
export const LeaseArgs = Type.Object({
  site: Type.String({ pattern: SITE_ID_PATTERN }),
  log: Type.String({ pattern: LOG_NAME_PATTERN }),
  lead: Type.Optional(Type.Boolean()),
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
});
export const ReleaseArgs = Type.Object({ handle: Handle });
export const ReadArgs = Type.Object({
  handle: Handle,
  from: Position,
  // Any positive integer: larger than the cap (1000) counts as the cap.
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
});
/**
 * Entry count and size limits are checked after validation, so they answer TOO_LARGE. The
 * entries' base64url is checked while they are decoded (tail/entry-pack.ts), one pass
 * instead of a pattern test and a decode.
 */
export const WriteArgs = Type.Object({
  handle: Handle,
  at: Position,
  entries: Type.Array(Type.String(), { minItems: 1 }),
  wid: Type.Optional(Type.String({ pattern: WID_PATTERN, expected: '1 to 128 printable ASCII characters' })),
});
/** A handle's address for `signal` (an addition): the `peer` of a signal event it sent. */
export const SIGNAL_PEER_PATTERN = '^p[A-Za-z0-9_-]{12}$';

export const SignalArgs = Type.Object({
  handle: Handle,
  to: Type.Union([Type.String({ pattern: DEVICE_ID_PATTERN }), Type.Literal('leader'), Type.String({ pattern: SIGNAL_PEER_PATTERN })]),
  kind: Type.Union(SIGNAL_KINDS.map((k) => Type.Literal(k))),
  data: Type.Unknown(),
});
/** The grant as `POST /auth/v1/join` takes it (a compact JWS or a declared grant's hash), checked here so a bad one is answered at once. */
export const AttestArgs = Type.Object({ grant: GrantRef });
export const PingArgs = Type.Object({});

export type ConnectArgs = Static<typeof ConnectArgs>;
export type LeaseArgs = Static<typeof LeaseArgs>;
export type ReleaseArgs = Static<typeof ReleaseArgs>;
export type ReadArgs = Static<typeof ReadArgs>;
export type WriteArgs = Static<typeof WriteArgs>;
export type SignalArgs = Static<typeof SignalArgs>;
export type AttestArgs = Static<typeof AttestArgs>;

export const TAIL_OP_SCHEMAS = {
  connect: ConnectArgs,
  lease: LeaseArgs,
  release: ReleaseArgs,
  read: ReadArgs,
  write: WriteArgs,
  signal: SignalArgs,
  attest: AttestArgs,
  ping: PingArgs,
} as const satisfies Record<string, TSchema>;

export type TailOp = keyof typeof TAIL_OP_SCHEMAS;
export const TAIL_OPS = Object.keys(TAIL_OP_SCHEMAS) as TailOp[];

export interface TailOpArgs {
  connect: ConnectArgs;
  lease: LeaseArgs;
  release: ReleaseArgs;
  read: ReadArgs;
  write: WriteArgs;
  signal: SignalArgs;
  attest: AttestArgs;
  ping: Record<string, never>;
}

/** Compiled validators, one per op (compiled on first import, reused for every frame). */
export const TAIL_OP_CHECKS: { [K in TailOp]: TypeCheck<(typeof TAIL_OP_SCHEMAS)[K]> } = {
  connect: TypeCompiler.Compile(ConnectArgs),
  lease: TypeCompiler.Compile(LeaseArgs),
  release: TypeCompiler.Compile(ReleaseArgs),
  read: TypeCompiler.Compile(ReadArgs),
  write: TypeCompiler.Compile(WriteArgs),
  signal: TypeCompiler.Compile(SignalArgs),
  attest: TypeCompiler.Compile(AttestArgs),
  ping: TypeCompiler.Compile(PingArgs),
};

export function isTailOp(op: string): op is TailOp {
  return Object.hasOwn(TAIL_OP_SCHEMAS, op);
}

/** The first validation problem of `value` against `op`'s schema, naming the field; null when valid. */
export function tailArgsProblem(op: TailOp, value: unknown): string | null {
  const check = TAIL_OP_CHECKS[op] as TypeCheck<TSchema>;
  if (check.Check(value)) return null;
  const first = check.Errors(value).First();
  if (first === undefined) return 'invalid frame';
  const field = first.path === '' ? 'frame' : first.path.slice(1).replace(/\//g, '.');
  return `${field}: ${first.message}`;
}

// Replies (the result fields next to `re`).

export interface TailLimitsView {
  maxFrame: number;
  maxEntries: number;
  maxEntryBytes: number;
  maxHandles: number;
}
export interface ConnectReply {
  session: string;
  user: string;
  device: string;
  limits: TailLimitsView;
}
export type LeaseReply =
  | { handle: string; role: 'leader' | 'follower'; epoch: number; length: number; leader: string | null; peers: string[]; writers: string[] }
  | { needproof: true }
  | { redirect: string };
export interface ReadReply {
  from: number;
  entries: string[];
  length: number;
}
export type WriteReply = { length: number } | { nack: true; length: number } | { length: number; at: number; dup: true };
export interface AttestReply {
  site: string;
  logs: string[];
  rights: Right[];
}

// Events.

export type TailEvent =
  | { ev: 'tail'; handle: string; at: number; length: number; entries?: string[] }
  | { ev: 'leader'; handle: string; leader: string | null; epoch: number }
  | { ev: 'peer'; handle: string; device: string; state: 'join' | 'leave'; write?: boolean }
  | { ev: 'signal'; handle: string; from: string; peer?: string; kind: SignalKind; data: unknown }
  | { ev: 'revoke'; handle?: string; reason: string }
  | { ev: 'device'; device: string; name: string; identity?: string }
  | { ev: 'envelope'; id: string; from: string };

/** Close codes of the Tail API. */
export const TAIL_CLOSE = {
  abuse: 4400,
  unauthorized: 4401,
  revoked: 4403,
  slow: 4408,
  rateLimited: 4429,
  goingAway: 1001,
} as const;
