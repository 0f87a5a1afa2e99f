/**
 * Schema of the PostgreSQL auth store, versioned in code. Migration i brings the schema from
 * version i to i + 1; `auth_migrations` holds one row per applied version. All pending
 * migrations run in one transaction under an advisory lock, so nodes that open the same
 * schema together wait for each other and a crash leaves a whole version. Migrations are
 * append-only: never edit one that has been released.
 *
 * Tables are prefixed `auth_` because in a cluster they share a schema with the tail and
 * notify stores. Identifiers use the "C" collation so that "ordered by id" is the same
 * byte order as in the SQLite store, whatever the database's locale. Times are bigint
 * milliseconds (grant `iat`/`exp`: JWT seconds), as in the SQLite store.
 */
import { ASCII_LOWER } from './grants.js';
import type { Sql, TxSql } from './sql.js';
import { num } from './sql.js';

/** The migrations for the quoted schema `s`, in order. */
export function authMigrations(s: string): readonly string[] {
  return [
    `
    CREATE TABLE ${s}.auth_users (
      id         text COLLATE "C" PRIMARY KEY,
      created_at bigint NOT NULL
    );
    CREATE TABLE ${s}.auth_devices (
      id         text COLLATE "C" PRIMARY KEY,
      user_id    text COLLATE "C" NOT NULL REFERENCES ${s}.auth_users (id),
      box_key    text NOT NULL,
      name       text NOT NULL,
      created_at bigint NOT NULL,
      revoked_at bigint
    );
    CREATE INDEX auth_devices_user ON ${s}.auth_devices (user_id, created_at, id);
    CREATE INDEX auth_devices_revoked ON ${s}.auth_devices (revoked_at) WHERE revoked_at IS NOT NULL;

    CREATE TABLE ${s}.auth_nonces (
      nonce      text COLLATE "C" PRIMARY KEY,
      device     text COLLATE "C" NOT NULL,
      expires_at bigint NOT NULL
    );
    CREATE INDEX auth_nonces_expiry ON ${s}.auth_nonces (expires_at);

    CREATE TABLE ${s}.auth_families (
      id         text COLLATE "C" PRIMARY KEY,
      user_id    text COLLATE "C" NOT NULL,
      device     text COLLATE "C" NOT NULL,
      created_at bigint NOT NULL,
      revoked_at bigint
    );
    CREATE INDEX auth_families_device ON ${s}.auth_families (device);
    CREATE INDEX auth_families_revoked ON ${s}.auth_families (revoked_at) WHERE revoked_at IS NOT NULL;

    CREATE TABLE ${s}.auth_refresh_tokens (
      hash       text COLLATE "C" PRIMARY KEY,
      family     text COLLATE "C" NOT NULL REFERENCES ${s}.auth_families (id),
      state      text NOT NULL CHECK (state IN ('live', 'rotated')),
      expires_at bigint NOT NULL,
      rotated_at bigint,
      guid       text,
      answer     text
    );
    CREATE INDEX auth_refresh_family ON ${s}.auth_refresh_tokens (family);
    CREATE INDEX auth_refresh_expiry ON ${s}.auth_refresh_tokens (expires_at);

    CREATE TABLE ${s}.auth_sites (
      id                text COLLATE "C" PRIMARY KEY,
      owner             text COLLATE "C" NOT NULL,
      name              text NOT NULL,
      key_epoch         bigint NOT NULL CHECK (key_epoch >= 1),
      rotation_required boolean NOT NULL DEFAULT false,
      created_at        bigint NOT NULL
    );
    CREATE INDEX auth_sites_owner ON ${s}.auth_sites (owner, created_at, id);

    CREATE TABLE ${s}.auth_grants (
      hash        text COLLATE "C" PRIMARY KEY,
      jws         text NOT NULL,
      issuer      text COLLATE "C" NOT NULL,
      subject     text COLLATE "C" NOT NULL,
      site        text COLLATE "C" NOT NULL,
      logs        text[] NOT NULL,
      rights      text[] NOT NULL,
      iat         bigint NOT NULL,
      exp         bigint,
      prf         text COLLATE "C",
      declared_at bigint NOT NULL,
      revoked_at  bigint
    );
    CREATE INDEX auth_grants_issuer ON ${s}.auth_grants (issuer);
    CREATE INDEX auth_grants_subject ON ${s}.auth_grants (subject);
    CREATE INDEX auth_grants_prf ON ${s}.auth_grants (prf) WHERE prf IS NOT NULL;

    CREATE TABLE ${s}.auth_access (
      user_id    text COLLATE "C" NOT NULL,
      site       text COLLATE "C" NOT NULL,
      grant_hash text COLLATE "C" NOT NULL,
      logs       text[] NOT NULL,
      rights     text[] NOT NULL,
      expires_at bigint,
      created_at bigint NOT NULL,
      PRIMARY KEY (user_id, site, grant_hash)
    );
    CREATE INDEX auth_access_grant ON ${s}.auth_access (grant_hash);
    CREATE INDEX auth_access_expiry ON ${s}.auth_access (expires_at) WHERE expires_at IS NOT NULL;

    CREATE TABLE ${s}.auth_identities (
      email       text COLLATE "C" NOT NULL,
      provider    text COLLATE "C" NOT NULL,
      device      text COLLATE "C" NOT NULL,
      user_id     text COLLATE "C" NOT NULL,
      attested_at bigint NOT NULL,
      PRIMARY KEY (email, provider, device)
    );
    CREATE INDEX auth_identities_user ON ${s}.auth_identities (user_id);
    `,
    // 2: OIDC logins and attestations, profiles, claims, envelopes.
    `
    ALTER TABLE ${s}.auth_identities ADD COLUMN attestation text;
    CREATE INDEX auth_identities_email ON ${s}.auth_identities (email, attested_at);

    CREATE TABLE ${s}.auth_emails (
      email      text COLLATE "C" PRIMARY KEY,
      user_id    text COLLATE "C" NOT NULL,
      created_at bigint NOT NULL
    );
    INSERT INTO ${s}.auth_emails (email, user_id, created_at)
      SELECT DISTINCT ON (email) email, user_id, attested_at FROM ${s}.auth_identities ORDER BY email, attested_at;

    CREATE TABLE ${s}.auth_oidc_logins (
      state      text COLLATE "C" PRIMARY KEY,
      provider   text NOT NULL,
      device     text COLLATE "C" NOT NULL,
      box_key    text,
      name       text NOT NULL,
      verifier   text,
      oidc_nonce text NOT NULL,
      redirect   text,
      phase      text NOT NULL CHECK (phase IN ('started', 'callback', 'done')),
      outcome    text,
      created_at bigint NOT NULL,
      expires_at bigint NOT NULL
    );
    CREATE INDEX auth_oidc_logins_expiry ON ${s}.auth_oidc_logins (expires_at);

    CREATE TABLE ${s}.auth_profiles (
      user_id    text COLLATE "C" PRIMARY KEY,
      version    bigint NOT NULL,
      data       text NOT NULL,
      updated_at bigint NOT NULL
    );
    CREATE TABLE ${s}.auth_subscriptions (
      user_id     text COLLATE "C" NOT NULL,
      device      text COLLATE "C" NOT NULL,
      site        text COLLATE "C" NOT NULL,
      muted_until bigint,
      PRIMARY KEY (device, site)
    );
    CREATE INDEX auth_subscriptions_user ON ${s}.auth_subscriptions (user_id, device, site);
    CREATE TABLE ${s}.auth_push_endpoints (
      device   text COLLATE "C" PRIMARY KEY,
      user_id  text COLLATE "C" NOT NULL,
      endpoint text NOT NULL,
      p256dh   text NOT NULL,
      auth     text NOT NULL
    );
    CREATE INDEX auth_push_endpoints_user ON ${s}.auth_push_endpoints (user_id, device);

    CREATE TABLE ${s}.auth_claim_counters (
      namespace text COLLATE "C" PRIMARY KEY,
      last      bigint NOT NULL
    );
    CREATE TABLE ${s}.auth_claims (
      namespace  text COLLATE "C" NOT NULL,
      name       text COLLATE "C" NOT NULL,
      user_id    text COLLATE "C" NOT NULL,
      id         bigint NOT NULL,
      created_at bigint NOT NULL,
      PRIMARY KEY (namespace, name),
      UNIQUE (namespace, id)
    );
    CREATE INDEX auth_claims_user ON ${s}.auth_claims (user_id);

    CREATE TABLE ${s}.auth_envelopes (
      id          text COLLATE "C" PRIMARY KEY,
      to_device   text COLLATE "C" NOT NULL,
      from_device text COLLATE "C" NOT NULL,
      data        text NOT NULL,
      at          bigint NOT NULL,
      expires_at  bigint NOT NULL
    );
    CREATE INDEX auth_envelopes_to ON ${s}.auth_envelopes (to_device, at, id);
    CREATE INDEX auth_envelopes_expiry ON ${s}.auth_envelopes (expires_at);
    `,
    // 3: the key directory: user key chains, device certificates; site lookups for members.
    `
    CREATE TABLE ${s}.auth_user_keys (
      user_id    text COLLATE "C" NOT NULL,
      version    integer NOT NULL CHECK (version >= 1),
      public_key text NOT NULL,
      sig        text NOT NULL,
      prev_sig   text,
      created_at bigint NOT NULL,
      PRIMARY KEY (user_id, version)
    );
    CREATE TABLE ${s}.auth_device_certificates (
      device      text COLLATE "C" PRIMARY KEY,
      user_id     text COLLATE "C" NOT NULL,
      key_version integer NOT NULL,
      certificate text NOT NULL,
      created_at  bigint NOT NULL
    );
    CREATE INDEX auth_device_certificates_user ON ${s}.auth_device_certificates (user_id);
    CREATE INDEX auth_access_site ON ${s}.auth_access (site);
    CREATE INDEX auth_grants_site ON ${s}.auth_grants (site, declared_at, hash);
    `,
    // 4: the (user, site) pairs that lost access, so tail nodes that missed the bus event learn it.
    `
    CREATE TABLE ${s}.auth_access_revocations (
      user_id    text COLLATE "C" NOT NULL,
      site       text COLLATE "C" NOT NULL,
      revoked_at bigint NOT NULL,
      PRIMARY KEY (user_id, site)
    );
    CREATE INDEX auth_access_revocations_at ON ${s}.auth_access_revocations (revoked_at);
    `,
    // 5: the device's signature of its box key, kept with the device (and with a login until it links one).
    `
    ALTER TABLE ${s}.auth_devices ADD COLUMN box_sig text;
    ALTER TABLE ${s}.auth_oidc_logins ADD COLUMN box_sig text;
    `,
    // 6: grants by subject whatever the case of ASCII letters, for `email:` subjects, which
    // compare as normalizeEmail does (lower() would fold other letters too).
    `
    CREATE INDEX auth_grants_subject_ascii ON ${s}.auth_grants (${ASCII_LOWER('subject')});
    `,
  ];
}

