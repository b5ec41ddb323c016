package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// Store is what the writer needs from storage.
type Store interface {
	AuditHead(ctx context.Context, node string) (storage.AuditHead, error)
	AppendAudit(ctx context.Context, b storage.AuditBatch) error
	StoreAuditOutcomes(ctx context.Context, node string, outs []storage.AuditOutcome) (int64, error)
}

var _ Store = (*storage.DB)(nil)

// ErrUnavailable is what Append and Record return when the event could not
// be stored: the request must be refused (503) and nothing changed. The
// cause is wrapped (storage.ErrUnavailable, ErrClosed, a context error).
var ErrUnavailable = fault.New(fault.Unavailable, "audit log unavailable")

// ErrClosed is the cause when the writer has been closed.
var ErrClosed = errors.New("audit: writer closed")

// ErrDiverged is the cause while the node's stored chain does not end where
// the writer left it (nor with a batch it could not confirm): another
// server writes under its node name, or the log was changed in the
// database. The writer extends neither, so it never vouches for rows it
// did not write with a checkpoint.
var ErrDiverged = errors.New("audit: the stored chain no longer ends where this writer left it")

// abandonedError is the outcome recorded for an event whose request gave
// up waiting (its context ended) before the commit it was part of.
const abandonedError = "request ended before its audit event was stored"

