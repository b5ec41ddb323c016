-- An event whose outcome is known when its batch is written (a request
-- refused before any handler, a read whose answer was ready before its
-- batch was cut) keeps the outcome in its own row: one row per request
-- instead of two. The columns are NULL when the outcome came later, into
-- audit.outcomes; outcome_mac binds it to the event's hash as there. An
-- outcome in audit.outcomes for an event stored whole supersedes the row's:
-- the request was not answered as the row says (its commit did not
-- confirm, or its caller left). Rows are still only ever inserted: UPDATE
-- may be revoked as before.
ALTER TABLE audit.events ADD COLUMN status INTEGER;
ALTER TABLE audit.events ADD COLUMN error TEXT;
ALTER TABLE audit.events ADD COLUMN latency_us BIGINT;
ALTER TABLE audit.events ADD COLUMN outcome_mac TEXT;
