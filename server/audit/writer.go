package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Store is what the writer needs from storage.
type Store interface {
	AuditHead(ctx context.Context, node string) (storage.AuditHead, error)
	AppendAudit(ctx context.Context, b storage.AuditBatch) (int64, error)
}

var _ Store = (*storage.DB)(nil)

// ErrUnavailable is what Append and Record return when the event could not
// be stored: the request must be refused (503) and nothing changed. The
// cause is wrapped (storage.ErrUnavailable, ErrClosed, a context error).
var ErrUnavailable = fault.New(fault.Unavailable, "audit log unavailable")

// ErrClosed is the cause when the writer has been closed.
var ErrClosed = errors.New("audit: writer closed")

// abandonedError is the outcome recorded for an event whose request gave
// up waiting (its context ended) before the commit it was part of.
const abandonedError = "request ended before its audit event was stored"

// Options tune a Writer. Zero values take the defaults.
type Options struct {
	// MaxBatch is the most events one transaction carries (default 256).
	MaxBatch int
	// CheckpointEvery and CheckpointInterval: a checkpoint is written
	// every CheckpointEvery events (default 1000) or CheckpointInterval
	// (default 5s), whichever comes first, while keys are set.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// OutcomeDelay is how long an outcome waits for an append to carry
	// it before it is written on its own (default 10ms): under load,
	// outcomes ride in the appends' transactions.
	OutcomeDelay time.Duration
	// CommitTimeout bounds one transaction (default 10s).
	CommitTimeout time.Duration
	// Sink, when set, receives every committed event as one JSON line
	// (Event.MarshalJSON's form plus "type":"event"), and each outcome
	// written later as a line of type "outcome" keyed by node and seq.
	// Lines are written after the commit, by the writer goroutine.
	Sink io.Writer
	// OnError receives what no caller can be told: outcomes or
	// checkpoints that failed to store (they are retried), sink failures,
	// outcomes lost at Close. Default: slog's default logger.
	OnError func(error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 5 * time.Second
	}
	if o.OutcomeDelay <= 0 {
		o.OutcomeDelay = 10 * time.Millisecond
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 10 * time.Second
	}
	if o.OnError == nil {
		o.OnError = func(err error) { slog.Error("audit log", "error", err) }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Writer appends one node's events to its chain, committing concurrent
// appends together. It is safe for concurrent use.
type Writer struct {
	store   Store
	node    string
	opt     Options
	keys    atomic.Pointer[Keys]
	queue   chan *request
	wake    chan struct{} // an outcome was queued
	quit    chan struct{} // Close was called
	stopped chan struct{} // the writer goroutine has ended

	mu       sync.Mutex
	head     int64 // the last committed seq and its hash
	headHash string
	awaiting map[int64]string // hash of each appended event awaiting Complete
	outcomes []storage.AuditOutcome
	hashes   map[int64]string // hash of each queued outcome's event
	closed   bool
	ended    bool // the goroutine has written its last outcome
	closeCtx context.Context
	closeErr error

	// Owned by the writer goroutine.
	base           context.Context // commits run under it: Close's context once closing
	lastCheckpoint int64
	checkpointDue  bool
	reload         bool // a seq was taken: re-read the head first
	backoff        time.Duration
	retryAt        time.Time
}

// request is one Append or Record waiting for its batch.
type request struct {
	ev    storage.AuditEvent
	done  chan result
	state atomic.Int32 // waiting, delivered or abandoned
}

const (
	waiting int32 = iota
	delivered
	abandoned
)

type result struct {
	seq int64
	err error
}

// NewWriter starts the writer of node's chain, continuing from the head
// stored for it. A checkpoint beyond the last stored event (the events
// after it were all pruned, or the tail was cut) becomes the head, so a
// seq a checkpoint covers is never written twice; a cut tail is reported to
// OnError and shows in Verify.
func NewWriter(ctx context.Context, store Store, node string, opt Options) (*Writer, error) {
	if node == "" || clean(node) != node {
		return nil, fmt.Errorf("audit: node name %q is empty or not clean UTF-8", node)
	}
	opt.defaults()
	h, err := store.AuditHead(ctx, node)
	if err != nil {
		return nil, unavailable(err)
	}
	w := &Writer{
		store: store, node: node, opt: opt,
		queue:    make(chan *request, opt.MaxBatch),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
		awaiting: map[int64]string{},
		hashes:   map[int64]string{},
		base:     context.Background(),
	}
	w.adoptHead(h)
	go w.run()
	return w, nil
}

func (w *Writer) adoptHead(h storage.AuditHead) {
	seq, hash := h.Seq, h.Hash
	if seq == 0 {
		hash = GenesisHash
	}
	if h.CheckpointSeq > seq {
		if h.CheckpointKind != kindPrune {
			w.opt.OnError(fmt.Errorf("audit: node %s: stored events end at seq %d but a checkpoint covers seq %d: the tail was removed; continuing after the checkpoint", w.node, seq, h.CheckpointSeq))
		}
		seq, hash = h.CheckpointSeq, h.CheckpointHash
	}
	w.mu.Lock()
	w.head, w.headHash = seq, hash
	w.mu.Unlock()
	w.lastCheckpoint = min(h.CheckpointSeq, seq)
}

// SetKeys gives the writer the audit keys (on unseal), or takes them away
// (nil, on seal). Without keys, outcomes carry no MAC and no checkpoint is
// written; the first checkpoint after keys return covers everything before.
func (w *Writer) SetKeys(k *Keys) { w.keys.Store(k) }

// Head returns the last committed seq and its hash (0 and GenesisHash for a
// node that has written nothing), for Verify's truncation check.
func (w *Writer) Head() (seq int64, hash string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.head, w.headHash
}

// Append stores the request part of e and returns its seq once its batch
// has committed: the request may be served only then. Every successful
// Append must be followed by one Complete with the returned seq. An error
// wraps ErrUnavailable (the event may still be stored if ctx ended while
// its batch committed; its outcome then says so).
func (w *Writer) Append(ctx context.Context, e Event) (int64, error) {
	if e.Outcome != nil {
		return 0, errors.New("audit: Append takes the request part only; use Record for a complete event")
	}
	return w.submit(ctx, e)
}

// Record stores a complete event (e.Outcome set) at once and returns when
// it has committed: for requests that never reach a handler, before their
// error response is sent. An error wraps ErrUnavailable.
func (w *Writer) Record(ctx context.Context, e Event) error {
	if e.Outcome == nil {
		return errors.New("audit: Record needs the event's outcome")
	}
	_, err := w.submit(ctx, e)
	return err
}

func unavailable(cause error) error {
	return fault.Wrap(fault.Unavailable, ErrUnavailable.Msg, cause)
}

func (w *Writer) submit(ctx context.Context, e Event) (int64, error) {
	ev, err := e.stored(w.opt.Now)
	if err != nil {
		return 0, err
	}
	r := &request{ev: ev, done: make(chan result, 1)}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return 0, unavailable(ErrClosed)
	}
	select {
	case w.queue <- r:
	case <-ctx.Done():
		return 0, unavailable(ctx.Err())
	case <-w.stopped:
		return 0, unavailable(ErrClosed)
	}
	select {
	case res := <-r.done:
		return res.seq, res.err
	case <-w.stopped:
		select {
		case res := <-r.done:
			return res.seq, res.err
		default:
			return 0, unavailable(ErrClosed) // queued after the last batch: never written
		}
	case <-ctx.Done():
		if r.state.CompareAndSwap(waiting, abandoned) {
			return 0, unavailable(ctx.Err())
		}
		res := <-r.done
		return res.seq, res.err
	}
}

// Complete records the outcome of the event Append stored as seq. It does
// not wait: outcomes are written in the background, with later appends or
// on their own, and retried until stored. What cannot be stored (an
// unknown seq, an invalid status, a writer already closed) goes to
// OnError.
func (w *Writer) Complete(seq int64, o Outcome) {
	out, err := o.stored()
	w.mu.Lock()
	hash, ok := w.awaiting[seq]
	delete(w.awaiting, seq)
	switch {
	case !ok:
		err = fmt.Errorf("audit: node %s: an outcome for seq %d, which awaits none", w.node, seq)
	case err != nil:
		err = fmt.Errorf("audit: node %s: outcome of seq %d not stored: %w", w.node, seq, err)
	case w.ended:
		err = fmt.Errorf("audit: node %s: outcome of seq %d lost: %w", w.node, seq, ErrClosed)
	default:
		out.Seq = seq
		w.queueOutcome(out, hash)
	}
	w.mu.Unlock()
	if err != nil {
		w.opt.OnError(err)
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// queueOutcome adds an outcome to write; w.mu is held.
func (w *Writer) queueOutcome(o storage.AuditOutcome, hash string) {
	w.outcomes = append(w.outcomes, o)
	w.hashes[o.Seq] = hash
}

// Close stops accepting events, writes what is queued, flushes outcomes
// (retrying until ctx ends) and writes a final checkpoint if keys are set.
// It returns, soon after ctx ends at the latest, an error if outcomes or
// the checkpoint could not be written (also given to OnError).
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closed
	if first {
		w.closed, w.closeCtx = true, ctx
	}
	w.mu.Unlock()
	if first {
		close(w.quit)
	}
	<-w.stopped // the shutdown ends soon after ctx does: its commits run under ctx
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closeErr
}

// run is the writer goroutine: it waits for work and commits it in batches.
func (w *Writer) run() {
	defer close(w.stopped)
	tick := time.NewTicker(w.opt.CheckpointInterval)
	defer tick.Stop()
	// outcomeTimer flushes outcomes that no append has carried along
	// within OutcomeDelay, or retries them after a failure.
	outcomeTimer := time.NewTimer(time.Hour)
	outcomeTimer.Stop()
	defer outcomeTimer.Stop()
	armed := false
	for {
		var batch []*request
		select {
		case r := <-w.queue:
			batch = w.collect(r)
		case <-w.wake:
			if w.queuedOutcomes() < w.opt.MaxBatch {
				if !armed {
					outcomeTimer.Reset(w.opt.OutcomeDelay)
					armed = true
				}
				continue
			}
		case <-outcomeTimer.C:
			armed = false
		case <-tick.C:
			w.checkpointDue = true
		case <-w.quit:
			w.shutdown()
			return
		}
		_ = w.flush(batch) // failures reach the waiters or OnError
		if w.queuedOutcomes() > 0 && !armed {
			outcomeTimer.Reset(max(w.opt.OutcomeDelay, time.Until(w.retryAt)))
			armed = true
		}
	}
}

func (w *Writer) queuedOutcomes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.outcomes)
}