// Options tune a Writer. Zero values take the defaults.
type Options struct {
	// MaxBatch is the most events, or outcomes, one transaction carries
	// (default 256).
	MaxBatch int
	// CheckpointEvery and CheckpointInterval: a checkpoint is written
	// every CheckpointEvery events (default 1000) or CheckpointInterval
	// (default 5s), whichever comes first, while keys are set.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// OutcomeDelay is how long the first of a group of outcomes waits for
	// more before the group is written (default 100ms), unless MaxBatch
	// are waiting already: outcomes make no request wait, so they are
	// written in large groups, which costs the database less.
	OutcomeDelay time.Duration
	// MaxQueuedOutcomes bounds the outcomes waiting to be stored (default
	// 100,000): while the store refuses them, memory stays bounded; the
	// excess is dropped and reported (Verify counts their events as
	// missing an outcome).
	MaxQueuedOutcomes int
	// CommitTimeout bounds one transaction (default 10s).
	CommitTimeout time.Duration
	// Sink, when set, receives every committed event as one JSON line
	// (Event.MarshalJSON's form plus "type":"event"), and each outcome
	// written later as a line of type "outcome" keyed by node and seq.
	// Lines are written after the commit, an event's before its outcome's,
	// by a goroutine of their own: a sink that stalls (a stuck pipe, a full
	// disk) never stalls requests. Lines it cannot keep up with are
	// dropped (the database keeps every event) and OnError says so, once
	// when dropping starts and once, with the count, when it ends.
	Sink io.Writer
	// OnError receives what no caller can be told: outcomes or
	// checkpoints that failed to store (they are retried), sink failures,
	// outcomes lost at Close. Default: slog's default logger.
	OnError func(error)
	// OnNotice receives what is worth an operator's notice but is no
	// failure: a refusal that has ended. Default: slog's default logger.
	OnNotice func(msg string)
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
		o.OutcomeDelay = 100 * time.Millisecond
	}
	if o.MaxQueuedOutcomes <= 0 {
		o.MaxQueuedOutcomes = 100_000
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 10 * time.Second
	}
	if o.OnError == nil {
		o.OnError = func(err error) { slog.Error("audit log", "error", err) }
	}
	if o.OnNotice == nil {
		o.OnNotice = func(msg string) { slog.Info("audit log", "notice", msg) }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Writer appends one node's events to its chain, committing concurrent
// appends together, and stores their outcomes apart. It is safe for
// concurrent use.
//
// Two goroutines write. The appender takes what is queued, up to
// Options.MaxBatch, and commits it in one transaction (on PostgreSQL one
// statement), then takes what queued meanwhile: a request waits for the
// commit under way, if any, and its own. The outcome writer stores
// outcomes in transactions of their own, so they never delay an append
// and a store that refuses them never refuses a request.
type Writer struct {
	store       Store
	node        string
	opt         Options
	keys        atomic.Pointer[Keys]
	queue       chan *request
	wake        chan struct{} // an outcome was queued
	quit        chan struct{} // Close was called
	appendsDone chan struct{} // the appender has ended: no more events
	stopped     chan struct{} // both goroutines have ended
	sinkLines   chan []byte   // encoded lines waiting for the sink
	sinkDone    chan struct{} // the sink goroutine has ended
	sinkClose   sync.Once
	sinkMu      sync.Mutex // orders the two below with the queueing
	dropping    bool       // the sink queue was full at the last try
	dropped     int64      // lines dropped since dropping began

	mu       sync.Mutex
	head     int64 // the last committed seq and its hash
	headHash string
	awaiting map[int64]string // hash of each appended event awaiting Complete
	// jumpedTo is the checkpoint the head was last taken from, beyond the
	// stored events, until keys are at hand to check it.
	jumpedTo *storage.AuditCheckpoint
	// forgedJump is the seq of a jumped-to checkpoint found forged, until
	// the appender records the chain up to it as adopted.
	forgedJump int64
	outcomes   []storage.AuditOutcome // completed, MAC'd, waiting to be stored
	// outcomesDropped counts outcomes dropped because the queue was full,
	// since the last report.
	outcomesDropped int64
	closed          bool
	ended           bool // the outcome writer has written its last outcome
	closeCtx        context.Context
	closeErr        error

	// run is the context every commit runs under; it ends when Close's
	// context does, so no commit outlives Close by CommitTimeout.
	run       context.Context
	cancelRun context.CancelFunc

	// Owned by the appender.
	scratch        []byte          // reused to hash each event
	base           context.Context // commits run under it: Close's context once closing
	lastCheckpoint int64
	checkpointDue  bool
	// checkpointFailing: the last batch that carried a checkpoint failed.
	// Until a checkpoint is stored again, checkpoints travel alone (on the
	// ticker), so a checkpoint the store refuses (a lock, a permission, a
	// trigger on the hash chain) does not refuse every request with it.
	checkpointFailing bool
	reload            bool // a seq was taken: re-read the head first
	// adoption is the record (see AdoptionPath) of the unanchored events
	// the writer found when it started, until a batch stores it first.
	adoption *storage.AuditEvent
	// anchor is the checkpoint the stored chain ended at when the writer
	// started, taken as vouching for it: until keys are at hand to check
	// its MAC, which decides whether the chain was adopted after all.
	anchor   *storage.AuditCheckpoint
	diverged bool // the last head re-read did not end with this writer's
	// unsure holds the events of a batch whose commit failed in a way that
	// does not say whether it happened (a timeout, a lost connection).
	unsure     []storage.AuditEvent
	unsureKeys *Keys // the keys unsure's outcomes were MAC'd under

	// Owned by the outcome writer.
	backoff time.Duration
	retryAt time.Time
}

// request is one Append or Record waiting for its batch.
type request struct {
	ev    storage.AuditEvent
	done  chan result
	state atomic.Int32 // waiting, delivered or abandoned
	// offer is open until the appender cuts the request's batch (cut),
	// unless Pending.Done offers the outcome first (offered: outcome is
	// set, and the event is stored whole).
	offer   atomic.Int32
	outcome storage.AuditOutcome
}

const (
	open int32 = iota
	offered
	cut
)

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
		queue:       make(chan *request, opt.MaxBatch),
		wake:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		appendsDone: make(chan struct{}),
		stopped:     make(chan struct{}),
		awaiting:    map[int64]string{},
	}
	w.run, w.cancelRun = context.WithCancel(context.Background())
	w.base = w.run
	w.adoptHead(h)
	// Taken on trust until keys can check it (startOn, checkAnchor). A head
	// re-read later leaves it alone: by then the writer knows which
	// checkpoints it wrote, and a row planted meanwhile must not pass for one.
	w.lastCheckpoint = min(h.CheckpointSeq, w.head)
	w.startOn(h)
	if opt.Sink != nil {
		w.sinkLines, w.sinkDone = make(chan []byte, sinkQueue), make(chan struct{})
		go w.sinkWriter()
	}
	go w.appender()
	go w.outcomeWriter()
	return w, nil
}

// storedEnd is where a stored chain ends for a writer continuing it: its
// last event, or the checkpoint beyond it (after a prune of everything, or
// a cut tail), jumped true.
func storedEnd(h storage.AuditHead) (seq int64, hash string, jumped bool) {
	seq, hash = h.Seq, h.Hash
	if seq == 0 {
		hash = GenesisHash
	}
	if h.CheckpointSeq > seq {
		return h.CheckpointSeq, h.CheckpointHash, true
	}
	return seq, hash, false
}

func (w *Writer) adoptHead(h storage.AuditHead) {
	seq, hash, jump := storedEnd(h)
	var jumped *storage.AuditCheckpoint
	if jump {
		if h.CheckpointKind != kindPrune {
			w.opt.OnError(fmt.Errorf("audit: node %s: stored events end at seq %d but a checkpoint covers seq %d: the tail was removed; continuing after the checkpoint", w.node, h.Seq, h.CheckpointSeq))
		}
		jumped = &storage.AuditCheckpoint{Node: w.node, Seq: h.CheckpointSeq, Hash: h.CheckpointHash, Kind: h.CheckpointKind, MAC: h.CheckpointMAC}
	}
	w.mu.Lock()
	w.head, w.headHash = seq, hash
	if jumped != nil {
		w.jumpedTo = jumped
	} // else one not checked yet stays to be checked: a re-read must not clear it
	w.mu.Unlock()
	w.checkJump(w.keys.Load())
}

