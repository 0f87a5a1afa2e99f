/**
 * Validation at the boundary with TypeBox's compiled checkers: the fastify validator compiler
 * of auth's routes (so HTTP bodies are checked exactly, with no type coercion), and the same
 * check for bus payloads and grant contents. Failures name the field.
 */
import type { TSchema, Static } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';
import type { FastifySchemaCompiler } from 'fastify';
import { decodeJwsJson } from '../protocol/jws-json.js';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker<T extends TSchema>(schema: T): TypeCheck<T> {
  let c = compiled.get(schema);
  if (c === undefined) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c);
  }
  return c as TypeCheck<T>;
}

/** An Ajv-shaped error, as fastify's validation errors carry (the HTTP error mapper reads it). */
export interface FieldError {
  instancePath: string;
  keyword: string;
  params: { missingProperty?: string };
  message: string;
}

/** The first problem of `value` against `schema`, or null when it conforms. */
export function firstError(schema: TSchema, value: unknown): FieldError | null {
  const c = checker(schema);
  if (c.Check(value)) return null;
  const e = c.Errors(value).First();
  if (e === undefined) return { instancePath: '', keyword: 'type', params: {}, message: 'invalid' };
  if (e.type === ValueErrorType.ObjectRequiredProperty) {
    const cut = e.path.lastIndexOf('/');
    return { instancePath: e.path.slice(0, cut), keyword: 'required', params: { missingProperty: e.path.slice(cut + 1) }, message: 'required' };
  }
  // A pattern is told in the words its schema gives (`expected`), not as a regular expression.
  const words = (e.schema as { expected?: unknown }).expected;
  if (e.type === ValueErrorType.StringPattern) {
    const message = typeof words === 'string' ? `expected ${words}` : `expected a string matching ${String((e.schema as { pattern?: unknown }).pattern)}`;
    return { instancePath: e.path, keyword: 'pattern', params: {}, message };
  }
  return { instancePath: e.path, keyword: 'schema', params: {}, message: e.message.charAt(0).toLowerCase() + e.message.slice(1) };
}

/** "where.field: problem" for a value that does not conform, else null. */
export function describeError(where: string, schema: TSchema, value: unknown): string | null {
  const e = firstError(schema, value);
  if (e === null) return null;
  const field = `${where}${e.instancePath.replaceAll('/', '.')}`;
  return e.keyword === 'required' ? `${field}: missing ${e.params.missingProperty ?? ''}` : `${field}: ${e.message}`;
}

/**
 * A compact JWS part (`where`: "grant.header", say) decoded strictly (no key given twice,
 * see jws-json.ts) and checked against `schema`: its value, or a message naming the problem.
 */
export function readJwsPart<T extends TSchema>(where: string, schema: T, part: string): { ok: true; value: Static<T> } | { ok: false; message: string } {
  const decoded = decodeJwsJson(part);
  if (!decoded.ok) return { ok: false, message: `${where}: ${decoded.problem}` };
  const problem = describeError(where, schema, decoded.value);
  return problem === null ? { ok: true, value: decoded.value as Static<T> } : { ok: false, message: problem };
}

export function conforms<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  return checker(schema).Check(value);
}

/** Fastify validator compiler: TypeBox check, first error reported in Ajv's shape. */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema }) => {
  const c = checker(schema);
  return (data: unknown) => {
    if (c.Check(data)) return true;
    const e = firstError(schema, data);
    return { error: [e ?? { instancePath: '', keyword: 'type', params: {}, message: 'invalid' }] } as unknown as { error: Error };
  };
};
