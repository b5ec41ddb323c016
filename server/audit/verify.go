package audit

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Archive is what reading the stored log back needs (Verify, Prune, List).
type Archive interface {
	AuditNodes(ctx context.Context) ([]string, error)
	AuditHead(ctx context.Context, node string) (storage.AuditHead, error)
	AuditEvents(ctx context.Context, node string, after *int64, limit int) ([]storage.AuditEvent, error)
	AuditCheckpoints(ctx context.Context, node string, after *storage.AuditCheckpoint, limit int) ([]storage.AuditCheckpoint, error)
	AuditPruneBoundary(ctx context.Context, node string, before time.Time) (int64, string, error)
	AuditEventBefore(ctx context.Context, node string, before time.Time) (bool, error)
	AuditMistypedRow(ctx context.Context) (storage.AuditMistyped, bool, error)
	PruneAudit(ctx context.Context, cp storage.AuditCheckpoint) (int64, error)
	ListAuditEvents(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error)
}

var _ Archive = (*storage.DB)(nil)

// ErrKeysUnavailable: verifying and pruning need the audit keys, which
// only an unsealed SecretHub has.
var ErrKeysUnavailable = fault.New(fault.Unavailable, "audit keys unavailable: SecretHub is sealed")

// Kind names what Verify found wrong.
type Kind string

// The problems Verify names.
const (
	// Modified: an event's stored hash is not the hash of its content, or
	// the chain up to a checkpoint differs from what the checkpoint says.
	Modified Kind = "modified"
	// Deleted: seqs are missing (or the rest was renumbered to hide it).
	Deleted Kind = "deleted"
	// Inserted: an event that the chain does not lead through.
	Inserted Kind = "inserted"
	// Reordered: an event stored under another event's seq.
	Reordered Kind = "reordered"
	// Truncated: a checkpoint or the live head lies beyond the last event.
	Truncated Kind = "truncated"
	// ForgedCheckpoint: a checkpoint whose MAC does not verify.
	ForgedCheckpoint Kind = "forged-checkpoint"
	// OutcomeModified: an outcome whose MAC does not verify.
	OutcomeModified Kind = "outcome-modified"
)

// Problem is the first thing wrong with a node's chain.
type Problem struct {
	Kind   Kind   `json:"kind"`
	Node   string `json:"node"`
	Seq    int64  `json:"seq"`
	Detail string `json:"detail"`
}

// String reads "<kind> at node <node> seq <seq>: <detail>".
func (p Problem) String() string {
	return fmt.Sprintf("%s at node %s seq %d: %s", p.Kind, p.Node, p.Seq, p.Detail)
}

// NodeReport is what Verify found on one node's chain. When a problem is
// found the walk stops there, so the counts cover the chain up to it.
type NodeReport struct {
	Node string `json:"node"`
	// Events is how many stored events were checked.
	Events int64 `json:"events"`
	// PrunedThrough is the seq of the prune checkpoint the chain starts
	// after (0: it starts at seq 1).
	PrunedThrough int64 `json:"pruned_through"`
	// Last is the seq of the last event checked.
	Last int64 `json:"last"`
	// Checkpoints is how many checkpoints verified and matched the chain.
	Checkpoints int64 `json:"checkpoints"`
	// Anchored is the seq of the last event a checkpoint vouches for;
	// Unanchored counts the events after it, which verify as a chain but
	// could have been rewritten by someone with write access to the
	// database (the next checkpoint settles them).
	Anchored   int64 `json:"anchored"`
	Unanchored int64 `json:"unanchored"`
	// UnanchoredSince is the time of the first unanchored event (zero when
	// there is none). CheckpointOverdue says the unanchored events span
	// more than AnchorGrace (by the node's own clock), or began more than
	// StaleTail ago (AnchorGrace for a node no checkpoint ever covered), or
	// some are dated more than AnchorGrace ahead of the verifier's clock:
	// a node with the audit key checkpoints every few seconds, so either
	// the node was sealed while requests came in or stopped abruptly and
	// has not run unsealed since (its next checkpoint covers them), or
	// checkpoints were removed to rewrite what they vouched for. Nothing is
	// proven wrong, so the chain still verifies, but nothing vouches for
	// these events.
	UnanchoredSince   time.Time `json:"unanchored_since,omitzero"`
	CheckpointOverdue bool      `json:"checkpoint_overdue"`
	// Adoptions counts the adoption records in the chain and AdoptedEvents
	// the events they name: events a server found unanchored when it
	// started under the node's name, and continued from as it found them
	// (see Adoption). LargestAdoption is the longest range.
	Adoptions       int64     `json:"adoptions"`
	AdoptedEvents   int64     `json:"adopted_events"`
	LargestAdoption *Adoption `json:"largest_adoption,omitempty"`
	// UnauthenticatedOutcomes counts outcomes written while sealed (no MAC).
	UnauthenticatedOutcomes int64 `json:"unauthenticated_outcomes"`
	// MissingOutcomes counts events without an outcome: requests in
	// flight, or outcomes lost when a server stopped abruptly.
	MissingOutcomes int64 `json:"missing_outcomes"`
	// Problem is the first problem, nil when the chain verifies.
	Problem *Problem `json:"problem,omitempty"`

	anchoredHash string
	lastTime     time.Time // of the last event checked
	latest       time.Time // the latest time of an unanchored event
}