// collect takes first and whatever else is queued, up to MaxBatch.
func (w *Writer) collect(first *request) []*request {
	batch := []*request{first}
	for len(batch) < w.opt.MaxBatch {
		select {
		case r := <-w.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// flush writes batch (which may be empty), the outcomes due and a
// checkpoint if one is due, in one transaction.
func (w *Writer) flush(batch []*request) error {
	if w.reload {
		ctx, cancel := context.WithTimeout(w.base, w.opt.CommitTimeout)
		h, err := w.store.AuditHead(ctx, w.node)
		cancel()
		if err != nil {
			w.fail(batch, nil, false, err)
			return err
		}
		w.adoptHead(h)
		w.reload = false
	}
	keys := w.keys.Load()
	now := w.opt.Now()
	w.mu.Lock()
	seq, hash := w.head, w.headHash
	var outs []storage.AuditOutcome
	if !time.Now().Before(w.retryAt) {
		outs = append(outs, w.outcomes[:min(len(w.outcomes), w.opt.MaxBatch)]...)
	}
	for i := range outs {
		outs[i].MAC = outcomeMAC(keys, w.hashes[outs[i].Seq], outs[i])
	}
	w.mu.Unlock()

	b := storage.AuditBatch{Node: w.node, Outcomes: outs}
	for _, r := range batch {
		ev := r.ev
		seq++
		ev.Node, ev.Seq, ev.PrevHash = w.node, seq, hash
		canon, _ := requestBytes(&ev) // stored() cleaned every field
		ev.Hash = chainHash(hash, canon)
		hash = ev.Hash
		if ev.Outcome != nil {
			o := *ev.Outcome
			o.Seq, o.MAC = seq, outcomeMAC(keys, ev.Hash, o)
			ev.Outcome = &o
		}
		b.Events = append(b.Events, ev)
	}
	if keys != nil && seq > w.lastCheckpoint && (w.checkpointDue || seq-w.lastCheckpoint >= int64(w.opt.CheckpointEvery)) {
		cp := storage.AuditCheckpoint{Node: w.node, Seq: seq, Hash: hash, Kind: kindCheckpoint, CreatedAt: now.UTC()}
		cp.MAC = checkpointMAC(keys, cp)
		b.Checkpoint = &cp
	} else if keys == nil || seq == w.lastCheckpoint {
		w.checkpointDue = false // nothing to vouch for, or no key to do it
	}
	if len(b.Events) == 0 && len(b.Outcomes) == 0 && b.Checkpoint == nil {
		return nil
	}

	ctx, cancel := context.WithTimeout(w.base, w.opt.CommitTimeout)
	applied, err := w.store.AppendAudit(ctx, b)
	cancel()
	if err != nil {
		w.fail(batch, outs, b.Checkpoint != nil, err)
		return err
	}
	w.committed(batch, b, applied)
	return nil
}

// fail hands err to every waiter of the batch; the head does not move, so
// the next batch reuses the seqs. Outcomes stay queued and are retried
// after a growing pause (appends meanwhile go without them).
func (w *Writer) fail(batch []*request, outs []storage.AuditOutcome, checkpoint bool, err error) {
	for _, r := range batch {
		r.done <- result{err: unavailable(err)}
	}
	if errors.Is(err, storage.ErrConflict) && len(batch) > 0 {
		w.reload = true
		w.opt.OnError(fmt.Errorf("audit: node %s: the store refused a batch as a conflict (is another server using node name %q?); re-reading the head: %w", w.node, w.node, err))
	}
	if len(outs) > 0 || checkpoint {
		w.backoff = min(max(2*w.backoff, 100*time.Millisecond), 5*time.Second)
		w.retryAt = time.Now().Add(w.backoff)
		w.opt.OnError(fmt.Errorf("audit: node %s: storing %d outcome(s) (checkpoint: %t) failed, retrying in %s: %w", w.node, len(outs), checkpoint, w.backoff, err))
	}
}

// committed moves the head, hands each waiter its seq and writes the sink.
func (w *Writer) committed(batch []*request, b storage.AuditBatch, applied int64) {
	w.mu.Lock()
	if n := len(b.Events); n > 0 {
		w.head, w.headHash = b.Events[n-1].Seq, b.Events[n-1].Hash
	}
	w.outcomes = w.outcomes[len(b.Outcomes):]
	for _, o := range b.Outcomes {
		delete(w.hashes, o.Seq)
	}
	for i, r := range batch {
		ev := b.Events[i]
		if !r.state.CompareAndSwap(waiting, delivered) {
			if ev.Outcome == nil {
				w.queueOutcome(storage.AuditOutcome{Seq: ev.Seq, Error: abandonedError}, ev.Hash)
			}
			continue
		}
		if ev.Outcome == nil {
			w.awaiting[ev.Seq] = ev.Hash
		}
	}
	w.mu.Unlock()
	for i, r := range batch {
		r.done <- result{seq: b.Events[i].Seq}
	}
	if b.Checkpoint != nil {
		w.lastCheckpoint, w.checkpointDue = b.Checkpoint.Seq, false
	}
	if len(b.Outcomes) > 0 {
		w.backoff, w.retryAt = 0, time.Time{}
		if applied < int64(len(b.Outcomes)) {
			w.opt.OnError(fmt.Errorf("audit: node %s: %d of %d outcome(s) found no event awaiting one", w.node, int64(len(b.Outcomes))-applied, len(b.Outcomes)))
		}
	}
	w.sink(b)
}

// sink writes the committed batch's lines to Options.Sink.
func (w *Writer) sink(b storage.AuditBatch) {
	if w.opt.Sink == nil {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range b.Events {
		if err := enc.Encode(eventLine("event", e)); err != nil {
			w.opt.OnError(fmt.Errorf("audit: node %s: encoding event %d for the sink: %w", w.node, e.Seq, err))
		}
	}
	for _, o := range b.Outcomes {
		if err := enc.Encode(outcomeLine(w.node, o)); err != nil {
			w.opt.OnError(fmt.Errorf("audit: node %s: encoding outcome %d for the sink: %w", w.node, o.Seq, err))
		}
	}
	if _, err := w.opt.Sink.Write(buf.Bytes()); err != nil {
		w.opt.OnError(fmt.Errorf("audit: node %s: writing to the sink: %w", w.node, err))
	}
}

// shutdown writes what is queued, then outcomes and a final checkpoint,
// retrying until Close's context ends.
func (w *Writer) shutdown() {
	w.mu.Lock()
	ctx := w.closeCtx
	w.mu.Unlock()
	w.base = ctx
	for {
		var batch []*request
		select {
		case r := <-w.queue:
			batch = w.collect(r)
		default:
		}
		if len(batch) == 0 {
			break
		}
		_ = w.flush(batch)
	}
	// Outcomes and the final checkpoint. Whether anything is left is
	// decided under the lock that Complete takes, together with marking
	// the writer ended, so no outcome slips in unwritten and unreported.
	var lastErr error
	for {
		keys := w.keys.Load()
		w.mu.Lock()
		left := len(w.outcomes)
		finished := left == 0 && (keys == nil || w.head <= w.lastCheckpoint)
		ended := finished || ctx.Err() != nil
		if ended {
			w.ended = true
			if !finished {
				w.closeErr = fmt.Errorf("audit: node %s: closed with %d outcome(s) unwritten and the last checkpoint at seq %d of %d: %w",
					w.node, left, w.lastCheckpoint, w.head, errors.Join(ctx.Err(), lastErr))
			}
		}
		orphans, closeErr := len(w.awaiting), w.closeErr
		w.mu.Unlock()
		if ended {
			if closeErr != nil {
				w.opt.OnError(closeErr)
			}
			if orphans > 0 {
				w.opt.OnError(fmt.Errorf("audit: node %s: closed with %d event(s) whose outcome never came", w.node, orphans))
			}
			return
		}
		if wait := time.Until(w.retryAt); wait > 0 {
			select {
			case <-ctx.Done():
				continue
			case <-time.After(wait):
			}
		}
		w.checkpointDue = true
		lastErr = w.flush(nil)
	}
}
