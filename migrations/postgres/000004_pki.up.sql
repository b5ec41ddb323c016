-- PKI issuers: CA certificates with their private keys, which are stored only
-- encrypted by the barrier (key_ciphertext). A key generated for a CSR waits
-- here with no certificate until set-signed gives it one. crl_number counts
-- the CRLs built for the issuer; it is incremented in the transaction that
-- stores each new CRL, so nodes sharing the database never reuse a number.
CREATE TABLE pki_issuers (
    id              TEXT PRIMARY KEY,
    common_name     TEXT NOT NULL,
    key_type        TEXT NOT NULL,
    key_ciphertext  BYTEA NOT NULL,
    certificate     TEXT,
    ca_chain        TEXT NOT NULL,
    not_after       TIMESTAMPTZ,
    crl_number      BIGINT NOT NULL,
    crl             BYTEA,
    crl_next_update TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);

-- The engine's settings: one row; default_issuer names the issuer used when
-- a request or role names none.
CREATE TABLE pki_config (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    default_issuer TEXT REFERENCES pki_issuers (id)
);

-- PKI roles: the JSON document of their settings.
CREATE TABLE pki_roles (
    name       TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Certificates issued (runbook Phase 1.3): never their private keys.
CREATE TABLE certificates (
    serial      TEXT COLLATE "C" PRIMARY KEY,
    issuer_id   TEXT NOT NULL REFERENCES pki_issuers (id),
    subject     TEXT NOT NULL,
    sans        TEXT NOT NULL,
    not_before  TIMESTAMPTZ NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    certificate TEXT NOT NULL
);
CREATE INDEX certificates_issuer_revoked_index ON certificates (issuer_id, revoked_at);
CREATE INDEX certificates_not_after_index ON certificates (not_after);
