/**
 * Where the browser may be sent after an OIDC callback: an http(s) URL whose origin is on the
 * CORS allowlist (DATAGROVE_ORIGINS, `*` not counting: it would make the server an open
 * redirector) or is the server's public URL. Checked when the login starts.
 */
import { DgError } from '../../protocol/errors.js';

export function checkRedirect(redirect: string, origins: readonly string[], publicUrl: string): string {
  let url: URL;
  try {
    url = new URL(redirect);
  } catch {
    throw new DgError('BAD_REQUEST', 'redirect: not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DgError('BAD_REQUEST', 'redirect: must be http: or https:');
  if (url.username !== '' || url.password !== '') throw new DgError('BAD_REQUEST', 'redirect: must not carry credentials');
  const allowed = new Set(origins.filter((o) => o !== '*'));
  try {
    allowed.add(new URL(publicUrl).origin);
  } catch {
    // no public URL origin to allow
  }
  if (!allowed.has(url.origin)) throw new DgError('BAD_REQUEST', `redirect: origin ${url.origin} is not on the allowlist (DATAGROVE_ORIGINS) nor the public URL`);
  return url.href;
}

/**
 * `redirect` with `dg_state` added to its query, and `dg_code` (the confirmation code the
 * device presents to complete) on success or `dg_error` on failure.
 */
export function redirectWithState(redirect: string, state: string, result: { code: string } | { error: string }): string {
  const url = new URL(redirect);
  url.searchParams.set('dg_state', state);
  if ('code' in result) url.searchParams.set('dg_code', result.code);
  else url.searchParams.set('dg_error', result.error);
  return url.href;
}
