package storage

import (
	"context"
	"log/slog"
	"time"
)

// ExplainAuditWrites returns PostgreSQL's plan, as JSON, for each
// statement that writes a batch of audit events or outcomes, with empty
// arrays for parameters.
func (db *DB) ExplainAuditWrites(ctx context.Context) ([]string, error) {
	var plans []string
	for _, st := range []struct {
		query  string
		params int
	}{{pgAppendEvents + " SELECT", 21}, {pgStoreOutcomes, 6}} {
		args := []any{"node-1"}
		for range st.params - 1 {
			args = append(args, "{}")
		}
		var plan string
		if err := db.sql.QueryRowContext(ctx, "EXPLAIN (COSTS OFF, FORMAT JSON) "+db.auditSQL(st.query), args...).Scan(&plan); err != nil {
			return nil, err
		}
		plans = append(plans, plan)
	}
	return plans, nil
}

// ClaimNodeNameNow is ClaimNodeName without waiting for a name in use, the
// claim checked every interval.
func (db *DB) ClaimNodeNameNow(ctx context.Context, name string, log *slog.Logger, every time.Duration) (*NodeClaim, error) {
	return db.claimNodeName(ctx, name, log, 0, every)
}
