-- Seal configuration: how the root key was split. One row once initialized.
CREATE TABLE seal_config (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    seal_type        TEXT NOT NULL,
    secret_shares    INTEGER NOT NULL,
    secret_threshold INTEGER NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

-- The barrier keyring, encrypted by the root key (which is never stored).
CREATE TABLE barrier_keyring (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    ciphertext BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Tokens are stored by SHA-256 hash only; the accessor is a public handle.
-- A child references its parent, so a child cannot be created under a
-- token that is gone, and deleting a token deletes its whole subtree.
CREATE TABLE tokens (
    token_hash               TEXT PRIMARY KEY,
    accessor                 TEXT NOT NULL UNIQUE,
    parent_accessor          TEXT REFERENCES tokens (accessor) ON DELETE CASCADE,
    policies                 TEXT NOT NULL,
    display_name             TEXT NOT NULL,
    meta                     TEXT NOT NULL,
    ttl_seconds              BIGINT NOT NULL,
    explicit_max_ttl_seconds BIGINT NOT NULL,
    renewable                BOOLEAN NOT NULL,
    num_uses                 INTEGER NOT NULL,
    bound_cidrs              TEXT NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL,
    expires_at               TIMESTAMPTZ,
    max_expires_at           TIMESTAMPTZ
);
CREATE INDEX tokens_parent_accessor_index ON tokens (parent_accessor);
CREATE INDEX tokens_expires_at_index ON tokens (expires_at);

-- Static secrets: one row per path, one row per version. Paths use the C
-- collation so prefix scans (LIST) follow byte order on every locale.
CREATE TABLE secrets (
    id              BIGSERIAL PRIMARY KEY,
    path            TEXT COLLATE "C" NOT NULL,
    current_version INTEGER NOT NULL,
    max_versions    INTEGER NOT NULL,
    cas_required    BOOLEAN NOT NULL,
    custom_metadata TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX secrets_path_index ON secrets (path);

CREATE TABLE secret_versions (
    secret_id  BIGINT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    ciphertext BYTEA,
    created_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    destroyed  BOOLEAN NOT NULL,
    PRIMARY KEY (secret_id, version)
);