/** The schema version this code writes. */
export const PG_AUTH_SCHEMA_VERSION = authMigrations('x').length;

/**
 * Creates the schema when missing and applies the pending migrations, in `sql`'s transaction.
 * Refuses a schema written by a newer server (it would be misread).
 */
export async function migrate(sql: TxSql, schema: string, now: number): Promise<void> {
  const s = sql.s;
  // Serializes nodes that open the same schema at once (CREATE … IF NOT EXISTS races).
  await sql.rows('SELECT pg_advisory_xact_lock(hashtext($1))', [`datagrove.auth.${schema}`]);
  await sql.rows(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await sql.rows(`CREATE TABLE IF NOT EXISTS ${s}.auth_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)`);
  const version = await schemaVersion(sql);
  const all = authMigrations(s);
  if (version > all.length) throw new Error(`auth store schema version ${version} is newer than this server (${all.length})`);
  for (let v = version; v < all.length; v++) {
    await sql.rows(all[v] as string);
    await sql.rows(`INSERT INTO ${s}.auth_migrations (version, applied_at) VALUES ($1, $2)`, [v + 1, now]);
  }
}

/** The newest applied version (0 for an empty schema). */
export async function schemaVersion(sql: Sql): Promise<number> {
  const rows = await sql.rows<{ v: unknown }>(`SELECT COALESCE(MAX(version), 0) AS v FROM ${sql.s}.auth_migrations`);
  return num(rows[0]?.v ?? 0);
}
