/**
 * Schema of the SQLite auth store, versioned in code: migration i brings the file from
 * `user_version` i to i+1, inside one transaction with the version bump, so a crash leaves
 * the file at a whole version. Migrations are append-only: never edit a released one.
 */
import type { Database } from 'better-sqlite3';

export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    box_key TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX devices_user ON devices(user_id);
  CREATE INDEX devices_revoked ON devices(revoked_at) WHERE revoked_at IS NOT NULL;

  CREATE TABLE nonces (
    nonce TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX nonces_expiry ON nonces(expires_at);

  CREATE TABLE families (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX families_device ON families(device);
  CREATE INDEX families_revoked ON families(revoked_at) WHERE revoked_at IS NOT NULL;

  CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY,
    family TEXT NOT NULL REFERENCES families(id),
    state TEXT NOT NULL CHECK (state IN ('live', 'rotated')),
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    guid TEXT,
    answer TEXT
  );
  CREATE INDEX refresh_family ON refresh_tokens(family);
  CREATE INDEX refresh_expiry ON refresh_tokens(expires_at);

  CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    key_epoch INTEGER NOT NULL,
    rotation_required INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX sites_owner ON sites(owner);

  CREATE TABLE grants (
    hash TEXT PRIMARY KEY,
    jws TEXT NOT NULL,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    site TEXT NOT NULL,
    logs TEXT NOT NULL,
    rights TEXT NOT NULL,
    iat INTEGER NOT NULL,
    exp INTEGER,
    prf TEXT,
    declared_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX grants_issuer ON grants(issuer);
  CREATE INDEX grants_subject ON grants(subject);
  CREATE INDEX grants_prf ON grants(prf) WHERE prf IS NOT NULL;

  CREATE TABLE access (
    user_id TEXT NOT NULL,
    site TEXT NOT NULL,
    grant_hash TEXT NOT NULL,
    logs TEXT NOT NULL,
    rights TEXT NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, site, grant_hash)
  );
  CREATE INDEX access_grant ON access(grant_hash);
  CREATE INDEX access_expiry ON access(expires_at) WHERE expires_at IS NOT NULL;

  CREATE TABLE identities (
    email TEXT NOT NULL,
    provider TEXT NOT NULL,
    device TEXT NOT NULL,
    user_id TEXT NOT NULL,
    attested_at INTEGER NOT NULL,
    PRIMARY KEY (email, provider, device)
  );
  CREATE INDEX identities_user ON identities(user_id);
  `,
  // 2: OIDC logins and attestations, profiles, claims, envelopes.
  `
  ALTER TABLE identities ADD COLUMN attestation TEXT;
  CREATE INDEX identities_email ON identities(email);

  -- An email belongs to one user (the first to sign in with it).
  CREATE TABLE emails (
    email TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  INSERT OR IGNORE INTO emails (email, user_id, created_at)
    SELECT email, user_id, MIN(attested_at) FROM identities GROUP BY email, user_id ORDER BY MIN(attested_at);

  CREATE TABLE oidc_logins (
    state TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    device TEXT NOT NULL,
    box_key TEXT,
    name TEXT NOT NULL,
    verifier TEXT,
    oidc_nonce TEXT NOT NULL,
    redirect TEXT,
    phase TEXT NOT NULL CHECK (phase IN ('started', 'callback', 'done')),
    outcome TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX oidc_logins_expiry ON oidc_logins(expires_at);

  CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE subscriptions (
    user_id TEXT NOT NULL,
    device TEXT NOT NULL,
    site TEXT NOT NULL,
    muted_until INTEGER,
    PRIMARY KEY (device, site)
  );
  CREATE INDEX subscriptions_user ON subscriptions(user_id);
  CREATE TABLE push_endpoints (
    device TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL
  );
  CREATE INDEX push_endpoints_user ON push_endpoints(user_id);

  CREATE TABLE claim_counters (
    namespace TEXT PRIMARY KEY,
    last INTEGER NOT NULL
  );
  CREATE TABLE claims (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name),
    UNIQUE (namespace, id)
  );
  CREATE INDEX claims_user ON claims(user_id);

  CREATE TABLE envelopes (
    id TEXT PRIMARY KEY,
    to_device TEXT NOT NULL,
    from_device TEXT NOT NULL,
    data TEXT NOT NULL,
    at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX envelopes_to ON envelopes(to_device, at);
  CREATE INDEX envelopes_expiry ON envelopes(expires_at);
  `,
  // 3: the key directory: user key chains, device certificates; site lookups for members.
  `
  CREATE TABLE user_keys (
    user_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    public_key TEXT NOT NULL,
    sig TEXT NOT NULL,
    prev_sig TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, version)
  );
  CREATE TABLE device_certificates (
    device TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    certificate TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX device_certificates_user ON device_certificates(user_id);
  CREATE INDEX access_site ON access(site);
  CREATE INDEX grants_site ON grants(site);
  `,
  // 4: the (user, site) pairs that lost access, so tail nodes that missed the bus event learn it.
  `
  CREATE TABLE access_revocations (
    user_id TEXT NOT NULL,
    site TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, site)
  );
  CREATE INDEX access_revocations_at ON access_revocations(revoked_at);
  `,
  // 5: the device's signature of its box key, kept with the device (and with a login until it links one).
  `
  ALTER TABLE devices ADD COLUMN box_sig TEXT;
  ALTER TABLE oidc_logins ADD COLUMN box_sig TEXT;
  `,
  // 6: grants by subject whatever the case of ASCII letters (NOCASE folds only those), for
  // `email:` subjects, which compare as normalizeEmail does.
  `
  CREATE INDEX grants_subject_nocase ON grants(subject COLLATE NOCASE);
  `,
];

/** Brings the database to the newest version; refuses a file newer than this code. */
export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`auth store schema version ${current} is newer than this server (${MIGRATIONS.length})`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    const sql = MIGRATIONS[v] ?? '';
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
