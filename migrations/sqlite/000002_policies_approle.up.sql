-- User-defined policies, kept as the JSON document they were written with.
CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- AppRole roles: what a login with this role's role_id and one of its
-- secret IDs is given.
CREATE TABLE approle_roles (
    name                  TEXT PRIMARY KEY,
    role_id               TEXT NOT NULL UNIQUE,
    policies              TEXT NOT NULL,
    token_ttl_seconds     BIGINT NOT NULL,
    token_max_ttl_seconds BIGINT NOT NULL,
    token_bound_cidrs     TEXT NOT NULL,
    secret_id_ttl_seconds BIGINT NOT NULL,
    secret_id_num_uses    INTEGER NOT NULL,
    secret_id_bound_cidrs TEXT NOT NULL,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL
);

-- Secret IDs are stored by SHA-256 hash only; the accessor names them.
-- num_uses is the uses left (0: unlimited); the last use deletes the row.
CREATE TABLE approle_secret_ids (
    secret_id_hash TEXT PRIMARY KEY,
    accessor       TEXT NOT NULL UNIQUE,
    role_name      TEXT NOT NULL REFERENCES approle_roles (name) ON DELETE CASCADE,
    num_uses       INTEGER NOT NULL,
    cidr_list      TEXT NOT NULL,
    metadata       TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    expires_at     TIMESTAMP
);
CREATE INDEX approle_secret_ids_role_index ON approle_secret_ids (role_name);
CREATE INDEX approle_secret_ids_expires_at_index ON approle_secret_ids (expires_at);

-- Tokens issued by AppRole logins: the role and secret ID each came from.
-- A row goes away with its token; deleting a role keeps the history.
CREATE TABLE approle_tokens (
    token_accessor     TEXT PRIMARY KEY REFERENCES tokens (accessor) ON DELETE CASCADE,
    role_name          TEXT NOT NULL,
    secret_id_accessor TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL
);
CREATE INDEX approle_tokens_role_index ON approle_tokens (role_name);
