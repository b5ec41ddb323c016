package storage

import (
	"context"
	"strings"
)

// ExplainAuditWrites returns PostgreSQL's plan, as text, for each
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
		rows, err := db.sql.QueryContext(ctx, "EXPLAIN (COSTS OFF) "+db.auditSQL(st.query), args...)
		if err != nil {
			return nil, err
		}
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				rows.Close()
				return nil, err
			}
			lines = append(lines, line)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		plans = append(plans, strings.Join(lines, "\n"))
	}
	return plans, nil
}