// startOn decides, from the head a starting writer read, whether it
// continues from events no checkpoint vouches for: events after the last
// checkpoint, or a last event whose hash is not the checkpoint's at its
// seq (rewritten under it). Then its first batch records the adoption
// (see AdoptionPath). A chain that ends at its checkpoint is taken as
// vouched for until keys are at hand to check that checkpoint's MAC (see
// checkAnchor); one that ends at a checkpoint beyond the stored events
// is checkJump's.
func (w *Writer) startOn(h storage.AuditHead) {
	seq, hash, jumped := storedEnd(h)
	switch {
	case jumped || seq == 0:
	case seq == h.CheckpointSeq && hash == h.CheckpointHash:
		w.anchor = &storage.AuditCheckpoint{Node: w.node, Seq: h.CheckpointSeq, Hash: h.CheckpointHash,
			Kind: h.CheckpointKind, MAC: h.CheckpointMAC}
	case seq == h.CheckpointSeq:
		w.adopt(1, seq) // rewritten under the checkpoint: from where, nothing here says
	default:
		w.adopt(h.CheckpointSeq+1, seq)
	}
}

// startUnsettled reports whether what the writer found at its start is
// still to be checked or recorded (an anchor, a forged jump, an adoption
// record): a stop with keys settles it with one more batch, even if no
// request came, rather than end as if the chain were anchored.
func (w *Writer) startUnsettled() bool {
	w.mu.Lock()
	forged := w.forgedJump > 0 || w.jumpedTo != nil
	w.mu.Unlock()
	return forged || w.anchor != nil || w.adoption != nil
}

// settleStart runs, before each batch, the checks of what the writer found
// at its start that need keys (an anchor, a jump past the stored events),
// and queues the adoption record a forged one calls for, so that it goes
// before any checkpoint of this batch. checkJump also runs at SetKeys;
// whichever comes first checks.
func (w *Writer) settleStart(keys *Keys) {
	w.checkAnchor(keys)
	w.checkJump(keys)
	w.mu.Lock()
	forged := w.forgedJump
	w.forgedJump = 0
	w.mu.Unlock()
	if forged > 0 {
		w.adopt(1, forged)
	}
}

// adopt queues the record of continuing from seqs from to to, unless one
// is queued already.
func (w *Writer) adopt(from, to int64) {
	if w.adoption == nil {
		rec := adoptionEvent(from, to)
		w.adoption = &rec
	}
}

// checkAnchor checks, once keys are at hand, the MAC of the checkpoint the
// writer took its starting chain to be vouched for by: one that does not
// verify was put there by someone without the audit key, so the chain up
// to it was adopted, not continued, and the next batch records so.
func (w *Writer) checkAnchor(k *Keys) {
	a := w.anchor
	if k == nil || a == nil {
		return
	}
	w.anchor = nil
	if !validCheckpoint(k, *a) {
		w.opt.OnError(fmt.Errorf("audit: node %s: the checkpoint at seq %d that this writer's chain started from does not carry a valid MAC: it was written into the database by someone without the audit key (audit verify names it); recording the events before it as adopted", w.node, a.Seq))
		w.adopt(1, a.Seq)
	}
}

// checkJump checks, once keys are at hand, the MAC of the checkpoint the
// head was taken from when it lay beyond the stored events: the writer
// must continue from it (a prune leaves one), before it can know whether
// the database's owner or someone else wrote it. A forged one is reported.
func (w *Writer) checkJump(k *Keys) {
	if k == nil {
		return
	}
	// Taking the checkpoint and marking it forged happen together, so an
	// appender that checks too (it does before every batch) either checks
	// it itself or sees the mark: no checkpoint of its slips in between.
	w.mu.Lock()
	cp := w.jumpedTo
	w.jumpedTo = nil
	forged := cp != nil && !validCheckpoint(k, *cp)
	if forged {
		w.forgedJump = cp.Seq // the appender records the adoption
	}
	w.mu.Unlock()
	if forged {
		w.opt.OnError(fmt.Errorf("audit: node %s: this writer continued its chain from a %s at seq %d beyond the stored events, and that row does not carry a valid MAC: it was written into the database by someone without the audit key (audit verify names it while it stands); recording the events before it as adopted", w.node, cp.Kind, cp.Seq))
	}
}

