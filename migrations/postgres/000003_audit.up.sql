-- The audit log. The runbook creates the audit schema by hand before the
-- first migration; create it here only when it is missing, checking first
-- so a role that may use the schema but not create schemas still migrates.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'audit') THEN
        CREATE SCHEMA audit;
    END IF;
END
$$;

-- One row per request, in per-node chains: seq counts from 1 on each node
-- without gaps, and hash = SHA-256(prev_hash || canonical request part)
-- (server/audit documents the encoding). The outcome columns stay NULL
-- until the handler has finished; outcome_mac binds them to the hash.
-- Sensitive values are only ever stored as HMACs (token_hmac,
-- request_data's string leaves). Half of each page is left free so the
-- outcome, written just after, fits beside its row: a heap-only update,
-- which adds no entry to the four indexes.
CREATE TABLE audit.events (
    node           TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    time           TIMESTAMPTZ NOT NULL,
    request_id     TEXT NOT NULL,
    client_ip      TEXT NOT NULL,
    token_accessor TEXT NOT NULL,
    token_hmac     TEXT NOT NULL,
    auth_method    TEXT NOT NULL,
    operation      TEXT NOT NULL,
    path           TEXT COLLATE "C" NOT NULL,
    resource       TEXT NOT NULL,
    capability     TEXT NOT NULL,
    policies       TEXT NOT NULL,
    decision       TEXT NOT NULL,
    request_data   TEXT,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    status         INTEGER,
    error          TEXT,
    latency_us     BIGINT,
    outcome_mac    TEXT,
    PRIMARY KEY (node, seq)
) WITH (fillfactor = 50);
-- Listing pages through (time, node, seq); searches by accessor and by
-- path prefix (C collation: byte order) narrow it.
CREATE INDEX audit_events_time_index ON audit.events (time, node, seq);
CREATE INDEX audit_events_token_accessor_index ON audit.events (token_accessor, time);
CREATE INDEX audit_events_path_index ON audit.events (path, time);

-- Checkpoints of each node's chain, authenticated with a key derived from
-- the audit master secret (behind the barrier): kind 'checkpoint' every N
-- events or T seconds, kind 'prune' where a prune cut the chain.
CREATE TABLE audit.hash_chain (
    node       TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    mac        TEXT NOT NULL,
    PRIMARY KEY (node, seq, kind)
);

-- Cluster-wide keys kept encrypted by the barrier (the audit master
-- secret first). Created once; two nodes racing to create one leave the
-- first.
CREATE TABLE core_keys (
    name       TEXT PRIMARY KEY,
    ciphertext BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
