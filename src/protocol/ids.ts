/** Identifier shapes of PROTOCOL.md "Conventions". */
export const DEVICE_ID_PATTERN = '^[A-Za-z0-9_-]{43}$';
export const BOX_KEY_PATTERN = '^[A-Za-z0-9_-]{43}$';
export const USER_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const SITE_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const LOG_NAME_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';

export const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN);
export const SITE_ID_RE = new RegExp(SITE_ID_PATTERN);
export const LOG_NAME_RE = new RegExp(LOG_NAME_PATTERN);

export const RIGHTS = ['read', 'write', 'admin'] as const;
export type Right = (typeof RIGHTS)[number];