// SetKeys gives the writer the audit keys (on unseal), or takes them away
// (nil, on seal). Without keys, outcomes carry no MAC and no checkpoint is
// written; the first checkpoint after keys return covers everything before.
func (w *Writer) SetKeys(k *Keys) {
	w.keys.Store(k)
	w.checkJump(k)
}

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
	p, err := w.Start(ctx, e)
	if err != nil {
		return 0, err
	}
	seq, _, err := p.Wait(ctx)
	return seq, err
}

// Pending is an event Start queued.
type Pending interface {
	// Done offers the request's outcome as soon as its answer is ready
	// (before it is sent), at most once and before Wait. If the event's
	// batch has not been cut yet, the event is stored whole, its outcome
	// in its row; otherwise the outcome is Complete's to store, as usual.
	Done(o Outcome)
	// Wait returns the event's seq once its batch has committed, with
	// Append's errors, and must be called. whole reports that the outcome
	// given to Done was stored with the event: no Complete may follow.
	Wait(ctx context.Context) (seq int64, whole bool, err error)
}

// Start queues the request part of e and returns without waiting for its
// batch. Until Pending.Wait has returned without error the request may be
// worked on only in ways that change nothing and send nothing: a read may
// fetch its answer meanwhile, but not send it.
func (w *Writer) Start(ctx context.Context, e Event) (Pending, error) {
	if e.Outcome != nil {
		return nil, errors.New("audit: Append takes the request part only; use Record for a complete event")
	}
	r, err := w.enqueue(ctx, e)
	if err != nil {
		return nil, err
	}
	return pending{w, r}, nil
}

// pending is the Writer's Pending.
type pending struct {
	w *Writer
	r *request
}

func (p pending) Done(o Outcome) {
	out, err := o.stored()
	if err != nil {
		return // not offered: Complete gets it, and reports it
	}
	if p.r.offer.Load() != open {
		return // cut already: the outcome goes to Complete
	}
	p.r.outcome = out // published by the swap; read only by whoever sees it offered
	p.r.offer.CompareAndSwap(open, offered)
}

func (p pending) Wait(ctx context.Context) (int64, bool, error) {
	seq, err := p.w.await(ctx, p.r)
	if err != nil {
		return 0, false, err
	}
	// The batch was cut before its commit answered: the offer is settled.
	return seq, p.r.offer.Load() == offered, nil
}

// Record stores a complete event (e.Outcome set) at once and returns when
// it has committed: for requests that never reach a handler, before their
// error response is sent. An error wraps ErrUnavailable.
func (w *Writer) Record(ctx context.Context, e Event) error {
	if e.Outcome == nil {
		return errors.New("audit: Record needs the event's outcome")
	}
	r, err := w.enqueue(ctx, e)
	if err != nil {
		return err
	}
	_, err = w.await(ctx, r)
	return err
}

func unavailable(cause error) error {
	return fault.Wrap(fault.Unavailable, ErrUnavailable.Msg, cause)
}

// enqueue hands e to the appender.
func (w *Writer) enqueue(ctx context.Context, e Event) (*request, error) {
	ev, err := e.stored(w.opt.Now)
	if err != nil {
		return nil, err
	}
	r := &request{ev: ev, done: make(chan result, 1)}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return nil, unavailable(ErrClosed)
	}
	select {
	case w.queue <- r:
		return r, nil
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	case <-w.appendsDone:
		return nil, unavailable(ErrClosed)
	}
}