// Adoption is a range of events that no checkpoint covered when a server
// started under the node's name, and that its writer then continued from
// as it found them, recording so in the event at Seq (see AdoptionPath),
// written at At. A server that stopped abruptly leaves up to a few
// seconds' worth (at most 1,000 events by default) for the next one to
// adopt, and one stopped while sealed leaves what it took in meanwhile. A
// longer range, or one where the node never stopped, is what rewriting a
// stopped node's events and deleting their checkpoints looks like once it
// restarts: nothing in the database can tell the two apart, so verify
// shows the range rather than fail. The record is an event of the chain:
// removing or changing it fails verification as for any event.
type Adoption struct {
	From   int64     `json:"from"`
	To     int64     `json:"to"`
	Events int64     `json:"events"`
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
}

// overdue reports whether the node's unanchored events have gone longer
// without a checkpoint than a running, unsealed node leaves them.
func (nr *NodeReport) overdue(now time.Time) bool {
	if nr.Problem != nil || nr.Unanchored == 0 {
		return false
	}
	switch {
	case nr.lastTime.Sub(nr.UnanchoredSince) > AnchorGrace:
		return true // longer than a node with the key goes between checkpoints
	case nr.latest.After(now.Add(AnchorGrace)):
		return true // dated ahead of this clock, so no age could ever make them overdue
	case nr.Anchored == 0:
		return nr.UnanchoredSince.Before(now.Add(-AnchorGrace)) // never covered: judged by age
	}
	return nr.UnanchoredSince.Before(now.Add(-StaleTail))
}

// Report is the result of Verify.
type Report struct {
	// OK is true when every node's chain verifies.
	OK bool `json:"ok"`
	// Events is how many stored events were checked, on all nodes.
	Events int64        `json:"events"`
	Nodes  []NodeReport `json:"nodes"`
	// Problem is the first problem of the first node (by name) with one.
	Problem *Problem `json:"problem,omitempty"`
	// CheckpointOverdue is true when a node's is (see NodeReport).
	CheckpointOverdue bool `json:"checkpoint_overdue"`
}

// AnchorGrace is how long a node's events may go without a checkpoint
// before it is reported overdue: writers checkpoint every 5 seconds by
// default; the rest allows for slow commits and for an event's time being
// when its request began (a slow upload can take a minute). The span is
// measured on the node's own event times, so a node whose clock is off is
// judged alike.
const AnchorGrace = 2 * time.Minute

// StaleTail is how old, by the verifier's clock, a node's unanchored tail
// may grow however short its span: a node that stopped abruptly leaves a
// few seconds of events that its next start covers, and a node gone for
// good leaves them for ever (start a server under its name once, unsealed,
// to checkpoint them).
const StaleTail = time.Hour

// Live is what a running writer knows of its own chain (Writer.Head): the
// last seq it committed, and that event's hash.
type Live struct {
	Seq  int64
	Hash string
}

