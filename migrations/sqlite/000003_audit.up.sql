-- The audit log. SQLite has no schemas: audit_events, audit_outcomes and
-- audit_hash_chain stand for PostgreSQL's audit.events, audit.outcomes and
-- audit.hash_chain.

-- One row per request, in per-node chains: seq counts from 1 on each node
-- without gaps, and hash = SHA-256(prev_hash || canonical request part)
-- (server/audit documents the encoding). Rows are only ever inserted (and
-- deleted by a prune); the outcome lives in audit_outcomes. Sensitive
-- values are only ever stored as HMACs (token_hmac, request_data's string
-- leaves).
CREATE TABLE audit_events (
    node           TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    time           TIMESTAMP NOT NULL,
    request_id     TEXT NOT NULL,
    client_ip      TEXT NOT NULL,
    token_accessor TEXT NOT NULL,
    token_hmac     TEXT NOT NULL,
    auth_method    TEXT NOT NULL,
    operation      TEXT NOT NULL,
    path           TEXT NOT NULL,
    resource       TEXT NOT NULL,
    capability     TEXT NOT NULL,
    policies       TEXT NOT NULL,
    decision       TEXT NOT NULL,
    request_data   TEXT,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
-- Listing pages through (time, node, seq); searches by accessor and by
-- path prefix narrow it.
CREATE INDEX audit_events_time_index ON audit_events (time, node, seq);
CREATE INDEX audit_events_token_accessor_index ON audit_events (token_accessor, time);
CREATE INDEX audit_events_path_index ON audit_events (path, time);

-- How each request ended, bound to the event's hash by mac (empty when
-- written while sealed). At most one per event, only ever inserted.
CREATE TABLE audit_outcomes (
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
CREATE TABLE audit_hash_chain (
    node       TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    mac        TEXT NOT NULL,
    PRIMARY KEY (node, seq, kind)
);

-- Cluster-wide keys kept encrypted by the barrier (the audit master
-- secret first). Created once; two nodes racing to create one leave the
-- first.
CREATE TABLE core_keys (
    name       TEXT PRIMARY KEY,
    ciphertext BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL
);
