// Package audit is SecretHub's audit log: one event per request, written
// before the request is served (fail-closed), chained per node so that a
// change to the stored log shows, and checkpointed with a key only an
// unsealed cluster holds.
//
// # Events and their two parts
//
// The request part of an event (who asked for what, and the policy
// decision) is appended before the handler runs and the request waits for
// its commit (Writer.Append). The outcome (status, error, latency) is
// written afterwards without making the request wait (Writer.Complete). A
// request that never reaches a handler is recorded whole at once
// (Writer.Record). A read queues its event (Writer.Start), fetches its
// answer while the event waits for its batch, and offers the outcome
// (Pending.Done): if the batch has not been cut yet, the event is stored
// whole, outcome in its row, and nothing follows; otherwise the outcome
// goes to Complete. An event stored whole that was not answered as its row
// says (its commit did not confirm, or its caller left) gets an outcome
// stored apart, which supersedes the row's. Concurrent appends are committed together (group
// commit): one writer goroutine per node takes what is queued, up to
// Options.MaxBatch, and writes it in one transaction.
//
// Nothing sensitive is stored in the clear: tokens that did not
// authenticate, and every string leaf of a request body, are kept as
// Keys.HMAC values ("hmac-sha256:<hex>"), which an operator can reproduce
// for a known input (sys/audit-hash) but nobody can reverse.
//
// # Canonical encodings (version 1)
//
// All three encodings are compact JSON objects with exactly these members
// in this order, no spaces and no trailing newline. Integers are in
// decimal. A string is written between double quotes with '"' and '\'
// escaped by a backslash; backspace, form feed, newline, carriage return
// and tab as \b, \f, \n, \r and \t; other bytes below 0x20 as \u00xx
// (lower-case hex); U+2028 and U+2029 as \u2028 and \u2029; every other
// character as it is (<, > and & included). That is what Go's
// encoding/json writes with HTML escaping off, and a test holds the
// encoders to it; they are written out by hand so that the format cannot
// change with the Go release. Strings are valid UTF-8 (the writer
// replaces invalid bytes and NUL with U+FFFD before anything is stored);
// times are UTC with exactly six fractional digits,
// "2006-01-02T15:04:05.000000Z".
//
// Request part, hashed into the chain:
//
//	{"v":1,"node":…,"seq":…,"time":…,"request_id":…,"client_ip":…,
//	 "token_accessor":…,"token_hmac":…,"auth_method":…,"operation":…,
//	 "path":…,"resource":…,"capability":…,"policies":[…],"decision":…,
//	 "request_data":…}
//
// policies is [] when empty; request_data is the stored JSON text of the
// redacted body as a JSON string, or null. The chain hash of an event is
//
//	hash = hex(SHA-256(prev_hash ‖ request part))
//
// where prev_hash is the 64 hex characters of the previous event's hash on
// the same node (64 zeros before seq 1) and ‖ is concatenation of bytes.
//
// Outcome, bound to its event by a MAC (empty while sealed):
//
//	{"v":1,"status":…,"error":…,"latency_us":…}
//	outcome_mac = hex(HMAC-SHA256(checkpoint key, hash ‖ outcome))
//
// Checkpoint (kinds "checkpoint" and "prune"):
//
//	{"v":1,"node":…,"seq":…,"hash":…,"kind":…}
//	mac = hex(HMAC-SHA256(checkpoint key, checkpoint))
//
// The keys come from the cluster's audit master secret (see NewKeys):
// HMAC-SHA256(master, "secrethub audit hmac") for values, and
// HMAC-SHA256(master, "secrethub audit checkpoint") for checkpoints and
// outcomes. Anyone who can write to the database can recompute SHA-256
// hashes, but not these MACs: Verify trusts a chain as far as a checkpoint
// vouches for it, and counts the events after the last one as unanchored.
package audit