// VerifyOptions add what the stored log cannot tell.
type VerifyOptions struct {
	// Live gives, per node, the head its writer holds in memory: a stored
	// chain that ends before it was truncated, one that reaches its seq
	// with another hash was rewritten.
	Live map[string]Live
	// Now is when the verification runs (default time.Now()), for
	// CheckpointOverdue (StaleTail).
	Now time.Time
}

// pageSize is how many events or checkpoints Verify reads at a time.
const pageSize = 1000

// Verify recomputes every stored event's hash, node by node in seq order,
// and checks it against its neighbours, the checkpoints and the outcome
// MACs, reporting the first problem of each node (see VerifyOptions).
// Memory stays bounded whatever the log's size. The error is for storage
// failures and missing keys only.
func Verify(ctx context.Context, a Archive, k *Keys, opt VerifyOptions) (Report, error) {
	if k == nil {
		return Report{}, ErrKeysUnavailable
	}
	nodes, err := a.AuditNodes(ctx)
	if err != nil {
		return Report{}, err
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	for n := range opt.Live {
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	slices.Sort(nodes)
	rep := Report{Nodes: []NodeReport{}}
	for _, n := range nodes {
		nr, err := verifyNode(ctx, a, k, n, opt.Live[n], 0)
		if err != nil {
			return Report{}, err
		}
		if nr.overdue(opt.Now) {
			nr.CheckpointOverdue, rep.CheckpointOverdue = true, true
		}
		rep.Events += nr.Events
		rep.Nodes = append(rep.Nodes, nr)
	}
	m, found, err := a.AuditMistypedRow(ctx)
	if err != nil {
		return Report{}, err
	}
	if found {
		rep.addMistyped(m)
	}
	for _, nr := range rep.Nodes {
		if rep.Problem == nil {
			rep.Problem = nr.Problem
		}
	}
	rep.OK = rep.Problem == nil
	return rep, nil
}

// addMistyped names a row no read of its node's chain finds (see
// storage.AuditMistypedRow) on that node's report, adding one for a node
// with no other row: at its seq where that is a number and comes before
// the node's own first problem, else only where the node has none.
func (rep *Report) addMistyped(m storage.AuditMistyped) {
	i, ok := slices.BinarySearchFunc(rep.Nodes, m.Node, func(nr NodeReport, node string) int { return strings.Compare(nr.Node, node) })
	if !ok {
		rep.Nodes = slices.Insert(rep.Nodes, i, NodeReport{Node: m.Node})
	}
	if p := rep.Nodes[i].Problem; p == nil || (m.SeqWhole && m.Seq < p.Seq) {
		rep.Nodes[i].Problem = &Problem{Node: m.Node, Kind: Inserted, Seq: m.Seq,
			Detail: fmt.Sprintf("a row of the %s table whose key is stored as types the writer never stores there (node %s, seq %s, kind %s, where it stores text, integer, text): no read of the node's chain finds it",
				m.Table, m.NodeType, m.SeqType, m.KindType)}
	}
}

// validCheckpoint reports whether c's MAC verifies under k.
func validCheckpoint(k *Keys, c storage.AuditCheckpoint) bool {
	return (c.Kind == kindCheckpoint || c.Kind == kindPrune) &&
		hmac.Equal([]byte(checkpointMAC(k, c)), []byte(c.MAC))
}

// verifyNode walks one node's chain; through > 0 stops after that seq
// (Prune's check of what it is about to remove). Otherwise it walks the
// chain as it stood when the walk began: what commits meanwhile (events,
// and the checkpoints that cover them) waits for the next verification,
// so a long walk over a busy node does not end on a tail of new events
// whose checkpoints it read too early.
func verifyNode(ctx context.Context, a Archive, k *Keys, node string, live Live, through int64) (NodeReport, error) {
	v := &nodeWalk{rep: NodeReport{Node: node}, k: k, live: live, prev: GenesisHash,
		eventsEnd: through, checkpointsEnd: through}
	if through == 0 {
		h, err := a.AuditHead(ctx, node)
		if err != nil {
			return NodeReport{}, err
		}
		v.eventsEnd, v.checkpointsEnd = h.Seq, h.CheckpointSeq
	}
	// The chain starts after the latest authentic prune, or at seq 1.
	cps := checkpointPager(ctx, a, node)
	for {
		c, err := cps.next()
		if err != nil {
			return NodeReport{}, err
		}
		if c == nil {
			break
		}
		if c.Kind == kindPrune && c.Seq > v.start && validCheckpoint(k, *c) {
			v.start, v.prev = c.Seq, c.Hash
		}
	}
	v.next, v.rep.PrunedThrough, v.rep.Anchored, v.rep.anchoredHash = v.start+1, v.start, v.start, v.prev

	cps = checkpointPager(ctx, a, node)
	evs := eventPager(ctx, a, node)
	for v.rep.Problem == nil {
		e, err := evs.peek()
		if err != nil {
			return NodeReport{}, err
		}
		c, err := cps.peek()
		if err != nil {
			return NodeReport{}, err
		}
		if e != nil && e.Seq > v.eventsEnd {
			e = nil
		}
		if c != nil && c.Seq > v.checkpointsEnd {
			c = nil
		}
		switch {
		case c != nil && (e == nil || c.Seq < e.Seq):
			cps.advance()
			v.checkpoint(*c, e != nil)
		case e != nil:
			if err := v.event(e, evs); err != nil {
				return NodeReport{}, err
			}
		default:
			v.end()
			return v.rep, nil
		}
	}
	v.rep.UnanchoredSince = time.Time{} // the walk stopped at the problem
	return v.rep, nil
}

// nodeWalk is the state of one node's verification.
type nodeWalk struct {
	rep  NodeReport
	k    *Keys
	live Live // Live{} for Prune's walk
	// The walk ends after these seqs: Prune's boundary, or the head stored
	// when the walk began.
	eventsEnd, checkpointsEnd int64
	start                     int64  // the prune boundary, 0 for none
	next                      int64  // the seq the next event must have
	prev                      string // the hash the next event must follow
	prevPrev                  string // the hash before prev, "" at the start of the chain
	// adopting is the range of the adoption records walked since the last
	// verified checkpoint; the next one, or the walk's end, counts it.
	adopting *Adoption
}

// closeAdoption counts the range of the adoption records walked since the
// last verified checkpoint.
func (v *nodeWalk) closeAdoption() {
	a := v.adopting
	v.adopting = nil
	if a == nil || a.Events <= 0 {
		return
	}
	v.rep.Adoptions++
	v.rep.AdoptedEvents += a.Events
	if v.rep.LargestAdoption == nil || a.Events > v.rep.LargestAdoption.Events {
		v.rep.LargestAdoption = a
	}
}

func (v *nodeWalk) problem(kind Kind, seq int64, format string, args ...any) {
	v.rep.Problem = &Problem{Kind: kind, Node: v.rep.Node, Seq: seq, Detail: fmt.Sprintf(format, args...)}
}

// checkpoint checks c once every event before it has been walked;
// moreEvents says whether events follow it.
func (v *nodeWalk) checkpoint(c storage.AuditCheckpoint, moreEvents bool) {
	switch {
	case !validCheckpoint(v.k, c):
		v.problem(ForgedCheckpoint, c.Seq, "the %s at seq %d does not carry a valid MAC", c.Kind, c.Seq)
	case c.Seq <= v.start:
		// Vouches for pruned events: nothing left to compare.
	case c.Seq >= v.next && moreEvents:
		v.problem(Deleted, v.next, "seq %d is missing, though a checkpoint covers seq %d", v.next, c.Seq)
	case c.Seq >= v.next:
		v.problem(Truncated, v.next, "a checkpoint covers seq %d but %s", c.Seq, v.storedEnd())
	case c.Hash != v.prev:
		// Recomputed hashes hide where the rewrite began (the outcome MACs
		// would show it, unless they went too): name the first event the
		// previous anchor does not cover, as the live head's check does.
		from := v.rep.Anchored + 1
		v.problem(Modified, from, "the chain up to seq %d differs from its checkpoint: one or more events from seq %d (after the last matching checkpoint) to %d were rewritten", c.Seq, from, c.Seq)
	default:
		v.closeAdoption()
		v.rep.Checkpoints++
		v.rep.Anchored, v.rep.anchoredHash = c.Seq, c.Hash
	}
}

// event checks the next stored event.
func (v *nodeWalk) event(e *storage.AuditEvent, evs *pager[storage.AuditEvent]) error {
	switch {
	case e.Seq < 1:
		v.problem(Inserted, e.Seq, "an event stored as seq %d, where no chain has one: seqs start at 1", e.Seq)
		return nil
	case e.Seq <= v.start:
		v.problem(Inserted, e.Seq, "an event inside the range pruned through seq %d", v.start)
		return nil
	case e.Seq > v.next:
		if v.live.Seq > 0 && e.Seq > v.live.Seq && v.next > v.live.Seq {
			// Everything the writer committed was read: what lies
			// beyond its head, after a gap, was not written by it.
			v.problem(Inserted, e.Seq, "an event beyond the last its writer committed (seq %d)", v.live.Seq)
			return nil
		}
		if v.next == 1 {
			v.problem(Deleted, 1, "the stored events start at seq %d with no prune checkpoint before them", e.Seq)
		} else if e.Seq == v.next+1 {
			v.problem(Deleted, v.next, "seq %d is missing", v.next)
		} else {
			v.problem(Deleted, v.next, "seqs %d to %d are missing", v.next, e.Seq-1)
		}
		return nil
	}
	if e.Unreadable != "" {
		v.problem(Modified, e.Seq, "its %s", e.Unreadable)
		return nil
	}
	if !verifiesAs(e, v.next) || e.PrevHash != v.prev {
		win, i, err := evs.window()
		if err != nil {
			return err
		}
		p := diagnose(win, i, v.next, v.prev, v.prevPrev)
		p.Node = v.rep.Node
		v.rep.Problem = &p
		return nil
	}
	if !outcomeVerifies(v.k, e) {
		win, i, err := evs.window()
		if err != nil {
			return err
		}
		v.rep.Problem = outcomeProblem(v.k, win, i)
		v.rep.Problem.Node = v.rep.Node
		return nil
	}
	if s := e.Superseded; s != nil && s.MAC != "" {
		// An outcome stored with its event, and corrected by one stored
		// apart: both are the writer's, under the same keys.
		switch {
		case !outcomeValid(v.k, e.Hash, s):
			v.problem(OutcomeModified, e.Seq, "the outcome stored with the event (status %d) does not match its MAC", s.Status)
			return nil
		case e.Outcome.MAC == "":
			v.problem(OutcomeModified, e.Seq, "an outcome without a MAC (status %d) stands in for the authenticated one stored with the event (status %d)", e.Outcome.Status, s.Status)
			return nil
		}
	}
	if e.Seq == v.live.Seq && v.live.Hash != "" && e.Hash != v.live.Hash {
		v.problem(Modified, v.rep.Anchored+1, "the chain reaches seq %d with another hash than its writer committed: the events after the last checkpoint (seq %d) were rewritten", e.Seq, v.rep.Anchored)
		return nil
	}
	if e.Path == AdoptionPath {
		// The range is what this walk found unanchored before the record,
		// not what the record says, so checkpoints deleted afterwards only
		// widen it. Records with no verified checkpoint between them make
		// one range, up to the last of them (runs that ended sealed, each
		// adopting the one before; or records planted to cut a range into
		// crash-sized pieces): the checkpoint that closes it was written
		// by the run that wrote that last record.
		if v.adopting == nil {
			v.adopting = &Adoption{From: v.rep.Anchored + 1}
		}
		a := v.adopting
		a.To, a.Events, a.Seq, a.At = e.Seq-1, e.Seq-a.From, e.Seq, e.Time
	}
	if e.Seq == v.rep.Anchored+1 {
		v.rep.UnanchoredSince, v.rep.latest = e.Time, e.Time
	} else if e.Time.After(v.rep.latest) {
		v.rep.latest = e.Time
	}
	evs.advance()
	v.rep.lastTime = e.Time
	v.rep.Events++
	v.rep.Last = e.Seq
	v.prevPrev, v.prev, v.next = v.prev, e.Hash, v.next+1
	switch o := e.Outcome; {
	case o == nil:
		v.rep.MissingOutcomes++
	case o.MAC == "":
		v.rep.UnauthenticatedOutcomes++
	}
	return nil
}

// outcomeVerifies reports whether e's outcome, if it has one with a MAC,
// matches it.
func outcomeVerifies(k *Keys, e *storage.AuditEvent) bool {
	o := e.Outcome
	return o == nil || o.MAC == "" || outcomeValid(k, e.Hash, o)
}

// outcomeValid reports whether o's MAC binds it to the event of hash.
func outcomeValid(k *Keys, hash string, o *storage.AuditOutcome) bool {
	return clean(o.Error) == o.Error && hmac.Equal([]byte(outcomeMAC(k, hash, *o)), []byte(o.MAC))
}

// outcomeProblem names why the outcome of win[i] does not match its MAC.
// The MAC binds the outcome to the event's hash, so it also fails when the
// event was rewritten with a recomputed hash; the event after it then
// either no longer follows it, or (when the rest of the chain was
// recomputed too) carries an outcome that fails as well.
func outcomeProblem(k *Keys, win []storage.AuditEvent, i int) *Problem {
	e := &win[i]
	if i+1 < len(win) && win[i+1].Seq == e.Seq+1 {
		next := &win[i+1]
		if next.PrevHash != e.Hash || (next.Outcome != nil && next.Outcome.MAC != "" && !outcomeVerifies(k, next)) {
			return &Problem{Kind: Modified, Seq: e.Seq, Detail: "it was rewritten with a recomputed hash: its outcome's MAC no longer matches"}
		}
	}
	return &Problem{Kind: OutcomeModified, Seq: e.Seq, Detail: fmt.Sprintf("the outcome (status %d) does not match its MAC", e.Outcome.Status)}
}

// end runs after the last event and checkpoint.
func (v *nodeWalk) end() {
	v.closeAdoption()
	last := v.next - 1
	if v.live.Seq > last {
		v.problem(Truncated, v.next, "the writer has committed seq %d but %s", v.live.Seq, v.storedEnd())
		return
	}
	if v.rep.Unanchored = last - v.rep.Anchored; v.rep.Unanchored == 0 {
		v.rep.UnanchoredSince = time.Time{}
	}
}

// storedEnd says where the stored events end.
func (v *nodeWalk) storedEnd() string {
	switch {
	case v.next == 1:
		return "no event is stored"
	case v.next-1 == v.start:
		return fmt.Sprintf("no event is stored after the prune at seq %d", v.start)
	}
	return fmt.Sprintf("the stored events end at seq %d", v.next-1)
}

// verifiesAs reports whether e's hash is that of its content stored as seq.
func verifiesAs(e *storage.AuditEvent, seq int64) bool {
	c := *e
	c.Seq = seq
	canon, ok := requestBytes(&c)
	return ok && chainHash(c.PrevHash, canon) == c.Hash
}

// diagnose names what broke the chain at seq s, where win[i] is the event
// stored as s (whose hash or link failed), prev the hash it should follow
// and prevPrev the one before (or "" at the start of the chain). The naive
// tampers each leave their own trace: a changed event no longer hashes; an
// event moved to another seq hashes under its original seq; an event
// inserted by moving the later ones up leaves them hashing one seq lower;
// an intact event that follows the event two before it means the one in
// between is foreign.
func diagnose(win []storage.AuditEvent, i int, s int64, prev, prevPrev string) Problem {
	r := &win[i]
	if verifiesAs(r, s) {
		switch {
		case prevPrev != "" && r.PrevHash == prevPrev:
			return Problem{Kind: Inserted, Seq: s - 1, Detail: fmt.Sprintf("the event at seq %d is not in the chain: seq %d follows seq %d", s-1, s, s-2)}
		case prevPrev == "":
			return Problem{Kind: Modified, Seq: s, Detail: fmt.Sprintf("seq %d does not follow the start of the chain", s)}
		}
		return Problem{Kind: Modified, Seq: s - 1, Detail: fmt.Sprintf("seq %d records a different hash for it than it has: it was rewritten", s)}
	}
	predecessor := int64(-1)
	for _, e := range win {
		if e.Hash == r.PrevHash {
			predecessor = e.Seq
		}
	}
	for _, t := range []int64{predecessor + 1, s + 1, s - 1} {
		if t < 1 || t == s || !verifiesAs(r, t) {
			continue
		}
		switch {
		case t < s:
			return Problem{Kind: Inserted, Seq: t, Detail: fmt.Sprintf("the event stored as seq %d was written as seq %d: events were inserted before it", s, t)}
		case predecessor >= 0:
			return Problem{Kind: Reordered, Seq: s, Detail: fmt.Sprintf("the event stored as seq %d was written as seq %d", s, t)}
		}
		return Problem{Kind: Deleted, Seq: s, Detail: fmt.Sprintf("the event stored as seq %d was written as seq %d: events before it were removed and the rest renumbered", s, t)}
	}
	if i+1 < len(win) && win[i+1].Seq == s+1 && win[i+1].PrevHash == prev && verifiesAs(&win[i+1], s) {
		return Problem{Kind: Inserted, Seq: s, Detail: fmt.Sprintf("the event at seq %d is foreign: the one after it was written as seq %d", s, s)}
	}
	return Problem{Kind: Modified, Seq: s, Detail: "its content does not match its hash"}
}

// pager reads rows in pages: fetch returns those after last (nil: from the
// first row, whatever its seq, so that a row planted at seq 0 or below, even
// at the lowest seq there is, is read and named too). It keeps the page before the
// current one for diagnosis.
type pager[T any] struct {
	fetch     func(last *T) ([]T, error)
	prevPage  []T
	page      []T
	pos       int
	exhausted bool
}

func eventPager(ctx context.Context, a Archive, node string) *pager[storage.AuditEvent] {
	return &pager[storage.AuditEvent]{fetch: func(last *storage.AuditEvent) ([]storage.AuditEvent, error) {
		var after *int64
		if last != nil {
			after = &last.Seq
		}
		page, err := a.AuditEvents(ctx, node, after, pageSize)
		if err == nil && last != nil && len(page) > 0 && page[0].Seq <= last.Seq {
			err = errNoProgress
		}
		return page, err
	}}
}

func checkpointPager(ctx context.Context, a Archive, node string) *pager[storage.AuditCheckpoint] {
	return &pager[storage.AuditCheckpoint]{fetch: func(last *storage.AuditCheckpoint) ([]storage.AuditCheckpoint, error) {
		page, err := a.AuditCheckpoints(ctx, node, last, pageSize)
		// Kinds are ordered by the database's collation, not Go's: a
		// page's first row may only not be the last one again.
		if err == nil && last != nil && len(page) > 0 &&
			(page[0].Seq < last.Seq || (page[0].Seq == last.Seq && page[0].Kind == last.Kind)) {
			err = errNoProgress
		}
		return page, err
	}}
}

// errNoProgress: a page did not start after the previous one ended, which
// would read the same rows for ever. The reads order by what they page on,
// so it means a row the order cannot place (as a value of a type the writer
// never stores could be).
var errNoProgress = errors.New("audit: a page of the log did not start after the previous one")

// last is the last row of the current page, nil before the first.
func (p *pager[T]) last() *T {
	if n := len(p.page); n > 0 {
		return &p.page[n-1]
	}
	return nil
}

// peek returns the current row without moving past it; nil at the end.
func (p *pager[T]) peek() (*T, error) {
	if p.pos < len(p.page) {
		return &p.page[p.pos], nil
	}
	if p.exhausted {
		return nil, nil
	}
	page, err := p.fetch(p.last())
	if err != nil {
		return nil, err
	}
	if len(page) == 0 {
		p.exhausted = true
		return nil, nil
	}
	p.prevPage, p.page, p.pos = p.page, page, 0
	return &p.page[0], nil
}

func (p *pager[T]) advance() { p.pos++ }

// next returns the current row and moves past it.
func (p *pager[T]) next() (*T, error) {
	row, err := p.peek()
	if row != nil {
		p.advance()
	}
	return row, err
}

// window returns the rows around the current one (the previous page, this
// one and the next) and the current one's index among them.
func (p *pager[T]) window() ([]T, int, error) {
	win := append(slices.Clone(p.prevPage), p.page...)
	more, err := p.fetch(p.last())
	if err != nil {
		return nil, 0, err
	}
	return append(win, more...), len(p.prevPage) + p.pos, nil
}
