-- Outcomes kept in event rows move to audit.outcomes first, so going back
-- loses none.
INSERT INTO audit.outcomes (node, seq, status, error, latency_us, mac)
    SELECT node, seq, status, COALESCE(error, ''), COALESCE(latency_us, 0), COALESCE(outcome_mac, '')
    FROM audit.events WHERE status IS NOT NULL
    ON CONFLICT (node, seq) DO NOTHING; -- one stored apart corrects the row's
ALTER TABLE audit.events DROP COLUMN outcome_mac;
ALTER TABLE audit.events DROP COLUMN latency_us;
ALTER TABLE audit.events DROP COLUMN error;
ALTER TABLE audit.events DROP COLUMN status;
