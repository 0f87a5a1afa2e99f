/**
 * How email addresses compare (identities, `email:` grant subjects, key lookups): outer
 * whitespace dropped and ASCII letters lower-cased, nothing else. Unicode case mapping is
 * deliberately not used: it folds distinct addresses into one (`\u212A`, the Kelvin sign,
 * lower-cases to `k`), so an address a provider verified for one person could name
 * another person's account. Addresses that differ in any non-ASCII character stay apart.
 */
export function normalizeEmail(email: string): string {
  return email.trim().replace(/[A-Z]+/g, (s) => s.toLowerCase());
}
