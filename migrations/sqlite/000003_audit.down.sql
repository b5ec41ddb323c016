DROP TABLE IF EXISTS core_keys;
DROP TABLE IF EXISTS audit_hash_chain;
DROP TABLE IF EXISTS audit_outcomes;
DROP TABLE IF EXISTS audit_events;
