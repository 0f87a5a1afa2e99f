/**
 * The confirmation code of an OpenID Connect login. The browser that signed in at the
 * provider gets it (on the callback's page, or in the redirect to the app), and the device
 * must present it to complete. Without it, whoever started a login could send its URL to
 * someone else and collect that person's account once they signed in (login CSRF): the state
 * names the login, the code proves the sign-in happened where the login was started.
 *
 * Eight characters of Crockford's base32 (no I, L, O or U), shown as `XXXX-XXXX`: 40 bits,
 * typed in a few seconds; guessing is bounded by the per-login rate limit of /oidc/complete
 * (a login lives 10 minutes). Only its SHA-256 is stored.
 */
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CONFIRMATION_LENGTH = 8;

export function newConfirmationCode(): { code: string; hash: string } {
  let raw = '';
  for (let i = 0; i < CONFIRMATION_LENGTH; i++) raw += ALPHABET[randomInt(ALPHABET.length)];
  return { code: `${raw.slice(0, 4)}-${raw.slice(4)}`, hash: hashOf(raw) };
}

/** What a person may type: any case, with or without the dash and spaces; I and L read as 1, O as 0. */
function normalizeConfirmation(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
}

function hashOf(normalized: string): string {
  return createHash('sha256').update(normalized).digest('base64url');
}

export function confirmationMatches(typed: string, hash: string): boolean {
  const given = Buffer.from(hashOf(normalizeConfirmation(typed)));
  const want = Buffer.from(hash);
  return given.length === want.length && timingSafeEqual(given, want);
}
