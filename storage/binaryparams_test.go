package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

func TestBinaryParametersAreAlwaysOn(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u:p%40ss@db:5432/sh?sslmode=disable":                         "postgres://u:p%40ss@db:5432/sh?binary_parameters=yes&sslmode=disable",
		"postgresql://db/sh":                                                     "postgresql://db/sh?binary_parameters=yes",
		"postgres://db/sh?binary_parameters=no&sslmode=require":                  "postgres://db/sh?binary_parameters=yes&sslmode=require",
		"host=db dbname=sh binary_parameters=no":                                 "host=db dbname=sh binary_parameters=no binary_parameters=yes",
		"postgres://db/sh?options=-c%20search_path%3Dsh&binary_parameters=false": "postgres://db/sh?binary_parameters=yes&options=-c+search_path%3Dsh",
	} {
		if got := storage.WithBinaryParameters(dsn); got != want {
			t.Errorf("%s:\n got %s\nwant %s", dsn, got, want)
		}
	}
}

// withQueryParameter adds key=value to a URL's query.
func withQueryParameter(u, kv string) string {
	if strings.Contains(u, "?") {
		return u + "&" + kv
	}
	return u + "?" + kv
}

// The audit writer sends its batches as binary arrays: a URL that turns
// binary parameters off must not make every batch fail.
func TestAuditBatchesWorkWhateverTheURLSaysOfBinaryParameters(t *testing.T) {
	db := storagetest.Open(t, storage.Config{DatabaseURL: withQueryParameter(storagetest.PostgresURL(t), "binary_parameters=no")})
	e := auditEvent("n1", 1, time.Now())
	e.Outcome = &storage.AuditOutcome{Seq: 1, Status: 200, MAC: "m"}
	if err := db.AppendAudit(context.Background(), storage.AuditBatch{Node: "n1", Events: []storage.AuditEvent{e}}); err != nil {
		t.Fatalf("a batch with binary_parameters=no in the URL: %v", err)
	}
	if _, err := db.StoreAuditOutcomes(context.Background(), "n1", []storage.AuditOutcome{{Seq: 1, Status: 503, MAC: "m2"}}); err != nil {
		t.Fatalf("outcomes with binary_parameters=no in the URL: %v", err)
	}
}
