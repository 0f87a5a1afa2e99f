/** Identifier shapes of PROTOCOL.md "Conventions". */

/**
 * 32 bytes in base64url as an encoder writes them: 43 characters, the last of which carries
 * two unused bits that must be zero (see `hasCanonicalTail` in b64.ts).
 */
export const B64URL_32_PATTERN = '^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$';
export const DEVICE_ID_PATTERN = B64URL_32_PATTERN;
export const BOX_KEY_PATTERN = B64URL_32_PATTERN;
export const USER_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const SITE_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const LOG_NAME_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';

export const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN);
export const SITE_ID_RE = new RegExp(SITE_ID_PATTERN);
export const LOG_NAME_RE = new RegExp(LOG_NAME_PATTERN);

export const RIGHTS = ['read', 'write', 'admin'] as const;
export type Right = (typeof RIGHTS)[number];
