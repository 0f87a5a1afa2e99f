/**
 * How a grant lookup by subject compares: `email:` subjects as emails compare
 * (normalizeEmail: ASCII letters in any case), every other subject exactly (device and user
 * ids are case-sensitive).
 */
import { normalizeEmail } from '../protocol/email.js';

const EMAIL = 'email:';

/** The subjects to match exactly, and the `email:` ones normalized, to match in any ASCII case. */
export function splitSubjects(subjects: readonly string[]): { exact: string[]; emails: string[] } {
  const exact: string[] = [];
  const emails: string[] = [];
  for (const s of subjects) {
    if (s.startsWith(EMAIL)) emails.push(EMAIL + normalizeEmail(s.slice(EMAIL.length)));
    else exact.push(s);
  }
  return { exact, emails };
}
