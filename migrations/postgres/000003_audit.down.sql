-- The audit schema stays: the runbook creates it by hand (with its grants)
-- before any migration runs.
DROP TABLE IF EXISTS core_keys;
DROP TABLE IF EXISTS audit.hash_chain;
DROP TABLE IF EXISTS audit.outcomes;
DROP TABLE IF EXISTS audit.events;