// await waits for the batch that carries r.
func (w *Writer) await(ctx context.Context, r *request) (int64, error) {
	select {
	case res := <-r.done:
		return res.seq, res.err
	case <-w.appendsDone:
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
// not wait: outcomes are written in the background, in transactions of
// their own, and retried until stored. What cannot be stored (an unknown
// seq, an invalid status, a writer already closed) goes to OnError.
func (w *Writer) Complete(seq int64, o Outcome) {
	out, err := o.stored()
	w.mu.Lock()
	hash, ok := w.awaiting[seq]
	delete(w.awaiting, seq)
	w.mu.Unlock()
	switch {
	case !ok:
		err = fmt.Errorf("audit: node %s: an outcome for seq %d, which awaits none", w.node, seq)
	case err != nil:
		err = fmt.Errorf("audit: node %s: outcome of seq %d not stored: %w", w.node, seq, err)
	default:
		out.Seq = seq
		out.MAC = outcomeMAC(w.keys.Load(), hash, out) // under the keys of the request's time
		err = w.queueOutcome(out)
	}
	if err != nil {
		w.opt.OnError(err)
	}
}

// queueOutcome hands out to the outcome writer, unless it has ended. It
// wakes the writer only when that changes what it does: for the first
// outcome of a group (which starts its OutcomeDelay) and once a full group
// waits. Waking it for every outcome cost a goroutine switch per request
// for nothing.
func (w *Writer) queueOutcome(out storage.AuditOutcome) error {
	w.mu.Lock()
	if w.ended {
		w.mu.Unlock()
		return fmt.Errorf("audit: node %s: outcome of seq %d lost: %w", w.node, out.Seq, ErrClosed)
	}
	if len(w.outcomes) >= w.opt.MaxQueuedOutcomes {
		w.outcomesDropped++
		n := w.outcomesDropped
		w.mu.Unlock()
		if n == 1 {
			return fmt.Errorf("audit: node %s: %d outcomes wait to be stored; dropping new ones until they are (seq %d is the first)", w.node, w.opt.MaxQueuedOutcomes, out.Seq)
		}
		return nil
	}
	w.outcomes = append(w.outcomes, out)
	n := len(w.outcomes)
	w.mu.Unlock()
	if n == 1 || n >= w.opt.MaxBatch {
		w.signalOutcome()
	}
	return nil
}

func (w *Writer) signalOutcome() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Close stops accepting events, writes what is queued, flushes outcomes
// (retrying until ctx ends) and writes a final checkpoint if keys are set.
// It returns soon after ctx ends at the latest, an error if outcomes or
// the checkpoint could not be written (also given to OnError); with a
// sink, the lines still queued get sinkGrace after that even if ctx has
// ended, as the sink does not depend on the database. A second Close
// waits for the first, or for its own ctx.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	first := !w.closed
	if first {
		w.closed, w.closeCtx = true, ctx
	}
	w.mu.Unlock()
	if !first {
		select {
		case <-w.stopped:
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		// Commits under way when ctx ends are cancelled with it.
		stop := context.AfterFunc(ctx, w.cancelRun)
		close(w.quit)
		<-w.stopped // the shutdown ends soon after ctx does: its commits run under ctx
		stop()
	}
	w.cancelRun()
	sinkErr := w.closeSink(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.closeErr, sinkErr)
}

// closeSink lets the sink goroutine write what is queued and end, waiting
// until ctx ends at the latest.
func (w *Writer) closeSink(ctx context.Context) error {
	if w.sinkLines == nil {
		return nil
	}
	w.sinkClose.Do(func() { close(w.sinkLines) })
	// The sink does not depend on the database: however long Close's
	// context lasted (retrying a store that was down), it gets sinkGrace
	// to write what is queued.
	grace := time.NewTimer(sinkGrace)
	defer grace.Stop()
	select {
	case <-w.sinkDone:
		return nil
	case <-grace.C:
	}
	select {
	case <-w.sinkDone:
		return nil
	case <-ctx.Done():
		err := fmt.Errorf("audit: node %s: closed with %d batch(es) of lines not written to the sink: %w", w.node, len(w.sinkLines), ctx.Err())
		w.opt.OnError(err)
		return err
	}
}

// appender is the goroutine that commits events in batches.
func (w *Writer) appender() {
	defer close(w.appendsDone)
	tick := time.NewTicker(w.opt.CheckpointInterval)
	defer tick.Stop()
	for {
		var batch []*request
		select {
		case r := <-w.queue:
			batch = w.collect(r)
		case <-tick.C:
			w.checkpointDue = true
		case <-w.quit:
			w.shutdown()
			return
		}
		_ = w.flush(batch) // failures reach the waiters or OnError
	}
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

// flush commits batch (which may be empty) and a checkpoint if one is due.
func (w *Writer) flush(batch []*request) error {
	if w.reload {
		ctx, cancel := context.WithTimeout(w.base, w.opt.CommitTimeout)
		h, err := w.store.AuditHead(ctx, w.node)
		cancel()
		if err == nil {
			err = w.resumable(h)
		}
		if err != nil {
			w.fail(batch, nil, err)
			return err
		}
		w.adoptHead(h)
		w.settleUnsure(h)
		w.reload = false
	}
	keys := w.keys.Load()
	w.settleStart(keys)
	seq, hash := w.Head()
	// An adoption record goes first, before anything this writer was asked
	// to store: the batch's requests follow it (offset).
	offset := 0
	if w.adoption != nil {
		offset = 1
	}
	b := storage.AuditBatch{Node: w.node, Events: make([]storage.AuditEvent, offset+len(batch))}
	for i := range b.Events {
		ev := &b.Events[i]
		var r *request
		if i < offset {
			*ev = *w.adoption
			ev.Time = w.opt.Now().UTC().Truncate(time.Microsecond)
		} else {
			r = batch[i-offset]
			*ev = r.ev
		}
		seq++
		ev.Node, ev.Seq, ev.PrevHash = w.node, seq, hash
		ev.Hash, w.scratch = eventHash(w.scratch, hash, ev) // stored() cleaned every field
		hash = ev.Hash
		if r != nil && !r.offer.CompareAndSwap(open, cut) { // its answer is ready: store it whole
			o := r.outcome
			ev.Outcome = &o
		}
		if ev.Outcome != nil {
			o := *ev.Outcome
			o.Seq, o.MAC = seq, outcomeMAC(keys, ev.Hash, o)
			ev.Outcome = &o
		}
	}
	due := w.checkpointDue || seq-w.lastCheckpoint >= int64(w.opt.CheckpointEvery)
	if keys != nil && seq > w.lastCheckpoint && due && (len(batch) == 0 || !w.checkpointFailing) {
		cp := storage.AuditCheckpoint{Node: w.node, Seq: seq, Hash: hash, Kind: kindCheckpoint, CreatedAt: w.opt.Now().UTC()}
		cp.MAC = checkpointMAC(keys, cp)
		b.Checkpoint = &cp
	} else if keys == nil || seq == w.lastCheckpoint {
		w.checkpointDue = false // nothing to vouch for, or no key to do it
	}
	if len(b.Events) == 0 && b.Checkpoint == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(w.base, w.opt.CommitTimeout)
	err := w.store.AppendAudit(ctx, b)
	cancel()
	if errors.Is(err, storage.ErrCheckpointTaken) {
		// The events are stored, the checkpoint is not: a row this writer
		// did not write stands in its place. Said each time, and tried
		// again when due, at a later seq once events follow.
		cp := b.Checkpoint
		b.Checkpoint = nil
		w.committed(batch, b, keys)
		// Like a refused checkpoint, it is tried alone on the ticker from
		// now on, not with every batch (rows planted at every seq ahead
		// would otherwise cost each request a report and a query).
		w.checkpointFailing = true
		w.opt.OnError(fmt.Errorf("audit: node %s: a %s row this writer did not write already stands at seq %d, so its checkpoint there was not stored (audit verify names a forged one): %w", w.node, cp.Kind, cp.Seq, err))
		return err
	}
	if err != nil {
		if len(b.Events) > 0 && !errors.Is(err, storage.ErrConflict) {
			// The commit may have happened all the same: read the head
			// before the next batch, rather than reuse these seqs.
			w.unsure, w.unsureKeys, w.reload = b.Events, keys, true
		}
		w.fail(batch, b.Checkpoint, err)
		if b.Checkpoint != nil {
			w.checkpointFailing = true
		}
		return err
	}
	w.committed(batch, b, keys)
	return nil
}

// resumable checks a head re-read while running: the stored chain must end
// where this writer left it, or with the batch it could not confirm. If it
// ends anywhere else, its rows were not all written by this writer from
// its own head: adopting them would extend, and the next checkpoint vouch
// for, whatever was put there. That is reported once, and every batch is
// refused until the chain ends where it should again.
func (w *Writer) resumable(h storage.AuditHead) error {
	seq, hash, _ := storedEnd(h)
	own, ownHash := w.Head()
	ok := seq == own && hash == ownHash
	if n := len(w.unsure); n > 0 && seq == w.unsure[n-1].Seq && hash == w.unsure[n-1].Hash {
		ok = true
	}
	if ok {
		if w.diverged {
			w.diverged = false
			w.opt.OnNotice(fmt.Sprintf("audit: node %s: the stored chain ends at this writer's seq %d again; appending resumes", w.node, own))
		}
		return nil
	}
	err := fmt.Errorf("%w: this node wrote up to seq %d (hash %.12s…), the database's chain ends at seq %d (hash %.12s…)", ErrDiverged, own, ownHash, seq, hash)
	if !w.diverged {
		w.diverged = true
		w.opt.OnError(fmt.Errorf("audit: node %s: %w; another server is writing under this node name, or the log was changed in the database (audit verify names where). Requests are refused until the stored chain ends at this node's last event again; a restarted server continues from whatever the database holds", w.node, err))
	}
	return err
}

// unconfirmedError is the outcome of a request whose event was stored by a
// commit that reported failure: the request was refused (503).
const unconfirmedError = "the request was refused: its audit event's commit did not confirm"

// settleUnsure looks at the head read after an unconfirmed commit: if it
// ends with that batch, the batch was stored, and its requests, which were
// refused, get outcomes that say so (and their sink lines). For an event
// stored whole, that outcome goes apart and supersedes the one in its row,
// which was the answer the request had ready and never sent.
func (w *Writer) settleUnsure(h storage.AuditHead) {
	evs, keys := w.unsure, w.unsureKeys
	w.unsure, w.unsureKeys = nil, nil
	if len(evs) == 0 {
		return
	}
	last := evs[len(evs)-1]
	if h.Seq != last.Seq || h.Hash != last.Hash {
		return // not stored (or overwritten by a writer using this node's name)
	}
	w.sink(evs, nil)
	if evs[0].Path == AdoptionPath && w.adoption != nil {
		w.adoption = nil // stored after all, first in that batch
		evs = evs[1:]
	}
	// Under the keys the batch's outcomes had: a correction is checked
	// against the outcome it corrects.
	queued := false
	for _, ev := range evs {
		out := storage.AuditOutcome{Seq: ev.Seq, Status: 503, Error: unconfirmedError}
		out.MAC = outcomeMAC(keys, ev.Hash, out)
		if err := w.queueOutcome(out); err != nil {
			w.opt.OnError(err)
			continue
		}
		queued = true
	}
	if queued {
		w.signalOutcome()
	}
}

// fail hands err to every waiter of a batch that did not commit; the head
// does not move, so the next batch reuses the seqs. A checkpoint it
// carried stays due.
func (w *Writer) fail(batch []*request, cp *storage.AuditCheckpoint, err error) {
	for _, r := range batch {
		r.done <- result{err: unavailable(err)}
	}
	if errors.Is(err, storage.ErrConflict) && len(batch) > 0 {
		w.reload = true
		w.opt.OnError(fmt.Errorf("audit: node %s: the store refused a batch as a conflict (is another server using node name %q?); re-reading the head: %w", w.node, w.node, err))
	}
	if cp != nil {
		w.opt.OnError(fmt.Errorf("audit: node %s: storing the checkpoint at seq %d failed (it is retried): %w", w.node, cp.Seq, err))
	}
}

// committed writes the sink, moves the head and hands each waiter its seq;
// keys are those the batch's outcomes were MAC'd under.
func (w *Writer) committed(batch []*request, b storage.AuditBatch, keys *Keys) {
	w.sink(b.Events, nil)                // an event's line comes before its outcome's
	offset := len(b.Events) - len(batch) // an adoption record first, if any
	if offset > 0 {
		w.adoption = nil
	}
	abandon := false
	w.mu.Lock()
	if n := len(b.Events); n > 0 {
		w.head, w.headHash = b.Events[n-1].Seq, b.Events[n-1].Hash
	}
	for i, r := range batch {
		ev := &b.Events[offset+i]
		if !r.state.CompareAndSwap(waiting, delivered) {
			// Nothing was answered: say so, superseding an outcome stored
			// with the event (the answer it had ready).
			out := storage.AuditOutcome{Seq: ev.Seq, Error: abandonedError}
			out.MAC = outcomeMAC(keys, ev.Hash, out)
			w.outcomes = append(w.outcomes, out)
			abandon = true
			continue
		}
		if ev.Outcome == nil {
			w.awaiting[ev.Seq] = ev.Hash
		}
	}
	w.mu.Unlock()
	for i, r := range batch {
		r.done <- result{seq: b.Events[offset+i].Seq}
	}
	if b.Checkpoint != nil {
		w.lastCheckpoint, w.checkpointDue, w.checkpointFailing = b.Checkpoint.Seq, false, false
	}
	if abandon {
		w.signalOutcome()
	}
}

// sinkQueue is how many batches of lines may wait for a slow sink, and
// sinkGrace how long Close waits for them at least.
const (
	sinkQueue = 1024
	sinkGrace = 5 * time.Second
)

// sink queues committed events' and outcomes' lines for Options.Sink, or
// drops them if the sink is that far behind.
func (w *Writer) sink(events []storage.AuditEvent, outs []storage.AuditOutcome) {
	if w.sinkLines == nil || len(events)+len(outs) == 0 {
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range events {
		if err := enc.Encode(eventLine("event", e)); err != nil {
			w.opt.OnError(fmt.Errorf("audit: node %s: encoding event %d for the sink: %w", w.node, e.Seq, err))
		}
	}
	for _, o := range outs {
		if err := enc.Encode(outcomeLine(w.node, o)); err != nil {
			w.opt.OnError(fmt.Errorf("audit: node %s: encoding outcome %d for the sink: %w", w.node, o.Seq, err))
		}
	}
	w.sinkMu.Lock()
	defer w.sinkMu.Unlock()
	select {
	case w.sinkLines <- buf.Bytes():
		if w.dropping {
			w.opt.OnError(fmt.Errorf("audit: node %s: the sink caught up; %d line(s) were dropped (the database has them)", w.node, w.dropped))
			w.dropping, w.dropped = false, 0
		}
	default:
		w.dropped += int64(len(events) + len(outs))
		if !w.dropping {
			w.dropping = true
			w.opt.OnError(fmt.Errorf("audit: node %s: the sink is not keeping up; dropping lines until it does (the database keeps every event)", w.node))
		}
	}
}

// sinkWriter is the goroutine that writes queued lines to the sink.
func (w *Writer) sinkWriter() {
	defer close(w.sinkDone)
	for b := range w.sinkLines {
		if _, err := w.opt.Sink.Write(b); err != nil {
			w.opt.OnError(fmt.Errorf("audit: node %s: writing to the sink: %w", w.node, err))
		}
	}
}

// shutdown writes what is queued, then a final checkpoint, retrying it
// until Close's context ends.
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
	pause := 50 * time.Millisecond
	for ctx.Err() == nil && w.keys.Load() != nil {
		if head, _ := w.Head(); head <= w.lastCheckpoint && !w.startUnsettled() {
			return
		}
		w.checkpointDue = true
		if w.flush(nil) == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// outcomeWriter is the goroutine that stores outcomes, in groups: the
// first waits OutcomeDelay for others, unless MaxBatch are waiting.
// Failures are retried after a growing pause. Once the appender has ended
// it writes what is left, retrying until Close's context ends.
func (w *Writer) outcomeWriter() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case <-w.wake:
			if w.queuedOutcomes() < w.opt.MaxBatch || time.Now().Before(w.retryAt) {
				if !armed {
					timer.Reset(max(w.opt.OutcomeDelay, time.Until(w.retryAt)))
					armed = true
				}
				continue
			}
		case <-timer.C:
			armed = false
		case <-w.appendsDone:
			w.finish()
			return
		}
		if !time.Now().Before(w.retryAt) {
			_ = w.writeOutcomes(w.run)
		}
		if w.queuedOutcomes() > 0 && !armed {
			timer.Reset(max(w.opt.OutcomeDelay, time.Until(w.retryAt)))
			armed = true
		}
	}
}

func (w *Writer) queuedOutcomes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.outcomes)
}

