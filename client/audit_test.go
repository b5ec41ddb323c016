package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/secrethub/secrethub/client"
	"github.com/secrethub/secrethub/client/clienttest"
	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// allEvents reads every event f selects through EachEvent.
func allEvents(t *testing.T, c *client.Client, f client.AuditFilter) []client.AuditEvent {
	t.Helper()
	var out []client.AuditEvent
	err := c.Audit().EachEvent(context.Background(), f, func(e client.AuditEvent) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("reading events %+v: %v", f, err)
	}
	return out
}

// eventWith waits until the event of the request matching pick has its
// outcome stored (outcomes are written after the answer), and returns it.
func eventWith(t *testing.T, c *client.Client, f client.AuditFilter, pick func(client.AuditEvent) bool) client.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found *client.AuditEvent
		for _, e := range allEvents(t, c, f) {
			if pick(e) {
				found = &e
			}
		}
		if found != nil && found.HasOutcome() {
			return *found
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event with its outcome matched (found %+v)", found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAuditEventsCarryHMACsThatHashReproduces(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, db *storage.DB) {
		srv := clienttest.Unsealed(t, db)
		ctx := context.Background()
		root := srv.Root(t)
		if _, err := root.KV().Put(ctx, "app/db", map[string]any{"password": "pg-secret"}, client.KVPutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Client(t, "s.not-a-real-token").KV().Get(ctx, "app/db", 0); !isStatus(err, http.StatusForbidden) {
			t.Fatalf("read with a bogus token: %v, want 403", err)
		}

		secrets := client.AuditFilter{Path: "/v1/secrets/"}
		write := eventWith(t, root, secrets, func(e client.AuditEvent) bool { return e.Decision == client.AuditDecisionAllow })
		if write.Node != "test-node" || write.Seq < 1 || write.Time.IsZero() || *write.Status != http.StatusOK ||
			write.TokenAccessor == "" || len(write.Policies) == 0 || len(write.Hash) != 64 || write.OutcomeMAC == nil {
			t.Fatalf("write event = %+v", write)
		}
		var body struct {
			Data struct {
				Password string `json:"password"`
			} `json:"data"`
		}
		if err := json.Unmarshal(write.RequestData, &body); err != nil {
			t.Fatalf("request_data %s: %v", write.RequestData, err)
		}
		hash, err := root.Audit().Hash(ctx, "pg-secret")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "hmac-sha256:") || body.Data.Password != hash {
			t.Fatalf("audit-hash of the value = %q, the event carries %q", hash, body.Data.Password)
		}
		if strings.Contains(string(write.Raw), "pg-secret") {
			t.Fatalf("the event carries the plaintext: %s", write.Raw)
		}
		if !strings.HasPrefix(string(write.Raw), `{"node":"test-node"`) {
			t.Fatalf("Raw is not the server's object: %s", write.Raw)
		}

		denied := eventWith(t, root, client.AuditFilter{Path: "/v1/secrets/", Decision: client.AuditDecisionDeny},
			func(client.AuditEvent) bool { return true })
		tokenHash, err := root.Audit().Hash(ctx, "s.not-a-real-token")
		if err != nil {
			t.Fatal(err)
		}
		if denied.TokenHMAC != tokenHash || denied.TokenAccessor != "" || *denied.Status != http.StatusForbidden {
			t.Fatalf("denied event = %+v; hash of the token %s", denied, tokenHash)
		}

		// Pages follow each other without gaps or repeats.
		all := allEvents(t, root, client.AuditFilter{})
		var paged []client.AuditEvent
		f := client.AuditFilter{Limit: 2, Until: all[len(all)-1].Time.Add(time.Microsecond)}
		for {
			page, next, err := root.Audit().Events(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("a page of %d events with limit 2", len(page))
			}
			paged = append(paged, page...)
			if next == "" {
				break
			}
			f.After = next
		}
		if len(paged) != len(all) {
			t.Fatalf("paging by 2 read %d events, one read %d", len(paged), len(all))
		}
		for i := range all {
			if paged[i].Node != all[i].Node || paged[i].Seq != all[i].Seq {
				t.Fatalf("event %d: paged %s/%d, whole %s/%d", i, paged[i].Node, paged[i].Seq, all[i].Node, all[i].Seq)
			}
		}
		if got := allEvents(t, root, client.AuditFilter{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
			t.Fatalf("%d events since an hour from now", len(got))
		}
		if _, _, err := root.Audit().Events(ctx, client.AuditFilter{After: "not-a-cursor"}); !isStatus(err, http.StatusBadRequest) {
			t.Fatalf("a bad cursor: %v, want 400", err)
		}

		rep, err := root.Audit().Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Problem != nil || len(rep.Nodes) != 1 || rep.Nodes[0].Node != "test-node" || rep.Events < int64(len(all)) {
			t.Fatalf("verify = %+v", rep)
		}
	})
}

func TestAuditPruneKeepsTheRestVerifiable(t *testing.T) {
	db := storagetest.SQLite(t)
	ctx := context.Background()
	// The first node's clock runs three days behind, so its events are old.
	past := func() time.Time { return time.Now().Add(-72 * time.Hour) }
	old := clienttest.UnsealedWith(t, db, server.Config{Now: past})
	for range 3 {
		if _, err := old.Root(t).KV().Put(ctx, "app/db", map[string]any{"v": "x"}, client.KVPutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A restart closes the audit log, whose final checkpoint vouches for
	// every old event: only such events are pruned.
	srv := old.Restart(t, server.Config{})
	root := srv.Root(t)
	cut := time.Now().Add(-24 * time.Hour)
	before := allEvents(t, root, client.AuditFilter{Until: cut})
	if len(before) < 3 {
		t.Fatalf("%d old events", len(before))
	}

	limited, err := root.Token().Create(ctx, client.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client(t, limited.ClientToken).Audit().Prune(ctx, cut); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("prune without sudo: %v, want 403", err)
	}
	removed, err := root.Audit().Prune(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if removed != int64(len(before)) {
		t.Fatalf("removed %d events, %d were older than the cut", removed, len(before))
	}
	if left := allEvents(t, root, client.AuditFilter{Until: cut}); len(left) != 0 {
		t.Fatalf("%d old events left", len(left))
	}
	rep, err := root.Audit().Verify(ctx)
	if err != nil || !rep.OK || rep.Nodes[0].PrunedThrough != removed {
		t.Fatalf("verify after prune = %+v, %v", rep, err)
	}
	if removed, err := root.Audit().Prune(ctx, cut); err != nil || removed != 0 {
		t.Fatalf("pruning again removed %d, %v", removed, err)
	}
}

func TestAuditRefusesAnswersTooLargeToRead(t *testing.T) {
	big := strings.Repeat(" ", 33<<20)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"events":[],"next":""}` + big + `}`))
	}))
	defer hs.Close()
	c, err := client.New(hs.URL, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Audit().Events(context.Background(), client.AuditFilter{}); !errors.Is(err, client.ErrResponseTooLarge) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
	// EachEvent asks for smaller pages, down to one event, then gives up.
	err = c.Audit().EachEvent(context.Background(), client.AuditFilter{Limit: 4}, func(client.AuditEvent) error { return nil })
	if !errors.Is(err, client.ErrResponseTooLarge) {
		t.Fatalf("EachEvent: err = %v, want ErrResponseTooLarge", err)
	}
}
