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
-- (server/audit documents the encoding). Rows are only ever inserted (and
-- deleted by a prune): the outcome lives in audit.outcomes, so an operator
-- may REVOKE UPDATE on this table from SecretHub's role. Sensitive values
-- are only ever stored as HMACs (token_hmac, request_data's string leaves).
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
    PRIMARY KEY (node, seq)
);
-- Listing pages through (time, node, seq); searches by accessor or path
-- prefix filter along it. Every index is paid for by every request, so
-- there are no others: a search is meant to be bounded by since/until.
CREATE INDEX audit_events_time_index ON audit.events (time, node, seq);

-- How each request ended, written after its handler (or with the event,
-- for a request refused before any handler), bound to the event's hash by
-- mac (empty when written while sealed). At most one per event: also only
-- ever inserted, so UPDATE may be revoked here too.
CREATE TABLE audit.outcomes (
    node       TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    status     INTEGER NOT NULL,
    error      TEXT NOT NULL,
    latency_us BIGINT NOT NULL,
    mac        TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);

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
