package server_test

import (
	"testing"

	"github.com/secrethub/secrethub/storage"
)

// The hot paths stay within their database budget (acceptance): a KV read
// with a root token is the token lookup plus the secret read, no
// transaction; a KV write is the token lookup plus one transaction.
func TestSecretRequestsStayWithinTheirRoundTripBudget(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		mustStatus(t, n.do("POST", "/v1/secrets/static/app/db", root, `{"data":{"k":"v1"}}`), 200)

		for _, c := range []struct {
			name        string
			method, url string
			body        string
			status      int
			want        storage.RoundTrips
		}{
			{"a read costs two queries and no transaction", "GET", "/v1/secrets/static/app/db", "", 200, storage.RoundTrips{Queries: 2}},
			{"a read of an old version costs the same", "GET", "/v1/secrets/static/app/db?version=1", "", 200, storage.RoundTrips{Queries: 2}},
			{"an update costs one query and one transaction", "POST", "/v1/secrets/static/app/db", `{"data":{"k":"v2"}}`, 200, storage.RoundTrips{Queries: 1, Transactions: 1}},
			{"a create costs one query and one transaction", "PUT", "/v1/secrets/static/app/new", `{"data":{"k":"v"}}`, 200, storage.RoundTrips{Queries: 1, Transactions: 1}},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := n.db.RoundTrips()
				mustStatus(t, n.do(c.method, c.url, root, c.body), c.status)
				after := n.db.RoundTrips()
				audits := after.AuditBatches - before.AuditBatches
				got := storage.RoundTrips{Queries: after.Queries - before.Queries, Transactions: after.Transactions - before.Transactions - audits}
				if got != c.want {
					t.Fatalf("the request's own round trips = %+v, want %+v", got, c.want)
				}
				// Its audit event was committed (group commit) before the
				// answer; the outcome may ride the same batch or a later one.
				if audits < 1 || audits > 2 {
					t.Fatalf("the request cost %d audit batches, want 1 or 2", audits)
				}
			})
		}
	})
}
