/**
 * Checks on what the server sends back, so a malformed or hostile reply becomes a clear
 * error instead of undefined values deep inside the SDK. Each check throws
 * DgError INTERNAL ("malformed reply: <field>") and otherwise returns the typed value.
 */
import { DgError, isErrorCode } from '../protocol/errors.js';

export type Obj = Record<string, unknown>;

function bad(field: string): never {
  throw new DgError('INTERNAL', `malformed reply: ${field}`);
}

export function asObj(v: unknown, field = 'body'): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(field);
  return v as Obj;
}

export function str(o: Obj, k: string): string {
  const v = o[k];
  if (typeof v !== 'string') bad(k);
  return v as string;
}

export function optStr(o: Obj, k: string): string | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') bad(k);
  return v as string;
}

export function nullableStr(o: Obj, k: string): string | null {
  const v = o[k];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string') bad(k);
  return v as string;
}

export function int(o: Obj, k: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(k);
  return v as number;
}

export function strArray(o: Obj, k: string): string[] {
  const v = o[k];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) bad(k);
  return v as string[];
}

export function bool(o: Obj, k: string): boolean {
  return o[k] === true;
}

/** The DgError of a wire error object `{code, message}` (unknown codes become INTERNAL). */
export function wireError(e: unknown, fallback = 'request failed', retryAfter?: number): DgError {
  const o = e !== null && typeof e === 'object' ? (e as Obj) : {};
  const code = isErrorCode(o.code) ? o.code : 'INTERNAL';
  const message = typeof o.message === 'string' ? o.message : fallback;
  return new DgError(code, message, retryAfter === undefined ? undefined : { retryAfter });
}
