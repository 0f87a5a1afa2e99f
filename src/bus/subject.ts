import { DgError } from '../protocol/errors.js';

/**
 * Bus subjects: dot-separated tokens of printable ASCII, without wildcards. NATS would
 * accept `*` and `>` on subscribe, but the in-process bus matches subjects exactly, so
 * wildcards would make the two buses disagree; they are refused on both publish and
 * subscribe. Whitespace would break the NATS protocol line.
 */
const TOKEN = /^[!-)+-=?-~]+$/; // printable ASCII (0x21-0x7e) except '*' (0x2a) and '>' (0x3e)
const MAX_SUBJECT_LENGTH = 256;
const QUEUE = /^[!-~]{1,64}$/;

export function isValidSubject(subject: string): boolean {
  if (subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH) return false;
  return subject.split('.').every((token) => TOKEN.test(token));
}

/** Throws DgError BAD_REQUEST unless `subject` is a valid bus subject. */
export function assertSubject(subject: string): void {
  if (typeof subject !== 'string' || !isValidSubject(subject)) {
    throw new DgError('BAD_REQUEST', `invalid bus subject ${JSON.stringify(String(subject).slice(0, 80))}`);
  }
}

/** Throws DgError BAD_REQUEST unless `queue` is a valid queue group name (one printable ASCII word). */
export function assertQueue(queue: string): void {
  if (typeof queue !== 'string' || !QUEUE.test(queue)) {
    throw new DgError('BAD_REQUEST', `invalid bus queue group ${JSON.stringify(String(queue).slice(0, 80))}`);
  }
}