// writeOutcomes stores up to MaxBatch queued outcomes in one transaction.
func (w *Writer) writeOutcomes(base context.Context) error {
	w.mu.Lock()
	outs := slices.Clone(w.outcomes[:min(len(w.outcomes), w.opt.MaxBatch)])
	w.mu.Unlock()
	if len(outs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(base, w.opt.CommitTimeout)
	stored, err := w.store.StoreAuditOutcomes(ctx, w.node, outs)
	cancel()
	if err != nil {
		w.backoff = min(max(2*w.backoff, 100*time.Millisecond), 5*time.Second)
		w.retryAt = time.Now().Add(w.backoff)
		w.opt.OnError(fmt.Errorf("audit: node %s: storing %d outcome(s) failed, retrying in %s: %w", w.node, len(outs), w.backoff, err))
		return err
	}
	w.backoff, w.retryAt = 0, time.Time{}
	w.mu.Lock()
	w.outcomes = w.outcomes[len(outs):] // only this goroutine removes; Complete appends
	dropped := w.outcomesDropped
	w.outcomesDropped = 0
	w.mu.Unlock()
	if dropped > 0 {
		w.opt.OnError(fmt.Errorf("audit: node %s: the outcome queue has room again; %d outcome(s) were dropped (their events show no outcome)", w.node, dropped))
	}
	if stored < int64(len(outs)) {
		w.opt.OnError(fmt.Errorf("audit: node %s: %d of %d outcome(s) found an outcome already stored for their event", w.node, int64(len(outs))-stored, len(outs)))
	}
	w.sink(nil, outs)
	return nil
}

// finish writes the outcomes left once no event can be appended any more,
// retrying until Close's context ends, and settles Close's error. Whether
// anything is left is decided under the lock that Complete takes, together
// with marking the writer ended, so no outcome slips in unwritten and
// unreported.
func (w *Writer) finish() {
	w.mu.Lock()
	ctx := w.closeCtx
	w.mu.Unlock()
	var lastErr error
	for {
		keys := w.keys.Load()
		w.mu.Lock()
		left := len(w.outcomes)
		// The appender has ended: its fields are read after it, not with it.
		unanchored := keys != nil && w.head > w.lastCheckpoint
		unrecorded := keys != nil && w.adoption != nil // an adoption it could not store
		finished := left == 0
		ended := finished || ctx.Err() != nil
		if ended {
			w.ended = true
			switch {
			case !finished || unanchored:
				w.closeErr = fmt.Errorf("audit: node %s: closed with %d outcome(s) unwritten and the last checkpoint at seq %d of %d: %w",
					w.node, left, w.lastCheckpoint, w.head, errors.Join(ctx.Err(), lastErr))
			case unrecorded:
				w.closeErr = fmt.Errorf("audit: node %s: closed without storing the record of adopting seqs %s (the next start adopts them again): %w",
					w.node, w.adoption.Resource, errors.Join(ctx.Err(), lastErr))
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
		lastErr = w.writeOutcomes(ctx)
	}
}
