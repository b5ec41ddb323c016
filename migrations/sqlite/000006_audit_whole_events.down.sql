-- Outcomes kept in event rows move to audit_outcomes first, so going back
-- loses none.
INSERT INTO audit_outcomes (node, seq, status, error, latency_us, mac)
    SELECT node, seq, status, COALESCE(error, ''), COALESCE(latency_us, 0), COALESCE(outcome_mac, '')
    FROM audit_events WHERE status IS NOT NULL
    ON CONFLICT (node, seq) DO NOTHING; -- one stored apart corrects the row's
ALTER TABLE audit_events DROP COLUMN outcome_mac;
ALTER TABLE audit_events DROP COLUMN latency_us;
ALTER TABLE audit_events DROP COLUMN error;
ALTER TABLE audit_events DROP COLUMN status;
